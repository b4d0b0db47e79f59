"""The model alone on one CPU thread: analytic vs autograd forces, the compiled analytic path that
LAMMPS runs on a CPU (``step_runner``: torch.compile over padded buckets), and schnetpack's PaiNN
when installed. ``analytic`` uses the fused message kernels (``model/fused``) where they are
built, ``unfused`` is the same analytic path with them turned off (the eager reference).

--model peer (default) is a PaiNN with schnetpack's hyper-parameters (128 features, 3 layers, 20
radial functions, 5 A), random weights, for the side-by-side comparison; --model shipped is the
shipped default model (64 features).

Every case runs in its own subprocess with one torch thread, so its peak memory (the rise of the
process's peak resident set over its state before the first force call) is its own, and the first
call's time (for ``compiled``: the compilation) is reported apart from the median of the others.
No memory limit is set (an address-space limit stops torch.compile's threads and, on a CUDA host,
schnetpack): a case that outgrows the machine is killed and reported as failed.
The cases of one system and dtype run back to back in one invocation, and the ratios are taken
between them. --profile adds, per case, where a call's time goes: the operations that take most
of it (torch.profiler over a few calls; compiled, inductor's fused loops appear by name).

--copies N [N ...] then runs N copies of the compiled case at once, each pinned to its own core and timing
calls for COPY_SECONDS: what one core gets while N-1 others do the same work, i.e. whether a node
full of ranks is limited by its shared memory bandwidth rather than by its cores (the plugin's rank
scaling on one node).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from functools import partial
from pathlib import Path
from typing import Sequence

SYSTEMS = {"aspirin": "aspirin (21 atoms)", "water1k": "water, 1029 atoms", "water8k": "water, 8232 atoms"}
REPEATS = {"aspirin": 100, "water1k": 5, "water8k": 2}
COPY_SECONDS = 20.0  # long enough that copies started a few seconds apart still overlap
ROOT = Path(__file__).resolve().parent.parent


def build_system(name: str):
    import ase.io

    from mlff_distiller.structures import random_water_box

    if name == "aspirin":  # the structure of `make run` (no RDKit needed where this runs)
        return ase.io.read(ROOT / "inputs" / "aspirin" / "aspirin.data", format="lammps-data", atom_style="atomic")
    n_molecules = {"water1k": 343, "water8k": 2744}[name]
    return random_water_box(n_molecules, 1.0, seed=0)


def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize()


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def student_call(system: str, dtype_name: str, method: str, which: str):
    import torch

    from mlff_distiller.model import fused
    from mlff_distiller.model.graph import graph_from_atoms
    from mlff_distiller.model.io import load_model
    from mlff_distiller.model.painn import DTYPES, PaiNN, PaiNNConfig
    from mlff_distiller.model.replay import GraphReplay

    dtype = DTYPES[dtype_name]
    if method == "unfused":
        fused.ENABLED, method = False, "analytic"
    atoms = build_system(system)
    if which == "shipped":
        model = load_model("default", dtype).requires_grad_(False)
    else:
        model = PaiNN(PaiNNConfig(elements=sorted(set(atoms.get_chemical_symbols())))).to(dtype).requires_grad_(False)
    g = graph_from_atoms([atoms], model.elements, model.cutoff, dtype)
    if method == "compiled":  # what step_runner gives LAMMPS on a CPU, whatever MLFF_COMPILE says
        forces = GraphReplay(model, "analytic", graphs=False, fuse=True)
    else:
        forces = partial(model.energies_and_edge_gradients, method=method)

    def call():
        with torch.no_grad():
            forces(g.species, g.edge_i, g.edge_j, g.r_ij)

    return call, len(atoms), len(g.edge_i)


def import_schnetpack():
    """schnetpack 2.1 imports a name that torch 2.11 dropped from its data loader; supply it."""
    import typing

    import torch.utils.data.dataloader as loader

    if not hasattr(loader, "T_co"):
        loader.T_co = typing.TypeVar("T_co", covariant=True)
    import schnetpack

    return schnetpack


def schnetpack_call(system: str, dtype_name: str):
    """schnetpack's PaiNN, same hyper-parameters, energy and forces by autograd, its own neighbour
    list done beforehand (not timed), like ours."""

    from mlff_distiller.model.painn import DTYPES

    spk = import_schnetpack()
    import schnetpack.transform as trn

    dtype = DTYPES[dtype_name]
    atoms = build_system(system)
    converter = spk.interfaces.AtomsConverter(neighbor_list=trn.ASENeighborList(cutoff=5.0), dtype=dtype)
    inputs = converter(atoms)
    painn = spk.representation.PaiNN(
        n_atom_basis=128,
        n_interactions=3,
        radial_basis=spk.nn.GaussianRBF(n_rbf=20, cutoff=5.0),
        cutoff_fn=spk.nn.CosineCutoff(5.0),
    )
    model = spk.model.NeuralNetworkPotential(
        representation=painn,
        input_modules=[spk.atomistic.PairwiseDistances()],
        output_modules=[
            spk.atomistic.Atomwise(n_in=128, output_key="energy"),
            spk.atomistic.Forces(energy_key="energy", force_key="forces"),
        ],
    ).to(dtype)
    model.eval().requires_grad_(False)  # eval: forces without create_graph, as in MD

    def call():
        model({k: v.clone() for k, v in inputs.items()})

    return call, len(atoms), int(inputs[spk.properties.idx_i].shape[0])


PROFILE_CALLS = 3
PROFILE_TOP = 8


def profile_calls(call) -> list[dict]:
    """The operations taking most of a call's time: name, ms per call (their own time, without
    what they call) and share of the whole, over ``PROFILE_CALLS`` calls."""
    import torch

    with torch.profiler.profile() as prof:
        for _ in range(PROFILE_CALLS):
            call()
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    return [
        {
            "name": e.key[:90],
            "self_ms_per_call": e.self_cpu_time_total / 1e3 / PROFILE_CALLS,
            "share": e.self_cpu_time_total / total,
            "count_per_call": e.count / PROFILE_CALLS,
        }
        for e in events[:PROFILE_TOP]
    ]


def run_case(
    system: str, dtype_name: str, method: str, which: str, profile: bool = False, seconds: float = 0.0
) -> dict:
    """One case, in this process: median time per force call, the first call and peak memory rise
    (and with ``profile``, ``profile_calls`` after the timing). ``seconds``: keep calling until
    that long has passed since the first call (at least the usual repeats)."""
    import torch

    torch.set_num_threads(1)
    if profile:  # name inductor's fused loops in the profile
        torch._inductor.config.cpp.enable_kernel_profile = True
    if method == "schnetpack":
        call, n_atoms, n_edges = schnetpack_call(system, dtype_name)
    else:
        call, n_atoms, n_edges = student_call(system, dtype_name, method, which)
    before = rss_bytes()
    times = []
    try:
        while len(times) <= REPEATS[system] or sum(times[1:]) < seconds:
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
    except RuntimeError as exc:  # e.g. torch's "can't allocate memory"
        return {"error": str(exc).splitlines()[0][:200], "atoms": n_atoms, "edges": n_edges}
    from mlff_distiller.model import fused

    record = {
        "fused_kernels": "used"
        if method in ("analytic", "compiled") and fused.serves("cpu")
        else fused.UNAVAILABLE["cpu"] or "not used",
        "ms": 1e3 * statistics.median(times[1:]),
        "first_call_s": times[0],
        "peak_mb": (peak_rss_bytes() - before) / 2**20,
        "atoms": n_atoms,
        "edges": n_edges,
    }
    if profile:
        record["profile"] = profile_calls(call)
    return record


def case_command(system: str, dtype_name: str, method: str, which: str, *options: str) -> list[str]:
    return [sys.executable, __file__, "--case", system, dtype_name, method, which, *options]


def case_result(returncode: int, stdout: str, stderr: str) -> dict:
    if returncode != 0:
        tail = (stderr.strip().splitlines() or ["killed"])[-1]
        return {"error": f"exit {returncode}: {tail[:200]}"}
    return json.loads(stdout.strip().splitlines()[-1])


def case_in_subprocess(system: str, dtype_name: str, method: str, which: str, profile: bool = False) -> dict:
    proc = subprocess.run(
        case_command(system, dtype_name, method, which, *(["--profile"] if profile else [])),
        capture_output=True,
        text=True,
    )
    return case_result(proc.returncode, proc.stdout, proc.stderr)


def copies_at_once(system: str, dtype_name: str, method: str, which: str, copies: int) -> dict:
    """``copies`` runs of one case at the same time, copy k pinned to core k: each copy's median
    time per call (their median and slowest: compare with the case run alone)."""
    options = ("--seconds", str(COPY_SECONDS))
    procs = [
        subprocess.Popen(
            case_command(system, dtype_name, method, which, *options),
            preexec_fn=partial(os.sched_setaffinity, 0, {k % os.cpu_count()}),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in range(copies)
    ]
    outputs = [p.communicate() for p in procs]
    results = [case_result(p.returncode, *output) for p, output in zip(procs, outputs)]
    times = [r["ms"] for r in results if "ms" in r]
    errors = [r["error"] for r in results if "error" in r]
    return {
        "copies": copies,
        "ms_median": statistics.median(times) if times else None,
        "ms_slowest": max(times, default=None),
        "failed": len(errors),
        **({"error": errors[0]} if errors else {}),
    }


def schnetpack_available() -> bool:
    try:
        import_schnetpack()
    except ImportError:
        return False
    return True


def format_row(system, dtype_name, results) -> str:
    def cell(r):
        if "error" in r:
            return f"{'failed':>10} {'':>9}"
        return f"{r['ms']:10.2f} {r['peak_mb']:9.1f}"

    def ratio(slow, fast):
        a, b = results.get(slow, {}), results.get(fast, {})
        return f"{a['ms'] / b['ms']:6.2f}x" if "ms" in a and "ms" in b else "   n/a"

    cells = " ".join(cell(results[m]) for m in results)
    first = results.get("compiled", {}).get("first_call_s", float("nan"))
    return (
        f"{SYSTEMS[system]:<20} {dtype_name:<8} {cells} {ratio('autograd', 'analytic')} "
        f"{ratio('unfused', 'analytic')} {ratio('autograd', 'compiled')} {ratio('schnetpack', 'compiled')} {first:8.1f}"
    )


def format_profile(method: str, profile: list[dict]) -> str:
    return "\n".join(
        f"    {method:<10} {p['share']:6.1%} {p['self_ms_per_call']:9.3f} ms {p['count_per_call']:7.0f}x  {p['name']}"
        for p in profile
    )


def run_benchmark(
    systems,
    dtypes,
    output: Path | None,
    peers: bool = True,
    which: str = "peer",
    profile: bool = False,
    copies: Sequence[int] = (),
) -> dict:
    methods = ["analytic", "unfused", "compiled", "autograd"]
    methods += ["schnetpack"] if peers and which == "peer" and schnetpack_available() else []
    header = (
        f"{'system':<20} {'dtype':<8} "
        + " ".join(f"{m + ' ms':>10} {'peak MB':>9}" for m in methods)
        + f" {'auto/ana':>7} {'unf/ana':>7} {'auto/cmp':>7} {'spk/cmp':>7} {'compile s':>8}"
    )
    print(f"model: {which}; one torch thread; ratios of times per call; compile s: the compiled path's first call")
    if which == "peer" and "schnetpack" not in methods:
        print("schnetpack is not installed: its column is left out (pip install schnetpack to add it)")
    print(header)
    report = {"model": which, "methods": methods, "results": []}
    for system in systems:
        for dtype_name in dtypes:
            results = {m: case_in_subprocess(system, dtype_name, m, which, profile) for m in methods}
            print(format_row(system, dtype_name, results), flush=True)
            for m, r in results.items():
                if "error" in r:
                    print(f"    {m}: {r['error']}")
                elif "profile" in r:
                    print(format_profile(m, r["profile"]), flush=True)
            for n in copies if "ms" in results["compiled"] else ():
                shared = copies_at_once(system, dtype_name, "compiled", which, n)
                if shared["ms_median"]:
                    shared["slowdown_median"] = shared["ms_median"] / results["compiled"]["ms"]
                results["compiled"].setdefault("at_once", []).append(shared)
                print(
                    f"    compiled, {n} copies at once, one core each: median {shared['ms_median'] or 0:.2f} ms, "
                    f"slowest {shared['ms_slowest'] or 0:.2f} ms, {shared.get('slowdown_median', float('nan')):.2f}x the "
                    f"case alone" + (f"; {shared['failed']} failed: {shared['error']}" if shared["failed"] else ""),
                    flush=True,
                )
            report["results"].append({"system": system, "dtype": dtype_name, **results})
    if output:
        from mlff_distiller.files import atomic_write_text

        atomic_write_text(output, json.dumps(report, indent=1))
        print(f"wrote {output}")
    return report


def run(args) -> int:
    if args.case:
        print(json.dumps(run_case(*args.case, profile=args.profile, seconds=args.seconds)))
        return 0
    run_benchmark(
        args.systems,
        args.dtypes,
        Path(args.output) if args.output else None,
        not args.no_peers,
        args.model,
        args.profile,
        args.copies,
    )
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=list(SYSTEMS))
    parser.add_argument("--dtypes", nargs="+", default=["float32", "float64"], choices=["float32", "float64"])
    parser.add_argument(
        "--model",
        choices=("peer", "shipped"),
        default="peer",
        help="peer: schnetpack's hyper-parameters (the comparison); shipped: the default model",
    )
    parser.add_argument("--no-peers", action="store_true", help="leave schnetpack out even if installed")
    parser.add_argument("-o", "--output", help="write the results as JSON here")
    parser.add_argument("--profile", action="store_true", help="also record where each case's time goes")
    parser.add_argument(
        "--copies",
        type=int,
        nargs="+",
        default=[],
        metavar="N",
        help="also run N copies of the compiled case at once, one core each (each N given)",
    )
    parser.add_argument("--seconds", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--case", nargs=4, metavar=("SYSTEM", "DTYPE", "METHOD", "MODEL"), help=argparse.SUPPRESS)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/run.py model-cpu",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

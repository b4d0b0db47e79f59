"""Milliseconds per force call of the model alone (no LAMMPS), eager and replayed as CUDA graphs.

    python benchmarks/gpu_model.py --out DIR [--deadline-s S]

Shipped default model; aspirin (21 atoms), water 1,029 and 8,232 atoms (edges from ASE's
neighbour list); float32 and float64; methods analytic and autograd; modes:
  eager             the model's ``energies_and_edge_gradients`` on device tensors
  graphs            ``GraphReplay(fuse=False)``: padded buckets, one CUDA-graph replay per call
  graphs-compiled   ``GraphReplay()``, the default on a GPU: the same with the model compiled by
                    torch.compile (inductor's fused kernels) inside the graph
  reduce-overhead   torch.compile(mode="reduce-overhead") of the same padded call (torch's own
                    CUDA graphs), float32 analytic, to choose between the two by measurement
plus one CPU core of the same host (eager analytic) and the largest float32 water box whose
graphed analytic call fits on the card. ``--profile SYSTEM`` adds where the eager float32 call's
device time goes, kernel by kernel (torch.profiler), for each method (-> DIR/gpu_profile.json);
``--tune SYSTEM`` times that call for each launch setting of the fused Triton kernels (edges per
program x warps; -> DIR/gpu_tune.json), each result checked against the shipped setting's.
Every call ends with a device synchronisation, as an MD step does when LAMMPS takes the forces
back, so the times include launch overhead.

Writes DIR/gpu_model.jsonl as it goes (one JSON record per case: system, atoms, edges, device,
dtype, method, mode, ms_per_call, ...) and DIR/gpu_model.json at the end. Optional parts are
skipped once --deadline-s seconds have passed, so the run fits a lease.

To join the benchmarks' single entry point, ``main(argv)`` is this suite ("model-gpu").
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch._dynamo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "python"))

from mlff_distiller.files import atomic_write_text  # noqa: E402
from mlff_distiller.model.graph import graph_from_atoms  # noqa: E402
from mlff_distiller.model.io import load_model  # noqa: E402
from mlff_distiller.model.painn import DTYPES, METHODS  # noqa: E402
from mlff_distiller.model.replay import GraphReplay  # noqa: E402

from lammps_md import cpu_name  # noqa: E402

MODES = {"graphs": False, "graphs-compiled": True}  # mode: GraphReplay's fuse
WATER = {"water_1029": 343, "water_8232": 2744}  # molecules


def systems() -> dict:
    from ase.io import read

    from mlff_distiller.structures import random_water_box

    aspirin = read(ROOT / "inputs" / "aspirin" / "aspirin.data", format="lammps-data", atom_style="atomic")
    aspirin.pbc = False
    return {"aspirin": aspirin, **{name: random_water_box(n, 1.0, seed=0) for name, n in WATER.items()}}


def device_inputs(model, atoms, device):
    g = graph_from_atoms([atoms], model.elements, model.cutoff, model.dtype)
    model.validate_inputs(g.species, g.edge_i, g.edge_j, g.r_ij)
    return [t.to(device) for t in (g.species, g.edge_i, g.edge_j, g.r_ij)]


def ms_per_call(call, device, budget_s: float = 0.4, repeats: int = 5) -> float:
    """Median over ``repeats`` rounds of back-to-back calls, each ended by a synchronisation."""

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    call(), sync()
    start = time.perf_counter()
    call(), sync()
    once = time.perf_counter() - start
    k = max(1, min(1000, int(budget_s / repeats / max(once, 1e-6))))
    rounds = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(k):
            call(), sync()
        rounds.append((time.perf_counter() - start) / k)
    return 1e3 * statistics.median(rounds)


def relative_error(result, reference) -> float:
    """max |result - reference| / max |reference| over the edge gradients."""
    return float((result[1].double() - reference[1].double()).abs().max() / reference[1].double().abs().max())


class Records:
    def __init__(self, out: Path, device_name: str):
        self.path, self.device_name, self.rows = out / "gpu_model.jsonl", device_name, []
        self.path.write_text("")

    def add(self, **row) -> None:
        from mlff_distiller.model import fused

        # the message block's fused kernels (Triton on a GPU) run in the analytic method where served
        kernels = row.get("method") == "analytic" and fused.serves("cpu" if "core" in row.get("device", "") else "cuda")
        row = {"device": self.device_name, "torch": torch.__version__, "fused_kernels": kernels, **row}
        self.rows.append(row)
        with self.path.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
        extra = {
            k: v
            for k, v in row.items()
            if k not in ("system", "atoms", "edges", "dtype", "method", "mode", "ms_per_call", "device", "torch")
        }
        print(
            f"{row['system']:>12} {row['atoms']:>7} {row['dtype']:>8} {row['method']:>9} {row['mode']:>8} "
            f"{row['ms_per_call']:9.3f} ms  {row['device']}  {extra}",
            flush=True,
        )


def gpu_cases(records: Records, atoms_by_name: dict, device, dtypes, methods, modes) -> None:
    """Eager and graphed, analytic and autograd, both dtypes, every system (or those asked for).
    One runner per dtype, method and mode goes through the systems in turn, as a simulation would:
    a compiled runner compiles for the first system's shape, recompiles once for dynamic shapes at
    the second, then only captures (``capture_s``)."""
    for dtype_name in dtypes:
        model = load_model("default", DTYPES[dtype_name]).to(device)
        inputs = {name: device_inputs(model, atoms, device) for name, atoms in atoms_by_name.items()}
        for method in methods:
            references = {}
            for name, args in inputs.items():
                with torch.no_grad():
                    references[name] = model.energies_and_edge_gradients(*args, None, method)
                    ms = ms_per_call(lambda: model.energies_and_edge_gradients(*args, None, method), device)
                if "eager" in modes:
                    records.add(**case(name, args, dtype_name), method=method, mode="eager", ms_per_call=ms)
            for mode, fuse in ((m, f) for m, f in MODES.items() if m in modes):
                runner = GraphReplay(model, method, fuse=fuse, max_buckets=1)
                for name, args in inputs.items():
                    graph_case(records, case(name, args, dtype_name), runner, mode, args, references[name], device)
                del runner
            del references
            gc.collect()
            torch.cuda.empty_cache()


def case(name: str, args, dtype_name: str) -> dict:
    return dict(system=name, atoms=int(args[0].shape[0]), edges=int(args[1].shape[0]), dtype=dtype_name)


def graph_case(records, base, runner, mode, args, reference, device) -> None:
    runner.buckets.clear()
    gc.collect()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    result = runner(*args)
    torch.cuda.synchronize(device)
    capture_s = time.perf_counter() - start
    ms = ms_per_call(lambda: runner(*args), device)
    (bucket,) = runner.buckets.values()
    records.add(
        **base,
        method=runner.method,
        mode=mode,
        ms_per_call=ms,
        capture_s=round(capture_s, 3),
        padded_atoms=bucket.shape[0],
        padded_edges=bucket.shape[1],
        peak_gib=round(torch.cuda.max_memory_allocated(device) / 2**30, 3),
        error_vs_eager=relative_error(result, reference),
    )


def cpu_cases(records: Records, atoms_by_name: dict) -> None:
    """One core of the same host, eager analytic: the baseline of the GPU-vs-CPU target."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    cpu = torch.device("cpu")
    for dtype_name, dtype in DTYPES.items():
        model = load_model("default", dtype)
        for name in ("aspirin", "water_1029"):
            args = device_inputs(model, atoms_by_name[name], cpu)
            with torch.no_grad():
                ms = ms_per_call(lambda: model.energies_and_edge_gradients(*args), cpu, budget_s=2.0, repeats=3)
            records.add(
                system=name,
                atoms=len(atoms_by_name[name]),
                edges=int(args[1].shape[0]),
                dtype=dtype_name,
                method="analytic",
                mode="eager",
                ms_per_call=ms,
                device=f"{cpu_name()} (1 core)",
            )
    torch.set_num_threads(threads)


def compiled_cases(records: Records, atoms_by_name: dict, device, names) -> None:
    """torch.compile(mode="reduce-overhead") of the padded call, float32 analytic."""
    model = load_model("default", torch.float32).to(device)
    for name in names:
        atoms = atoms_by_name[name]
        args = device_inputs(model, atoms, device)
        padded = GraphReplay(model, graphs=False)
        bucket = padded.bucket_for(len(atoms), int(args[1].shape[0]))
        bucket.load(*args, len(atoms), None)
        torch._dynamo.reset()
        compiled = torch.compile(model.energies_and_weighted_edge_gradients, mode="reduce-overhead")

        def call():
            with torch.no_grad():
                return compiled(bucket.species, bucket.edge_i, bucket.edge_j, bucket.r_ij, bucket.weights, "analytic")

        start = time.perf_counter()
        try:
            for _ in range(3):  # compilation, then cudagraph recording
                result = call()
            torch.cuda.synchronize(device)
        except Exception as exc:  # report, do not stop the benchmark
            print(f"torch.compile failed for {name}: {type(exc).__name__}: {str(exc)[:500]}", flush=True)
            return
        compile_s = time.perf_counter() - start
        with torch.no_grad():
            reference = model.energies_and_edge_gradients(*args)
        error = relative_error((result[0], result[1][: args[1].shape[0]]), reference)
        ms = ms_per_call(call, device)
        records.add(
            system=name,
            atoms=len(atoms),
            edges=int(args[1].shape[0]),
            dtype="float32",
            method="analytic",
            mode="reduce-overhead",
            ms_per_call=ms,
            compile_s=round(compile_s, 1),
            padded_atoms=bucket.shape[0],
            padded_edges=bucket.shape[1],
            error_vs_eager=error,
        )


PROFILE_TOP = 12


def profile_kernels(atoms, device, methods, calls: int = 5) -> list[dict]:
    """The kernels taking most of an eager float32 call's device time, per method: name, ms per call
    and share of the call's device time (a graph replay runs the same kernels)."""
    model = load_model("default", torch.float32).to(device)
    args = device_inputs(model, atoms, device)
    rows = []
    for method in methods:
        with torch.no_grad():
            model.energies_and_edge_gradients(*args, None, method)  # Triton's compilation, outside the profile
            torch.cuda.synchronize(device)
            with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
                for _ in range(calls):
                    model.energies_and_edge_gradients(*args, None, method)
                torch.cuda.synchronize(device)
        events = [e for e in prof.key_averages() if e.self_device_time_total > 0]
        events.sort(key=lambda e: e.self_device_time_total, reverse=True)
        total = sum(e.self_device_time_total for e in events)
        print(f"profile {method}: {total / 1e3 / calls:.3f} ms of kernels per call", flush=True)
        for e in events[:PROFILE_TOP]:
            row = dict(
                method=method,
                kernel=e.key[:120],
                ms_per_call=round(e.self_device_time_total / 1e3 / calls, 4),
                share=round(e.self_device_time_total / total, 4),
                launches_per_call=e.count / calls,
            )
            rows.append(row)
            print(f"  {row['ms_per_call']:8.3f} ms {row['share']:6.1%}  x{row['launches_per_call']:g}  {row['kernel']}")
    return rows


TUNE_BLOCK_EDGES, TUNE_NUM_WARPS = (16, 32, 64, 128), (1, 2, 4, 8)


def tune_kernels(atoms, device, keep) -> list[dict]:
    """ms per eager float32 analytic call for each launch setting of the fused kernels, and the
    largest relative difference of its edge gradients from the shipped setting's; ``keep(rows)``
    after each setting, so that a sweep cut short keeps what it measured."""
    from mlff_distiller.model.fused import message_triton as kernels

    model = load_model("default", torch.float32).to(device)
    args = device_inputs(model, atoms, device)
    shipped = (kernels.BLOCK_EDGES, kernels.NUM_WARPS)

    def call():
        with torch.no_grad():
            return model.energies_and_edge_gradients(*args, None, "analytic")

    reference = call()
    rows = []
    try:
        for block, warps in itertools.product(TUNE_BLOCK_EDGES, TUNE_NUM_WARPS):
            kernels.BLOCK_EDGES, kernels.NUM_WARPS = block, warps
            row = dict(
                block_edges=block,
                num_warps=warps,
                shipped=(block, warps) == shipped,
                relative_error=relative_error(call(), reference),
                ms_per_call=round(ms_per_call(call, device), 4),
            )
            rows.append(row)
            keep(rows)
            print(
                f"tune: {block:4d} edges x {warps} warps  {row['ms_per_call']:8.3f} ms  error {row['relative_error']:.1e}"
            )
    finally:
        kernels.BLOCK_EDGES, kernels.NUM_WARPS = shipped
    best = min(rows, key=lambda r: r["ms_per_call"])
    print(
        f"tune: fastest {best['block_edges']} edges x {best['num_warps']} warps, {best['ms_per_call']:.3f} ms",
        flush=True,
    )
    return rows


def periodic_edges_cuda(atoms, cutoff: float, device, block: int = 256):
    """Edges of a cubic periodic box (side > 2 cutoffs) by minimum image, on the GPU: ASE's
    neighbour list takes minutes for a few hundred thousand atoms."""
    length = float(atoms.cell.lengths()[0])
    assert np.allclose(atoms.cell.array, np.diag([length] * 3)) and length > 2 * cutoff
    x = torch.as_tensor(atoms.positions, dtype=torch.float64, device=device)
    edge_i, edge_j, r_ij = [], [], []
    for start in range(0, x.shape[0], block):
        d = x[None, :, :] - x[start : start + block, None, :]  # r_ij = x_j - x_i
        d -= length * torch.round(d / length)
        d2 = (d * d).sum(-1)
        i, j = torch.nonzero((d2 < cutoff**2) & (d2 > 0), as_tuple=True)
        edge_i.append(i + start), edge_j.append(j), r_ij.append(d[i, j])
    return torch.cat(edge_i), torch.cat(edge_j), torch.cat(r_ij)


def largest_box(records: Records, device, atoms_8k, deadline: float) -> None:
    """The largest float32 water box whose graphed (compiled) analytic call fits: a first size
    estimated from the memory of the 8,232-atom box, then 1.25x larger while it fits, or 0.85x
    smaller until it does; the largest that ran is recorded."""
    from mlff_distiller.structures import random_water_box

    model = load_model("default", torch.float32).to(device)
    check_i, _, _ = periodic_edges_cuda(atoms_8k, model.cutoff, device)
    reference_edges = graph_from_atoms([atoms_8k], model.elements, model.cutoff).edge_i.shape[0]
    print(f"GPU neighbour list: {check_i.shape[0]} edges for 8,232 atoms, ASE {reference_edges}", flush=True)
    assert check_i.shape[0] == reference_edges
    runner = GraphReplay(model, max_buckets=1)
    torch.cuda.reset_peak_memory_stats(device)
    runner(*device_inputs(model, atoms_8k, device))
    per_atom = torch.cuda.max_memory_allocated(device) / len(atoms_8k)
    free, total = torch.cuda.mem_get_info(device)
    n_molecules = int(0.8 * free / per_atom / 3)
    print(
        f"{per_atom / 1024:.1f} KiB per atom at 8,232 atoms; {free / 2**30:.1f} GiB free: first try "
        f"{3 * n_molecules} atoms",
        flush=True,
    )
    best = None
    while time.perf_counter() < deadline:
        row = water_box_case(runner, model, random_water_box(n_molecules, 1.0, seed=0), device)
        if row is None and best is not None:
            break
        if row is not None:
            best = row
            print(f"{row['atoms']} atoms fit: {row['ms_per_call']:.1f} ms, peak {row['peak_gib']} GiB", flush=True)
        n_molecules = int(n_molecules * (1.25 if row is not None else 0.85))
    if best is not None:
        records.add(**best, card_gib=round(total / 2**30, 1))


def water_box_case(runner, model, atoms, device) -> dict | None:
    """One try of the largest-box search: its record, or None when it does not fit."""
    species = torch.as_tensor(np.array([model.elements.index(s) for s in atoms.get_chemical_symbols()]), device=device)
    try:
        edge_i, edge_j, r_ij = periodic_edges_cuda(atoms, model.cutoff, device)
        args = [species, edge_i, edge_j, r_ij.float()]
        del r_ij
        torch.cuda.reset_peak_memory_stats(device)
        runner(*args)
        ms = ms_per_call(lambda: runner(*args), device, budget_s=1.0, repeats=3)
    except (MemoryError, torch.cuda.OutOfMemoryError) as exc:
        print(f"{len(atoms)} atoms do not fit: {str(exc)[:200]}", flush=True)
        return None
    finally:
        runner.buckets.clear()
        gc.collect()
        torch.cuda.empty_cache()
    return dict(
        system="water_largest",
        atoms=len(atoms),
        edges=int(args[1].shape[0]),
        dtype="float32",
        method="analytic",
        mode="graphs-compiled",
        ms_per_call=ms,
        peak_gib=round(torch.cuda.max_memory_allocated(device) / 2**30, 2),
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--deadline-s", type=float, default=420.0, help="skip optional parts after this")
    parser.add_argument("--compile", nargs="*", default=["aspirin", "water_8232"], help="systems for torch.compile")
    parser.add_argument("--systems", nargs="+", default=["aspirin", *WATER], help="subset of the systems")
    parser.add_argument("--dtypes", nargs="+", default=list(DTYPES), choices=list(DTYPES))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--modes", nargs="+", default=["eager", *MODES], choices=["eager", *MODES])
    parser.add_argument("--no-cpu", action="store_true", help="leave out the one-core CPU cases")
    parser.add_argument("--profile", metavar="SYSTEM", help="profile the eager float32 call's kernels on SYSTEM")
    parser.add_argument("--tune", metavar="SYSTEM", help="time the fused kernels' launch settings on SYSTEM")
    args = parser.parse_args(argv)
    deadline = time.perf_counter() + args.deadline_s
    if not torch.cuda.is_available():
        print("no CUDA device: this benchmark needs one", file=sys.stderr)
        return 1
    device = torch.device("cuda")
    torch._dynamo.config.cache_size_limit = 64  # every dtype, method and system compiles in this one process
    args.out.mkdir(parents=True, exist_ok=True)
    records = Records(args.out, torch.cuda.get_device_name(device))
    atoms_by_name = systems()
    chosen = {name: atoms for name, atoms in atoms_by_name.items() if name in args.systems}
    if args.profile:
        profile = profile_kernels(atoms_by_name[args.profile], device, args.methods)
        atomic_write_text(args.out / "gpu_profile.json", json.dumps(profile, indent=1) + "\n")
    if args.tune:

        def keep(rows):
            tuning = [{"device": records.device_name, "system": args.tune, **row} for row in rows]
            atomic_write_text(args.out / "gpu_tune.json", json.dumps(tuning, indent=1) + "\n")

        tune_kernels(atoms_by_name[args.tune], device, keep)
    gpu_cases(records, chosen, device, args.dtypes, args.methods, args.modes)
    if not args.no_cpu:
        cpu_cases(records, atoms_by_name)
    if time.perf_counter() < deadline:
        largest_box(records, device, atoms_by_name["water_8232"], deadline)
    for name in args.compile:
        if time.perf_counter() < deadline:
            compiled_cases(records, atoms_by_name, device, [name])
    atomic_write_text(args.out / "gpu_model.json", json.dumps(records.rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

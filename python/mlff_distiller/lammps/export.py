"""`mlff-distiller export` (model file -> file for `pair_style mliap unified` and `mliap/halo`, and
with ``--format aoti`` the compiled force step for `mliap/aoti` beside it) and
`mlff-distiller lammps-input` (the input lines that go with them)."""

from __future__ import annotations

import pickle
from pathlib import Path

from ..files import atomic_path
from ..model.io import resolve_model_path
from .device import claim_rank_device
from .inputs import SPECIAL_BONDS_FIX, UNITS, plugin_lines
from ..model.painn import DTYPES, METHODS
from .unified import StudentUnified, read_export

FORMATS = ("mliap", "aoti")  # aoti: the .mliap and, beside it, the compiled force step (.pt2)


def build_unified(
    model: str | Path, method: str = "analytic", dtype: str = "float64", device: str = "cpu"
) -> StudentUnified:
    """The ML-IAP unified object for a model file or shipped model name."""
    return StudentUnified(resolve_model_path(model).read_bytes(), method=method, dtype=dtype, device=device)


def export(
    model: str | Path,
    output: str | Path,
    method: str = "analytic",
    dtype: str = "float64",
    device: str = "cpu",
    format: str = "mliap",
    threads: int = 1,
) -> Path:
    """Write a model file or shipped model as a file for LAMMPS (see ``write_export``); with
    ``format="aoti"`` also its force step compiled for ``device`` beside it (``package_path``),
    on a CPU for ``threads`` threads (``aoti.compile_package``)."""
    if format not in FORMATS:
        raise ValueError(f"unknown export format {format!r}: use one of {FORMATS}")
    unified = build_unified(model, method, dtype, device)
    # a device this machine cannot use is refused before anything is written (to export for
    # another machine, set MLFF_DEVICE=cpu: see device.py)
    run_device = claim_rank_device(device)
    output = write_export(unified, output)
    if format == "aoti":
        from .aoti import compile_package  # torch.export and inductor: only imported when asked for

        package = package_path(output)
        print(f"compiling the force step for {run_device} into {package} (a minute or more)", flush=True)
        compile_package(unified.model_file_bytes, package, method, dtype, run_device, threads)
    return output


def package_path(export_path: str | Path) -> Path:
    """Where ``export(format="aoti")`` puts the compiled force step of an export: beside it, .pt2."""
    from .aoti import PACKAGE_SUFFIX

    return Path(export_path).with_suffix(PACKAGE_SUFFIX)


def write_export(unified: StudentUnified, output: str | Path) -> Path:
    """Write the export atomically (a temporary file renamed into place), so a LAMMPS starting
    meanwhile reads the old file or the new one, never half of one."""
    output = Path(output)
    if output.suffix in (".pt", ".pth"):
        raise ValueError(
            f"{output}: LAMMPS 4 Feb 2025 and older open .pt/.pth names with torch.load, which "
            "refuses this file on torch >= 2.6 (LAMMPS 4 Jul 2026 accepts it); name it with another "
            "suffix, for example .mliap, which every LAMMPS version reads"
        )
    with atomic_path(output) as temporary, open(temporary, "wb") as fh:
        pickle.dump(unified, fh, protocol=pickle.HIGHEST_PROTOCOL)
    return output


def input_lines(path: str | Path, elements: list[str] | None = None) -> str:
    """The LAMMPS input lines for an exported file, one block per way of running it."""
    unified = read_export(path)
    summary = unified.summary  # plain data: no device needed, a CUDA export reads anywhere
    elements = elements or summary.elements
    unknown = sorted(set(elements) - set(summary.elements) - {"NULL"})
    if unknown:
        raise ValueError(f"element(s) {', '.join(unknown)} not in the model's elements {summary.elements}")
    coeff = f"pair_coeff * * {' '.join(elements)}"
    package = package_path(path)
    compiled = (
        [
            f"# (0) any box, any number of MPI ranks, no Python per step: the compiled force step {package.name}",
            "#     run from C++ by the plugin (analytic; fastest for small molecules, docs/results.md)",
            plugin_lines(str(package), elements, style="mliap/aoti"),
            "",
        ]
        if package.is_file()
        else []
    )
    return "\n".join(
        [
            f"# {path}: {summary.n_message_passes} layers, cutoff {summary.cutoff:g} A, "
            f"elements {' '.join(summary.elements)}, "
            f"{unified.method} forces in {unified.dtype_name}",
            f"units {UNITS}",
            "newton on",
            "# with bonds in the data (atom_style bond, molecular, full): keep bonded pairs in the neighbour list",
            SPECIAL_BONDS_FIX,
            "",
        ]
        + compiled
        + [
            "# (a) any box and any number of MPI ranks: the mlff-distiller plugin, halo exchange",
            "#     per layer (exact on any number of ranks, memory linear in the number of atoms)",
            plugin_lines(str(path), elements),
            "",
            "# (b) stock ML-IAP, only for a molecule or cluster in a non-periodic box on one MPI rank",
            f"pair_style mliap unified {path} 0",
            coeff,
            "",
        ]
    )


def run(args) -> int:
    """The module's two commands: `export` and `lammps-input`."""
    if args.command == "export":
        output = export(args.model, args.output, args.method, args.dtype, args.device, args.format, args.threads)
        print(output)
        if args.format == "aoti":
            print(package_path(output))
    else:
        print(input_lines(args.file, args.elements))
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("export", help="write a model as a file for `pair_style mliap unified`")
    p.add_argument("model", help="a model file or the name of a shipped model (e.g. default)")
    p.add_argument("-o", "--output", required=True, help="output file (not .pt/.pth; .mliap is a good suffix)")
    p.add_argument("--method", choices=METHODS, default="analytic")
    p.add_argument("--dtype", choices=list(DTYPES), default="float64")
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--format",
        choices=FORMATS,
        default="mliap",
        help="aoti: also compile the force step for `pair_style mliap/aoti` into FILE.pt2 (C++, no Python per step)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="with --format aoti on a CPU: threads of the compiled step (1: plain sums, the fastest per core)",
    )
    p.set_defaults(func=run)

    p = subparsers.add_parser("lammps-input", help="print the LAMMPS input lines for an exported file")
    p.add_argument("file", help="a file written by `mlff-distiller export`")
    p.add_argument("--elements", nargs="+", help="element of each LAMMPS atom type, in order (NULL allowed)")
    p.set_defaults(func=run)

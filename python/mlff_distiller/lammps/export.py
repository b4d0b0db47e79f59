"""`mlff-distiller export` (model file -> file for `pair_style mliap unified`) and
`mlff-distiller lammps-input` (the input lines that go with it, including the plugin pair style
`mliap/halo` of lammps_plugin/, the recommended way for periodic boxes and MPI)."""
from __future__ import annotations

import pickle
import sys
from pathlib import Path

from ..model.io import resolve_model_path
from .ghosts import ghost_mode_lines
from .unified import EXPORT_FORMAT, StudentUnified


def build_unified(model: str | Path, method: str = "analytic", dtype: str = "float64",
                  device: str = "cpu") -> StudentUnified:
    """The ML-IAP unified object for a model file or shipped model name."""
    return StudentUnified(resolve_model_path(model).read_bytes(), method=method, dtype=dtype, device=device)


def export(model: str | Path, output: str | Path, method: str = "analytic", dtype: str = "float64",
           device: str = "cpu") -> Path:
    output = Path(output)
    if output.suffix in (".pt", ".pth"):
        # LAMMPS loads .pt/.pth names with torch.load, which refuses pickled classes on torch >= 2.6
        # in LAMMPS releases before mid-2025; any other name goes through pickle.load.
        raise ValueError(f"{output}: LAMMPS would open a .pt/.pth file with torch.load and refuse it; "
                         "name it with another suffix, for example .mliap")
    unified = build_unified(model, method, dtype, device)
    output.parent.mkdir(parents=True, exist_ok=True)
    with open(output, "wb") as fh:
        pickle.dump(unified, fh, protocol=pickle.HIGHEST_PROTOCOL)
    return output


def read_export(path: str | Path) -> StudentUnified:
    with open(path, "rb") as fh:
        unified = pickle.load(fh)
    if not isinstance(unified, StudentUnified):
        raise ValueError(f"{path} is not a file written by `mlff-distiller export` ({EXPORT_FORMAT})")
    return unified


def input_lines(path: str | Path, elements: list[str] | None = None) -> str:
    """The LAMMPS input lines for an exported file, one block per way of running it."""
    unified = read_export(path)
    model = unified.model
    elements = elements or model.elements
    unknown = sorted(set(elements) - set(model.elements) - {"NULL"})
    if unknown:
        raise ValueError(f"element(s) {', '.join(unknown)} not in the model's elements {model.elements}")
    n_layers, cutoff = model.config.n_layers, model.cutoff
    coeff = f"pair_coeff * * {' '.join(elements)}"
    return "\n".join([
        f"# {path}: {n_layers} layers, cutoff {cutoff:g} A, elements {' '.join(model.elements)}, "
        f"{unified.method} forces in {unified.dtype_name}",
        "units metal",
        "newton on",
        "",
        "# (a) a molecule in a non-periodic box on one MPI rank: no ghost atoms take part",
        f"pair_style mliap unified {path} 0",
        coeff,
        "",
        "# (b) periodic boxes and any number of ranks, stock ML-IAP ghost-neighbour mode",
        "#     (every rank recomputes a ghost shell layers x cutoff deep)",
        ghost_mode_lines(str(path), n_layers, cutoff),
        coeff,
        "",
        "# (c) RECOMMENDED for periodic boxes and MPI: the mlff-distiller plugin, halo exchange per layer",
        "#     (exact on any number of ranks, no deep ghost shell, memory linear in the number of atoms)",
        f"plugin load {plugin_path()}",
        f"pair_style mliap/halo {path}",
        coeff,
        "",
    ])


def plugin_path() -> Path:
    """Where scripts/setup.sh installs the LAMMPS plugin (lammps_plugin/): in this environment."""
    return Path(sys.prefix) / "lib" / "lammps-plugins" / "mlffplugin.so"


def register(subparsers) -> None:
    p = subparsers.add_parser("export", help="write a model as a file for `pair_style mliap unified`")
    p.add_argument("model", help="a model file or the name of a shipped model (e.g. default)")
    p.add_argument("-o", "--output", required=True, help="output file (not .pt/.pth; .mliap is a good suffix)")
    p.add_argument("--method", choices=["analytic", "autograd"], default="analytic")
    p.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=lambda a: print(export(a.model, a.output, a.method, a.dtype, a.device)) or 0)

    p = subparsers.add_parser("lammps-input", help="print the LAMMPS input lines for an exported file")
    p.add_argument("file", help="a file written by `mlff-distiller export`")
    p.add_argument("--elements", nargs="+", help="element of each LAMMPS atom type, in order (NULL allowed)")
    p.set_defaults(func=lambda a: print(input_lines(a.file, a.elements)) or 0)


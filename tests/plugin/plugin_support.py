"""Helpers for the tests of the LAMMPS plugin (lammps_plugin/, `pair_style mliap/halo`).

The LAMMPS runners of tests/lammps/lammps_runner.py are reused (loaded by path); the rest builds small test models, systems, inputs and the Python
reference (energies, per-atom energies, forces, pressure tensor and per-atom virial).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch
from ase import Atoms
from ase.build import molecule

from mlff_distiller.structures import random_water_box
from mlff_distiller.lammps.export import export
from mlff_distiller.lammps.inputs import plugin_lines, plugin_path
from mlff_distiller.model.graph import forces_from_edge_gradients, graph_from_atoms, strain_derivative
from mlff_distiller.model.io import load_model, save_model
from mlff_distiller.model.painn import PaiNN, PaiNNConfig

HERE = Path(__file__).resolve().parent


def _load_lammps_helpers():
    """tests/lammps/lammps_runner.py, loaded by path (that folder need not be on sys.path)."""
    spec = importlib.util.spec_from_file_location("lammps_runner", HERE.parent / "lammps" / "lammps_runner.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_helpers = _load_lammps_helpers()
run_lammps, read_dump, read_values = _helpers.run_lammps, _helpers.read_dump, _helpers.read_values
write_data_with_bonds = _helpers.write_data_with_bonds
LMP, MPIRUN, PRESSURE_PRINTS, ROOT = _helpers.LMP, _helpers.MPIRUN, _helpers.PRESSURE_PRINTS, _helpers.ROOT
PLUGIN = plugin_path()
NKTV2P = 1.6021765e6  # LAMMPS metal units: eV/A^3 -> bar
WATER = ["H", "O"]


# -- models ------------------------------------------------------------------------------------
def make_export(
    tmp_path: Path,
    n_layers: int,
    elements=("H", "O"),
    cutoff=4.0,
    seed=0,
    n_features=16,
    dtype="float64",
    method="analytic",
    name=None,
    device="cpu",
    repulsion=False,
    format="mliap",
):
    """A random-weight PaiNN exported for LAMMPS: (file for pair_style, the model in float64).
    format="aoti" also compiles its force step beside the file (``export.package_path``)."""
    name = name or f"model{n_layers}_{n_features}_{dtype}_{method}_{device}" + ("_zbl" if repulsion else "")
    torch.manual_seed(seed)
    model = PaiNN(
        PaiNNConfig(
            elements=list(elements), n_features=n_features, n_layers=n_layers, cutoff=cutoff, repulsion=repulsion
        )
    )
    with torch.no_grad():
        model.readout.shift.uniform_(-1, 1)
    save_model(model, tmp_path / f"{name}.pt")
    return (
        export(
            tmp_path / f"{name}.pt",
            tmp_path / f"{name}.mliap",
            dtype=dtype,
            method=method,
            device=device,
            format=format,
        ),
        load_model(tmp_path / f"{name}.pt"),
    )


# -- systems -----------------------------------------------------------------------------------
def ortho_water(n_molecules=16, seed=3) -> Atoms:
    atoms = random_water_box(n_molecules, 1.0, seed)
    atoms.wrap()
    return atoms


def triclinic_water(seed=4) -> Atoms:
    atoms = random_water_box(8, 1.0, seed)
    length = atoms.cell[0, 0]
    # lower-triangular, as LAMMPS stores it: ASE writes it without rotating, so forces compare as is
    atoms.set_cell([[length, 0, 0], [1.5, length - 0.2, 0], [0.8, 1.1, length + 0.2]], scale_atoms=True)
    atoms.wrap()
    return atoms


def molecule_in_vacuum() -> Atoms:
    atoms = molecule("CH3CONH2")
    atoms.center(vacuum=8.0)
    atoms.pbc = False
    return atoms


def water_slab() -> Atoms:
    """Waters in x < ~9 A of a 28 A long periodic box: with `processors 4 1 1` one rank has no
    atoms and no ghosts, another only ghosts."""
    water = random_water_box(8, 1.0, 5)
    length = water.cell[0, 0]
    atoms = Atoms(
        water.get_chemical_symbols(), positions=water.positions + [1.0, 0, 0], cell=[28.0, length, length], pbc=True
    )
    atoms.wrap()
    return atoms


# -- the Python reference ----------------------------------------------------------------------
def reference(model, atoms: Atoms) -> dict[str, np.ndarray]:
    """Energies, forces, pressure tensor (virial part, bar) and per-atom virial stress (bar A^3,
    LAMMPS's compute stress/atom NULL virial) of the Python model on the periodic graph."""
    g = graph_from_atoms([atoms], model.elements, model.cutoff)
    energies, grad = model.energies_and_edge_gradients(g.species, g.edge_i, g.edge_j, g.r_ij, method="autograd")
    forces = forces_from_edge_gradients(g.edge_i, g.edge_j, grad, len(atoms)).numpy()
    r, gr = g.r_ij.numpy(), grad.numpy()
    # LAMMPS tallies v = -r (x) g per pair, half on each atom; stress/atom = -nktv2p * v
    per_pair = np.stack(
        [
            r[:, 0] * gr[:, 0],
            r[:, 1] * gr[:, 1],
            r[:, 2] * gr[:, 2],
            r[:, 0] * gr[:, 1],
            r[:, 0] * gr[:, 2],
            r[:, 1] * gr[:, 2],
        ],
        axis=1,
    )
    stress_atom = np.zeros((len(atoms), 6))
    np.add.at(stress_atom, g.edge_i.numpy(), 0.5 * NKTV2P * per_pair)
    np.add.at(stress_atom, g.edge_j.numpy(), 0.5 * NKTV2P * per_pair)
    out = {
        "energy": float(energies.sum()),
        "pe_atom": energies.numpy(),
        "forces": forces,
        "stress_atom": stress_atom,
        "w": strain_derivative(g.r_ij, grad).numpy(),
    }
    return out


# -- LAMMPS ------------------------------------------------------------------------------------
PRINTS = """
print "energy $(pe:%.17g)" file values.txt
print "vol $(vol:%.17g)" append values.txt
"""


def pair_lines(model_file, elements, style="mliap/halo") -> str:
    return plugin_lines(str(model_file), list(elements), style)


def lammps_input(
    pair: str, boundary="p p p", processors="", extra="", run="run 0", skin=0.5, units="metal", atom_style="atomic"
) -> str:
    return f"""
units {units}
atom_style {atom_style}
boundary {boundary}
newton on
{processors}
read_data structure.data
neighbor {skin} bin
{pair}
compute pe_atom all pe/atom
compute satom all stress/atom NULL virial
compute press all pressure NULL virial
{extra}
dump d all custom 1 out.dump id type x y z fx fy fz c_pe_atom c_satom[1] c_satom[2] c_satom[3] c_satom[4] c_satom[5] c_satom[6]
dump_modify d format float %.17g
{run}
{PRINTS}
{PRESSURE_PRINTS if run == "run 0" else ""}
"""


def run_single_point(
    workdir: Path, atoms: Atoms, script: str, nprocs: int = 1, elements=WATER, env: dict | None = None
) -> dict[str, np.ndarray]:
    workdir.mkdir(parents=True, exist_ok=True)
    atoms.write(workdir / "structure.data", format="lammps-data", specorder=list(elements), masses=True)
    proc = run_lammps(script, workdir, nprocs, env=env)
    dump, values = read_dump(workdir / "out.dump"), read_values(workdir / "values.txt")
    return {
        "output": proc.stdout,
        "energy": values["energy"],
        "pe_atom": dump["c_pe_atom"],
        "forces": np.stack([dump["fx"], dump["fy"], dump["fz"]], axis=1),
        "stress_atom": np.stack([dump[f"c_satom[{k}]"] for k in range(1, 7)], axis=1),
        "positions": np.stack([dump["x"], dump["y"], dump["z"]], axis=1),
        "pressure": np.array(
            [
                [values["pxx"], values["pxy"], values["pxz"]],
                [values["pxy"], values["pyy"], values["pyz"]],
                [values["pxz"], values["pyz"], values["pzz"]],
            ]
        )
        if "pxx" in values
        else None,
        "vol": values["vol"],
    }


def relative_errors(result: dict, ref: dict, per_atom_virial: bool = True) -> dict[str, float]:
    """Largest errors relative to the largest reference value, per quantity."""

    def rel(a, b):
        return float(np.abs(np.asarray(a) - np.asarray(b)).max() / max(np.abs(np.asarray(b)).max(), 1e-300))

    errors = {
        "energy": rel(result["energy"], ref["energy"]),
        "pe_atom": rel(result["pe_atom"], ref["pe_atom"]),
        "forces": rel(result["forces"], ref["forces"]),
    }
    if "w" in ref:
        errors["pressure"] = rel(result["pressure"], -ref["w"] / result["vol"] * NKTV2P)
    else:
        errors["pressure"] = rel(result["pressure"], ref["pressure"])
    if per_atom_virial:
        errors["stress_atom"] = rel(result["stress_atom"], ref["stress_atom"])
    return errors

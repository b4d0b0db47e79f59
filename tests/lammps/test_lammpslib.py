"""ASE's LAMMPSlib calculator (ase.calculators.lammpslib) driving LAMMPS with the plugin's
`pair_style mliap/halo`: energy, forces, per-atom energies and stress of a periodic water box equal
those of the same model in Python (StudentCalculator), also after the atoms move (LAMMPSlib then
reuses its LAMMPS instance)."""

import numpy as np
import pytest
from ase import units

from mlff_distiller import StudentCalculator
from mlff_distiller.lammps.export import export
from mlff_distiller.lammps.inputs import plugin_lines
from mlff_distiller.structures import random_water_box

REL = 1e-8  # float64 export against the float64 Python model
# LAMMPS turns eV/A^3 into bar with its own constant (metal units' nktv2p), and LAMMPSlib turns bar
# back into eV/A^3 with ASE's CODATA one: their product is 1 - 7.5e-8, not 1
NKTV2P = 1.6021765e6


def lammpslib_calculator(model_file, elements):
    from ase.calculators.lammpslib import LAMMPSlib

    return LAMMPSlib(
        lmpcmds=plugin_lines(str(model_file), elements).splitlines(),
        atom_types={element: i + 1 for i, element in enumerate(elements)},  # type k is elements[k-1]
        lammps_header=["units metal", "atom_style atomic", "atom_modify map array sort 0 0", "newton on"],
        keep_alive=True,
    )


def assert_close(actual, expected, what):
    actual, expected = np.asarray(actual), np.asarray(expected)
    scale = np.abs(expected).max()
    error = np.abs(actual - expected).max()
    assert error <= REL * scale, f"{what}: largest difference {error:.3g} for values up to {scale:.3g}"


@pytest.mark.parametrize("seed", [0, 1])
def test_lammpslib_with_the_plugin_equals_the_python_model(tmp_path, seed):
    model_file = export("default", tmp_path / "default.mliap")
    atoms = random_water_box(8, 1.0, seed)
    assert atoms.pbc.all()
    elements = ["H", "O"]

    with lammpslib_calculator(model_file, elements) as lammps_calc:
        reference = StudentCalculator("default")
        for step in range(2):
            if step == 1:  # moved atoms: LAMMPSlib keeps its LAMMPS and sends the new positions
                atoms.rattle(0.05, seed=seed)
            expected = atoms.copy()
            expected.calc = reference
            atoms.calc = lammps_calc
            energy = atoms.get_potential_energy()
            assert energy == pytest.approx(expected.get_potential_energy(), rel=REL, abs=0)
            assert_close(atoms.get_forces(), expected.get_forces(), "forces")
            assert_close(atoms.get_potential_energies(), expected.get_potential_energies(), "per-atom energies")
            assert_close(atoms.get_stress(), expected.get_stress() * NKTV2P * units.bar, "stress")

"""Harmonic frequencies (cm^-1) of one water at each model's own minimum: v1, v2 and GFN2-xTB (run
here, 2-core AMD EPYC; output water_frequencies_output.txt).

    python benchmarks/analysis/water_frequencies.py
"""

import numpy as np
from ase.build import molecule
from ase.units import _amu, _c, _e
from mlff_distiller.distill.distortions import hessian, relax, vibrational_modes
from mlff_distiller.model.calculator import StudentCalculator
from mlff_distiller.distill.teacher import make_teacher

calcs = {"v1": StudentCalculator("default"), "v2": StudentCalculator("default_v2"), "xtb": make_teacher("gfn2-xtb")}
for name, build in (("water", lambda: molecule("H2O")),):
    for cname, calc in calcs.items():
        try:
            m = relax(build(), calc, fmax=0.005, steps=1000)
        except RuntimeError as exc:
            print(name, cname, "relax failed", exc)
            continue
        w2, _ = vibrational_modes(m, hessian(m, calc))
        # ASE units: omega^2 in eV/(A^2 amu) -> cm^-1
        cm = np.sign(w2) * np.sqrt(np.abs(w2) * _e / _amu) * 1e10 / (2 * np.pi * _c * 100)
        print(f"{name:6s} {cname:4s} " + " ".join(f"{x:6.0f}" for x in cm))

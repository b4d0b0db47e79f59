"""What the Triton message kernels' atomic adds cost (issue 23 probe, not shipped): the kernels as
committed against copies whose atomic adds are plain stores (wrong sums, same loads and arithmetic),
with edges in receiver order (as LAMMPS lists them) and shuffled. 8,232 atoms, 54 edges each, F=64, K=20."""

import json
import sys
import types
from pathlib import Path

import torch

sys.path.insert(0, "python")
import mlff_distiller.model.fused.message_triton as committed  # noqa: E402

source = Path(committed.__file__).read_text()
probe = types.ModuleType("message_probe")
probe.__file__ = "/tmp/message_probe.py"
Path(probe.__file__).write_text(source.replace("tl.atomic_add(", "tl.store(").replace("mlff_triton::", "mlff_probe::"))
exec(compile(Path(probe.__file__).read_text(), probe.__file__, "exec"), probe.__dict__)

torch.manual_seed(0)
dev, dt = "cuda", torch.float32
N, per, F, K = 8232, 54, 64, 20
E = N * per
edge_i = torch.arange(N, device=dev).repeat_interleave(per)
edge_j = torch.randint(0, N, (E,), device=dev)
x, v = torch.randn(N, 3 * F, device=dev, dtype=dt), torch.randn(N, 3, F, device=dev, dtype=dt)
rbf, fc = torch.rand(E, K, device=dev, dtype=dt), torch.rand(E, device=dev, dtype=dt)
w, b = torch.randn(3 * F, K, device=dev, dtype=dt), torch.randn(3 * F, device=dev, dtype=dt)
u = torch.nn.functional.normalize(torch.randn(E, 3, device=dev, dtype=dt), dim=1)
gs, gv = torch.randn(N, F, device=dev, dtype=dt), torch.randn(N, 3, F, device=dev, dtype=dt)
shuffle = torch.randperm(E, device=dev)


def ms(call, reps=30):
    for _ in range(3):
        call()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    for _ in range(reps):
        call()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / reps


rows = []
for order, perm in (("receiver order", None), ("shuffled", shuffle)):
    ei, ej = (edge_i, edge_j) if perm is None else (edge_i[perm], edge_j[perm])
    for kernels, mod in (("atomic adds (committed)", committed), ("plain stores (probe)", probe)):
        fwd = ms(lambda: mod.message_forward(x, v, rbf, fc, w, b, u, ei, ej, False))
        bwd = ms(lambda: mod.message_backward(gs, gv, x, v, rbf, fc, w, b, u, ei, ej, False, True))
        rows.append(dict(order=order, kernels=kernels, forward_ms=round(fwd, 4), backward_ms=round(bwd, 4),
                         edges=E, atoms=N, features=F, device=torch.cuda.get_device_name()))
        print(json.dumps(rows[-1]), flush=True)
Path(sys.argv[1]).write_text(json.dumps(rows, indent=1))

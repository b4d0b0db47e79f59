"""Label water boxes with two hydrogens of different molecules brought close: the data v3 lacked
at H...H contacts (issue 24; at v1's liquid's 1.02 A contact v3 pulls the pair together where
GFN2-xTB pushes it apart, `water_contacts.py`).

    OMP_NUM_THREADS=1 python examples/default_model_v3/make_contacts.py      # a few minutes on one core

writes ``runs/default_model_v3/hh_contacts.extxyz`` (git-ignored): ``BOXES`` random 27-water boxes
(seeds other than v2's compressed boxes), each at every distance of ``DISTANCES``
(``distill.distortions.hydrogen_contacts``: the second hydrogen's molecule moved rigidly).
Training reads it with ``train_v2.py --extra-data``. Seeded and resumable.
"""

import argparse
import time
from pathlib import Path

import numpy as np

from mlff_distiller.distill.distortions import hydrogen_contacts
from mlff_distiller.distill.label import label_structures
from mlff_distiller.distill.teacher import make_teacher
from mlff_distiller.structures import random_water_box

ROOT = Path(__file__).resolve().parents[2]
TEACHER = "gfn2-xtb"
SEED = 0
BOXES, MOLECULES = 16, 27
FIRST_BOX_SEED = 100  # v2's compressed boxes took seeds 0-14
DISTANCES = (0.9, 1.0, 1.1, 1.2, 1.35, 1.5)


def structures() -> list:
    samples = []
    for k in range(BOXES):
        box = random_water_box(MOLECULES, 1.0, seed=FIRST_BOX_SEED + k)
        box.info["molecule"] = f"water{MOLECULES}_hh_contact"
        samples += hydrogen_contacts(box, DISTANCES, np.random.default_rng([SEED, k]))
    return samples


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--output", type=Path, default=ROOT / "runs" / "default_model_v3" / "hh_contacts.extxyz")
    output = parser.parse_args().output
    output.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    report = label_structures(structures(), make_teacher(TEACHER), output, teacher_name=TEACHER)
    print(f"{report.summary()} in {time.perf_counter() - start:.0f} s; {output}")


if __name__ == "__main__":
    main()

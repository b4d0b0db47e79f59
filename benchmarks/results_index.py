"""The index of results/: which command and which commit made each committed result file.

    python benchmarks/run.py results-index [--root results]

Each folder of results/ says what made it in its README.txt (the command, the machine, the commit
the run started from); the index gives that text's first paragraph, then every file with the
commit that first added it (renames followed), so a figure cited anywhere leads to its command and
to the code it ran. Folders without a README.txt fall back to the message of the commit that added
their files. Run it after committing new results (a file's commit is known only then), and
commit the index it writes.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from mlff_distiller.files import atomic_write_text

ROOT = Path(__file__).resolve().parent.parent
INDEX = "INDEX.md"
HEADER = """# Results

Raw output behind the figures of the README, `docs/results.md` and the examples. Written by
`python benchmarks/run.py results-index`: do not edit by hand. Per folder: what made it (its
README.txt, or the commit that added it), then each file with the commit that first added it.
Scripts that made results are code and live in `benchmarks/` (analysis helpers in
`benchmarks/analysis/`).
"""


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout


def first_commit(path: Path) -> tuple[str, str, str]:
    """(short hash, date, subject) of the commit that first added ``path``, renames followed."""
    log = git("log", "--follow", "--diff-filter=A", "--format=%h%x09%ad%x09%s", "--date=short", "--", str(path))
    lines = log.strip().splitlines()
    if not lines:
        return "uncommitted", "", ""
    sha, date, subject = lines[-1].split("\t", 2)
    return sha, date, subject


def tracked_files(root: Path) -> list[Path]:
    return sorted(Path(line) for line in git("ls-files", "--", str(root.relative_to(ROOT))).splitlines())


def first_paragraph(readme: Path) -> str:
    text = readme.read_text().strip()
    return text.split("\n\n", 1)[0].replace("\n", " ")


def folder_section(folder: Path, files: list[Path]) -> list[str]:
    name = folder.relative_to(ROOT / "results").as_posix() or "."
    lines = [f"## {name}/", ""]
    readme = folder / "README.txt"
    commits = {path: first_commit(path) for path in files}
    if readme.exists():
        lines.append(first_paragraph(readme) + f" (more in [{name}/README.txt]({name}/README.txt))")
    else:
        subjects = sorted({subject for _, _, subject in commits.values() if subject})
        lines.append("Made as the commit that added it says: " + " / ".join(subjects))
    lines += ["", "| file | first commit | date |", "|---|---|---|"]
    for path, (sha, date, _) in commits.items():
        relative = path.relative_to(folder.relative_to(ROOT)).as_posix()
        lines.append(f"| `{relative}` | {sha} | {date} |")
    return lines + [""]


def index_text(root: Path) -> str:
    by_folder: dict[Path, list[Path]] = {}
    for path in tracked_files(root):
        if path.name == INDEX:
            continue
        top = (ROOT / path).relative_to(root).parts
        folder = root / top[0] if len(top) > 1 else root
        by_folder.setdefault(folder, []).append(path)
    lines = [HEADER]
    for folder in sorted(by_folder):
        lines += folder_section(folder, by_folder[folder])
    return "\n".join(lines).rstrip() + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=ROOT / "results")
    args = parser.parse_args(argv)
    index = atomic_write_text(args.root.resolve() / INDEX, index_text(args.root.resolve()))
    print(f"wrote {index}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

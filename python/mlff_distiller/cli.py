"""The `mlff-distiller` command: one sub-command per module, each registering its own arguments.

Only the module of the command that runs is imported, so `mlff-distiller --help` and a command of
the LAMMPS side do not pay for torch's friends in the distillation side (RDKit, tblite) and the
other way round.
"""

import argparse
import importlib
import sys

# sub-command -> (module providing `register(subparsers)` and `run(args)`, one-line help for the command list)
COMMANDS = {
    "label": ("mlff_distiller.distill.label", "sample geometries and label them with the teacher (resumable)"),
    "train": ("mlff_distiller.distill.train", "train a student on a labelled data set"),
    "evaluate": ("mlff_distiller.distill.evaluate", "errors of a model against a labelled data set"),
    "active-learn": ("mlff_distiller.distill.active", "label, train a committee, student MD, select, repeat"),
    "export": ("mlff_distiller.lammps.export", "write a model as a file for LAMMPS"),
    "lammps-input": ("mlff_distiller.lammps.export", "print the LAMMPS input lines for an exported file"),
    "md": ("mlff_distiller.lammps.md", "run a ready LAMMPS input with a model; report ms/step and drift"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser, with the full arguments of ``command`` (its module imported) and a one-line
    entry for every other command."""
    parser = argparse.ArgumentParser(prog="mlff-distiller", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chosen = COMMANDS[command][0] if command in COMMANDS else None
    for name, (module_name, summary) in COMMANDS.items():
        if module_name != chosen:
            sub.add_parser(name, help=summary)
    if chosen:  # registers every command of that module, this one included
        importlib.import_module(chosen).register(sub)
    return parser


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    args = build_parser(command).parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, OSError, RuntimeError) as exc:
        print(f"mlff-distiller {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

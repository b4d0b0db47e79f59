"""The `mlff-distiller` command: one sub-command per module, each registering its own arguments."""
import argparse
import importlib
import sys

# sub-command name -> module providing `register(subparsers)`; imported lazily so that
# `mlff-distiller --help` does not pay for torch, RDKit or tblite.
COMMANDS = {
    "label": "mlff_distiller.distill.label",
    "train": "mlff_distiller.distill.train",
    "evaluate": "mlff_distiller.distill.evaluate",
    "active-learn": "mlff_distiller.distill.active",
    "export": "mlff_distiller.lammps.export",
    "lammps-input": "mlff_distiller.lammps.export",
    "md": "mlff_distiller.lammps.md",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlff-distiller", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for module_name in dict.fromkeys(COMMANDS.values()):
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("mlff_distiller"):
                continue  # that part of the package is not there yet
            raise
        module.register(sub)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, OSError, RuntimeError) as exc:
        print(f"mlff-distiller {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

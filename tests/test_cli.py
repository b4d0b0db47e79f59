"""The command line: only the chosen command's module is imported, and a missing module is an error."""

import subprocess
import sys

import pytest

from mlff_distiller import cli


def test_the_command_list_imports_no_command_module():
    code = (
        "import sys; from mlff_distiller import cli; cli.build_parser(); "
        "print(sorted(m for m in sys.modules if m.startswith(('mlff_distiller.', 'torch', 'rdkit', 'tblite'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['mlff_distiller.cli']"


def test_a_command_gets_its_full_arguments():
    args = cli.build_parser("lammps-input").parse_args(["lammps-input", "x.mliap", "--elements", "H", "O"])
    assert args.elements == ["H", "O"] and callable(args.func)


def test_a_missing_command_module_is_an_error(monkeypatch):
    monkeypatch.setitem(cli.COMMANDS, "ghost", ("mlff_distiller.no_such_module", "nothing"))
    with pytest.raises(ModuleNotFoundError):
        cli.build_parser("ghost")


def test_every_command_runs_its_modules_run():
    """One entry point per module: every sub-command's handler is its module's run(args)."""
    import argparse
    import importlib

    from mlff_distiller.cli import COMMANDS, build_parser

    for name, (module_name, _) in COMMANDS.items():
        sub = next(a for a in build_parser(name)._actions if isinstance(a, argparse._SubParsersAction))
        assert sub.choices[name].get_default("func") is importlib.import_module(module_name).run, name

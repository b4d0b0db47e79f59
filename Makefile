# The two commands of the README, and the set-up they both run first.
.PHONY: setup run test lint
PY := .venv/bin/python

setup:
	@bash scripts/setup.sh

run: setup
	@.venv/bin/mlff-distiller md inputs/aspirin

test: setup
	@$(PY) -m pytest -q tests

lint: setup
	@.venv/bin/ruff check python benchmarks tests examples scripts inputs
	@.venv/bin/ruff format --check python benchmarks tests examples scripts inputs
	@.venv/bin/clang-format --dry-run --Werror lammps_plugin/*.cpp lammps_plugin/*.h && echo "clang-format: lammps_plugin/ as LAMMPS formats its sources"

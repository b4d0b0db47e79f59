"""mlff-distiller: a distilled PaiNN force field with analytic forces, for LAMMPS."""

__version__ = "0.1.0"

"""The models the analysis scripts compare, by short name: the shipped v1 and v2, and any model
file named on the command line with ``--model NAME=FILE``."""

from __future__ import annotations

import argparse

MODELS = {"v1": "default", "v2": "default_v2"}


def add_model_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", action="append", default=[], metavar="NAME=FILE", help="a model file by a short name (repeatable)"
    )


def register_models(parser: argparse.ArgumentParser, args: argparse.Namespace, *used: str) -> None:
    """Add the ``--model`` files to ``MODELS``; stop with a message if a name in ``used`` is unknown."""
    for spec in args.model:
        name, _, path = spec.partition("=")
        MODELS[name] = path
    unknown = sorted(set(used) - MODELS.keys())
    if unknown:
        parser.error(
            f"unknown model {', '.join(unknown)}: use one of {', '.join(MODELS)} or name a file with --model NAME=FILE"
        )

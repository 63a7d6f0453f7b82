"""The ``aar`` command line. Each module in ``COMMAND_MODULES`` adds its commands to ``app``."""

from __future__ import annotations

import importlib
import sys

import typer

app = typer.Typer(
    help="Automated alignment researcher: weak-to-strong ideas as code, scored in a sandbox, kept in git.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

COMMAND_MODULES = ["agent.cli.harness", "agent.cli.research", "agent.cli.history", "agent.cli.steering",
                   "agent.cli.ui"]


def main() -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(name)
    from agent.cli.common import run_app

    sys.exit(run_app(app))

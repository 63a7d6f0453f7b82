"""The ``aar`` command line. Each module in ``COMMAND_MODULES`` adds its commands to ``app``."""

from __future__ import annotations

import importlib
import sys

import typer

app = typer.Typer(
    help="Automated alignment researcher: weak-to-strong ideas as code, scored in a sandbox, kept in git.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            number = version("aar")
        except PackageNotFoundError:  # run from a checkout that was never installed
            number = "unknown (not installed)"
        sys.stdout.write(f"aar {number}\n")
        raise typer.Exit(0)


@app.callback()
def _global_options(
    show_version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                      help="Print the version and exit."),
    quiet: bool = typer.Option(False, "--quiet", "-q",
                               help="Only errors and the final result: no progress lines."),
) -> None:
    """Automated alignment researcher: weak-to-strong ideas as code, scored in a sandbox, kept in git."""
    if quiet:
        from agent.progress import QUIET

        QUIET["on"] = True


COMMAND_MODULES = ["agent.cli.harness", "agent.cli.research", "agent.cli.history", "agent.cli.steering",
                   "agent.cli.ui"]


def main() -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(name)
    from agent.cli.common import run_app

    sys.exit(run_app(app))

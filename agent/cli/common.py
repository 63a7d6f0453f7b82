"""Shared CLI plumbing: one-line errors, JSON output, common options."""

from __future__ import annotations

import sys
from typing import Any

import typer
from rich.console import Console
from typer.exceptions import TyperException

from sandbox.errors import HarnessError, UnknownNameError
from sandbox.execution.base import ExecutorConfig
from sandbox.isolation.base import DEFAULT_ISOLATION
from sandbox.isolation.registry import get_isolation
from sandbox.tasks import SplitSizes
from sandbox.untrusted import dumps_strict, for_markup

# Wide output when piped (logs, CI), the terminal width otherwise.
console = Console(width=None if sys.stdout.isatty() else 140)
err_console = Console(stderr=True)

EXIT_IDEA_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class CliError(Exception):
    """Stop with one line on stderr and a non-zero exit."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


def fail(message: str, code: int = EXIT_USAGE) -> None:
    raise CliError(message, code)


def run_app(app: typer.Typer) -> int:
    """Run the CLI; returns the exit status. A bug's exception propagates (one traceback)."""
    try:
        code = app(standalone_mode=False)  # a command's typer.Exit(n) comes back as n
    except CliError as exc:
        err_console.print(f"[red]error:[/red] {for_markup(exc)}", highlight=False, soft_wrap=True)
        return exc.code
    except (HarnessError, ValueError, FileNotFoundError, PermissionError) as exc:
        # escape: a message may hold brackets (".[ray]") that rich would read as markup
        err_console.print(f"[red]error:[/red] {for_markup(exc)}", highlight=False, soft_wrap=True)
        return EXIT_USAGE
    except (KeyboardInterrupt, typer.Abort):
        err_console.print("interrupted")
        return EXIT_INTERRUPTED
    except TyperException as exc:  # usage errors (typer's bundled click raises these)
        show = getattr(exc, "show", None)
        if show is not None:
            show()
        else:
            err_console.print(f"[red]error:[/red] {exc.format_message()}", highlight=False, soft_wrap=True)
        return exc.exit_code
    return code if isinstance(code, int) else 0


def print_json(data: Any) -> None:
    sys.stdout.write(dumps_strict(data, indent=2, default=str) + "\n")


def parse_sizes(text: str | None) -> SplitSizes | None:
    if text is None:
        return None
    try:
        return SplitSizes.parse(text)
    except ValueError as exc:
        raise CliError(str(exc)) from exc


def fmt(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


SEEDS_OPTION = typer.Option(3, "--seeds", min=1, max=64, help="Number of seeds (weak teachers).")
TASK_OPTION = typer.Option("wordnet-10", "--task", "-t", help="Task name or a directory of jsonl files.")
SIZES_OPTION = typer.Option(None, "--split-sizes", help="weak_train,unlabeled,dev,heldout (e.g. 1000,4000,1000,1000).")
JSON_OPTION = typer.Option(False, "--json", help="Print JSON instead of a table.")
DEVICE_OPTION = typer.Option("auto", "--device",
                             help="Where fine-tune students train: auto (a GPU if visible), cpu or cuda.")
UNSAFE_ISOLATION = "process"


def _sandboxed_only(value: str) -> str:
    try:
        isolation = get_isolation(value)
    except UnknownNameError as exc:
        raise CliError(f"--isolation: {exc}") from exc
    if not isolation.sandboxed:
        fail(f"--isolation {value} runs idea code without a sandbox; pass --unsafe-no-sandbox to do that on purpose")
    return value


def resolve_isolation(name: str, unsafe: bool) -> str:
    """The isolation to run ideas under: a sandbox that can start here, or, only when asked
    for explicitly, none."""
    if unsafe:
        err_console.print("[yellow]warning:[/yellow] --unsafe-no-sandbox: idea code runs with your "
                          "files, network and environment", highlight=False)
        return UNSAFE_ISOLATION
    ok, why = get_isolation(name).available()
    if not ok:
        fail(why)
    return name


ISOLATION_OPTION = typer.Option(DEFAULT_ISOLATION, "--isolation", callback=_sandboxed_only,
                                help="Sandbox for idea processes.")
UNSAFE_OPTION = typer.Option(False, "--unsafe-no-sandbox",
                             help="Run idea code WITHOUT a sandbox (plain child process). Only for trusted code.")


EXECUTOR_OPTION = typer.Option("local", "--executor",
                               help="Where seeds run: local (this machine) or ray (a Ray cluster).")
RAY_ADDRESS_OPTION = typer.Option(None, "--ray-address",
                                  help="Ray cluster: auto (this machine's, else start a local one), "
                                       "local (always a new one) or HOST:PORT.")
SEED_RESOURCES_OPTION = typer.Option(None, "--seed-resources",
                                     help="What each seed asks Ray for: cpus=2,gpus=1,memory_gb=16.")


def resolve_executor(name: str, ray_address: str | None, resources: str | None) -> ExecutorConfig:
    """The executor choice, checked now: a cluster that cannot be joined or a Ray that is not
    installed stops here with one line, before any cache is built or session created."""
    from sandbox.execution.base import ExecutorOptions
    from sandbox.execution.registry import get_executor, list_executors

    if name not in list_executors():
        fail(f"--executor {name!r}: use one of {', '.join(list_executors())}")
    if name != "ray" and (ray_address or resources):
        fail("--ray-address and --seed-resources need --executor ray")
    fields: dict[str, str] = {}
    for pair in (resources or "").split(","):
        key, sep, value = pair.strip().partition("=")
        if pair.strip() and (not sep or key not in ("cpus", "gpus", "memory_gb")):
            fail(f"--seed-resources {resources!r}: write it as cpus=N,gpus=N,memory_gb=N")
        if sep:
            fields[key] = value
    try:
        config = ExecutorConfig(name=name, ray_address=ray_address or ("auto" if name == "ray" else None),
                                **fields)
    except ValueError as exc:
        raise CliError(f"--seed-resources {resources!r}: numbers expected ({exc.__class__.__name__})") from exc
    if name == "ray":  # join (or start) the cluster once now; later executors reuse the connection
        get_executor(ExecutorOptions(config, on_notice=lambda line: err_console.print(line, highlight=False)))
    return config

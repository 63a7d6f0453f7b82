"""``aar steer``: a message to a running (or resumable) researcher, delivered at its next turn;
``aar queue add/list/drop``: the directions idle researchers take."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from agent.cli import app
from agent.cli.common import JSON_OPTION, console, print_json
from experiments.layout import StoreError, members
from experiments.steering import send_steer
from experiments.store import LabStore
from experiments.views import num
from sandbox.untrusted import rich_text

LAB_OPTION = typer.Option(None, "--lab", help="Lab repository (default: $AAR_LAB, else ./aar-lab).")


def target_sessions(store: LabStore, text: str, researcher: str | None) -> list[str]:
    """The sessions ``text`` names: one session (id or unique prefix), or a group of parallel
    researchers (every member, or the one ``researcher`` names)."""
    group = members(text, store.session_heads())
    if group:
        chosen = [s for s in group if researcher is None or s.endswith(f"-{researcher}")]
        if not chosen:
            raise StoreError(f"group {text} has no researcher {researcher!r}; its sessions: {', '.join(group)}")
        return chosen
    return [store.resolve_session(text)]


@app.command("steer")
def steer_cmd(session: str = typer.Argument(..., help="Session id or unique prefix, or a group of researchers."),
              text: str = typer.Argument(..., help="What the researcher should hear (at most 4,000 characters)."),
              researcher: str | None = typer.Option(None, "--researcher", "-r", help="Only this researcher (e.g. r1)."),
              lab: Path | None = LAB_OPTION, json_out: bool = JSON_OPTION) -> None:
    """Send a message to a researcher: it arrives at its next turn (or when the session is resumed)
    and is committed with its transcript."""
    store = LabStore.open(lab, create=False)
    sent = [send_steer(store, sid, text, researcher) for sid in target_sessions(store, session, researcher)]
    if json_out:
        print_json([m.model_dump() for m in sent])
        return
    for m in sent:
        console.print(f"sent {m.id} to {m.session_id}{f' ({researcher})' if researcher else ''}: "
                      "delivered at its next turn", highlight=False)


queue_app = typer.Typer(help="The queue of research directions idle researchers take (--from-queue).",
                        no_args_is_help=True)
app.add_typer(queue_app, name="queue")


@queue_app.command("add")
def queue_add(text: str = typer.Argument(..., help="The direction, in your words (at most 4,000 characters)."),
              task: str | None = typer.Option(None, "--task", "-t", help="Only for sessions on this task."),
              lab: Path | None = LAB_OPTION, json_out: bool = JSON_OPTION) -> None:
    """Add a direction at the end of the queue."""
    from experiments.queue import add_direction

    d = add_direction(LabStore.open(lab), text, task)
    if json_out:
        print_json(d.model_dump())
        return
    console.print(f"queued {d.id}: {d.text[:80]}", highlight=False)


@queue_app.command("list")
def queue_list(all_: bool = typer.Option(False, "--all", help="Also dropped directions."),
               lab: Path | None = LAB_OPTION, json_out: bool = JSON_OPTION) -> None:
    """The queue, oldest first: who took each direction, its session and that session's best."""
    from experiments.queue import directions
    from experiments.ranking import BOUND_COLUMN, MEAN_COLUMN

    store = LabStore.open(lab, create=False)
    items = directions(store, include_dropped=all_)
    best = {s.session_id: s for s in store.sessions()}
    if json_out:
        print_json([{**d.model_dump(), "best_attempt": getattr(best.get(d.session_id or ""), "best_attempt", None),
                     "best_pgr": getattr(best.get(d.session_id or ""), "best_pgr", None)} for d in items])
        return
    table = Table("id", "direction", "task", "status", "session", f"best: {MEAN_COLUMN}", BOUND_COLUMN,
                  title=f"{len(items)} queued direction(s)")
    for d in items:
        s = best.get(d.session_id or "")
        table.add_row(d.id, rich_text(d.text, 60), d.task or "any", d.status, d.session_id or "—",
                      num(s.best_pgr, True) if s else "—", num(s.best_lower, True) if s else "—")
    console.print(table)


@queue_app.command("drop")
def queue_drop(direction: str = typer.Argument(..., help="The direction's id (or a unique prefix)."),
               lab: Path | None = LAB_OPTION) -> None:
    """Drop an open direction."""
    from experiments.queue import drop_direction

    d = drop_direction(LabStore.open(lab, create=False), direction)
    console.print(f"dropped {d.id}: {d.text[:80]}", highlight=False)

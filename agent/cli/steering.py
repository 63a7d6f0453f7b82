"""``aar steer``: a message to a running (or resumable) researcher, delivered at its next turn."""

from __future__ import annotations

from pathlib import Path

import typer

from agent.cli import app
from agent.cli.common import JSON_OPTION, console, print_json
from experiments.layout import StoreError, members
from experiments.steering import send_steer
from experiments.store import LabStore

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

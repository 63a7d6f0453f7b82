"""How sessions and attempts are written as git content: session ids, attempt folder names,
an attempt's files, state paths, and commit messages with machine-readable trailers."""

from __future__ import annotations

import json
import re

from experiments.layout import ATTEMPT_FILES, ATTEMPTS_DIR, FIRST_RESEARCHER, STATE_DIR, StoreError
from experiments.schemas import Attempt, SessionManifest, slug

_SESSION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,119}$")


def check_session_id(session_id: str) -> str:
    if not _SESSION_ID.match(session_id) or ".." in session_id or session_id.endswith((".lock", ".")):
        raise StoreError(f"session id {session_id!r}: use letters, digits, '.', '_' and '-' only")
    return session_id


def attempt_folder(attempt: Attempt) -> str:
    who = "" if attempt.researcher == FIRST_RESEARCHER else f"{slug(attempt.researcher, 16)}-"
    return f"{attempt.index:04d}-{who}{slug(attempt.name)}"


def state_path(relpath: str) -> str:
    """Where a file the research loop keeps for --resume lives on the session's branch."""
    parts = [p for p in relpath.replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts or ".." in parts or relpath.startswith("/"):
        raise StoreError(f"session file {relpath!r}: give a relative path without '..'")
    return "/".join([STATE_DIR, *parts])


def trailers(pairs: dict[str, object]) -> str:
    """Git trailers (``Key: value``, one line each; None values left out)."""
    return "\n".join(f"{k}: {' '.join(str(v).split())}" for k, v in pairs.items() if v is not None)


def attempt_message(attempt: Attempt, folder: str) -> str:
    """Subject (name, status, PGR ± CI), a short body, and machine-readable trailers."""
    res = attempt.result
    pgr = res.pgr.mean if res and res.pgr else None
    ci = res.pgr_ci95 if res else None
    score = "" if pgr is None else f", PGR {pgr:+.3f}" + ("" if ci is None else f" ± {ci:.3f}")
    subject = f"#{attempt.index} {attempt.name}: {attempt.status}{score}"
    body = attempt.rationale.strip().splitlines()[:6]
    pairs = {
        "Aar-Kind": "attempt", "Aar-Attempt": attempt.attempt_id, "Aar-Session": attempt.session_id,
        "Aar-Researcher": attempt.researcher, "Aar-Index": attempt.index, "Aar-Path": f"{ATTEMPTS_DIR}/{folder}",
        "Aar-Parent": attempt.parent_id or "none", "Aar-Status": attempt.status,
        "Aar-PGR": None if pgr is None else f"{pgr:.6f}", "Aar-PGR-CI95": None if ci is None else f"{ci:.6f}",
        "Aar-Task": res.task if res else None, "Aar-Cost-USD": f"{attempt.usage.cost_usd:.6f}",
    }
    return "\n\n".join(part for part in (subject, "\n".join(body), trailers(pairs)) if part)


def attempt_files(attempt: Attempt) -> dict[str, str]:
    """The files of an attempt's folder."""
    meta = attempt.model_dump(mode="json", exclude={"code", "rationale", "result", "log", "transcript"})
    meta["files"] = list(ATTEMPT_FILES)
    transcript = {"usage": attempt.usage.model_dump(mode="json"), "calls": attempt.transcript}
    result = attempt.result.model_dump_json(indent=2) if attempt.result else "null"
    return {
        "idea.py": attempt.code, "rationale.md": attempt.rationale, "result.json": result + "\n",
        "run.log": attempt.log, "transcript.json": json.dumps(transcript, indent=2, default=str) + "\n",
        "attempt.json": json.dumps(meta, indent=2) + "\n",
    }


def manifest_text(manifest: SessionManifest) -> str:
    return manifest.model_dump_json(indent=2) + "\n"

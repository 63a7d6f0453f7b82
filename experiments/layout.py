"""The lab's on-disk names, defined once: branch refs, files and folders of a session, and the
error every lab operation raises. The lowest room of experiments/: it imports nothing of it."""

from __future__ import annotations

import re
from collections.abc import Iterable

from sandbox.errors import HarnessError

SESSION_REFS = "refs/heads/sessions/"
SESSION_FILE = "session.json"
ATTEMPTS_DIR = "attempts"
STATE_DIR = "state"
PREDICTIONS_DIR = "predictions"  # state/predictions/<attempt id>.json: its test-row predictions, for analyses
ANALYSES_DIR = "analyses"  # one folder per analysis run: code, output, figures, the workspace it saw
ANALYSIS_FILE = "analysis.json"
WORKSPACE_DIR = "workspace"  # the researcher's files: at the branch root and in each attempt folder
# Model calls made after a session's last attempt (no attempt holds them): the calls in full,
# and their summed TokenUsage (small, for the index). Written together, in one commit.
PENDING_CALLS_FILE = "pending_calls.json"
UNATTACHED_USAGE_FILE = "unattached_usage.json"
UNATTACHED_USAGE_PATH = f"{STATE_DIR}/{UNATTACHED_USAGE_FILE}"
LAB_ENV = "AAR_LAB"
# Space the lab keeps in reserve (a file in .git) so that, once its disk is full, the write in
# progress and the session's end status can still be committed from it.
RESERVE_FILE = "aar-reserve"
RESERVE_BYTES = 1 << 20
# <lab>/.git/aar-running/<session>.lock: held (fcntl) by the process running the session, so a
# session marked running whose lock nobody holds was left by a process that died.
RUNNING_DIR = "aar-running"
DEFAULT_LAB = "aar-lab"
ATTEMPT_FILES = ("idea.py", "rationale.md", "result.json", "run.log", "transcript.json", "attempt.json")


class StoreError(HarnessError):
    """A lab operation that cannot proceed; the message says what to do."""


class LabDiskFull(StoreError):
    """The lab's disk (or quota) is full. ``recorded``: the write that hit it still went in,
    from the lab's reserve space; either way nothing committed before is lost."""

    def __init__(self, message: str, recorded: bool) -> None:
        super().__init__(message)
        self.recorded = recorded


# Researchers of a parallel session are r0, r1, ...; each one's session is "<group>-r<k>".
FIRST_RESEARCHER = "r0"
_GROUP_MEMBER = re.compile(r"^(.+)-r\d+$")


def researcher_id(k: int) -> str:
    """The id of the ``k``-th researcher of a group (r0 is also the only one of a lone session)."""
    return f"r{k}"


def member_session(group: str, k: int) -> str:
    """The session id of the ``k``-th researcher of ``group``."""
    return f"{group}-{researcher_id(k)}"


def group_of(session_id: str) -> str | None:
    """The group a member session belongs to, or None for a lone session."""
    found = _GROUP_MEMBER.match(session_id)
    return found.group(1) if found else None


def members(group: str, session_ids: Iterable[str]) -> list[str]:
    """The sessions of ``group`` among ``session_ids``, sorted."""
    return sorted(s for s in session_ids if group_of(s) == group)

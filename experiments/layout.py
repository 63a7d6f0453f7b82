"""The lab's on-disk names, defined once: branch refs, files and folders of a session, and the
error every lab operation raises. The lowest room of experiments/: it imports nothing of it."""

from __future__ import annotations

from sandbox.errors import HarnessError

SESSION_REFS = "refs/heads/sessions/"
SESSION_FILE = "session.json"
ATTEMPTS_DIR = "attempts"
STATE_DIR = "state"
# Model calls made after a session's last attempt (no attempt holds them): the calls in full,
# and their summed TokenUsage (small, for the index). Written together, in one commit.
PENDING_CALLS_FILE = "pending_calls.json"
UNATTACHED_USAGE_FILE = "unattached_usage.json"
UNATTACHED_USAGE_PATH = f"{STATE_DIR}/{UNATTACHED_USAGE_FILE}"
LAB_ENV = "AAR_LAB"
DEFAULT_LAB = "aar-lab"
ATTEMPT_FILES = ("idea.py", "rationale.md", "result.json", "run.log", "transcript.json", "attempt.json")


class StoreError(HarnessError):
    """A lab operation that cannot proceed; the message says what to do."""

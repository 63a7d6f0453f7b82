"""Labs for the dashboard tests (no tests here): a small lab with two sessions, and a fast builder
of a lab with thousands of attempts."""

from __future__ import annotations

import random
import subprocess
from pathlib import Path

from experiments.layout import ATTEMPTS_DIR
from experiments.schemas import Attempt
from experiments.store import LabStore, attempt_files, attempt_folder
from tests.test_history_support import attempt, manifest, random_pgrs, result

RUNNING = "20260101-120000-wordnet-10-offline-aaaa"
FINISHED = "20260102-090000-sst2-offline-bbbb"


def small_lab(path: Path) -> tuple[LabStore, dict[str, Attempt]]:
    """Session RUNNING (wordnet-10, still running): 7 attempts, one error, one with a warning,
    parent links and a model transcript; session FINISHED (sst2): 2 attempts."""
    store = LabStore.open(path)
    # Fixed start times, newest first as the sessions list orders them: two sessions made within
    # the same second would otherwise tie, and a slow machine splits the tie the other way.
    store.create_session(manifest(RUNNING, created_at="2026-01-03T12:00:00+00:00"))
    made: dict[str, Attempt] = {}
    pgrs = [0.30, 0.45, None, 0.52, -0.10, 0.61, 0.40]
    parent = None
    for i, pgr in enumerate(pgrs, start=1):
        a = attempt(RUNNING, i, name=f"idea {i}", pgr=pgr, attempt_id=f"att{i:04d}aaaa", parent_id=parent)
        if i == 4:
            a = a.model_copy(update={"transcript": [{
                "request": {"model": "claude-test", "messages": [{"role": "user", "content": "improve"}]},
                "response": {"model": "claude-test", "content": [
                    {"type": "text", "text": "Raising the confidence threshold should help."},
                    {"type": "tool_use", "name": "run_experiment", "input": {"name": "idea 4"}}]},
                "usage": {"input_tokens": 900, "output_tokens": 120}, "cost_usd": 0.0105}]})
        store.record_attempt(a)
        made[a.attempt_id] = a
        parent = a.attempt_id
    store.create_session(manifest(FINISHED, task="sst2", created_at="2026-01-02T09:00:00+00:00"))
    for i in (1, 2):
        a = attempt(FINISHED, i, name=f"sst idea {i}", pgr=0.2 * i, attempt_id=f"sst{i:04d}bbbb", task="sst2")
        store.record_attempt(a)
        made[a.attempt_id] = a
    store.set_session_status(FINISHED, "finished")
    return store, made


def big_lab(path: Path, sessions: int, per_session: int, seed: int = 0) -> LabStore:
    """A lab of ``sessions * per_session`` attempts in the store's layout (folder names and files
    from experiments.store), each session's attempts added by one ``git fast-import`` commit: the
    store writes one commit per attempt, far too slow to build thousands for a test."""
    rng = random.Random(seed)
    store = LabStore.open(path)
    stream = bytearray()
    for s in range(sessions):
        sid = f"20260201-{s:06d}-wordnet-10-bench"
        store.create_session(manifest(sid))
        message = f"{per_session} attempts".encode()
        stream += (f"commit {store.branch(sid)}\ncommitter bench <bench@localhost> 1767225600 +0000\n"
                   f"data {len(message)}\n").encode() + message + f"\nfrom {store.branch(sid)}^0\n".encode()
        for i in range(1, per_session + 1):
            base = attempt(sid, i, name=f"idea {s}-{i}")
            a = base.model_copy(update={"result": result(base.name, random_pgrs(rng)),
                                        "attempt_id": f"b{s:04d}{i:07d}"})
            for name, text in attempt_files(a).items():
                data = text.encode()
                stream += f"M 100644 inline {ATTEMPTS_DIR}/{attempt_folder(a)}/{name}\ndata {len(data)}\n".encode()
                stream += data + b"\n"
        stream += b"\n"
    subprocess.run(["git", "fast-import", "--quiet"], input=bytes(stream), cwd=store.path, check=True)
    return store


GROUP = "20260103-080000-wordnet-10-offline-cccc"


def add_group(store: LabStore, researchers: int = 2, per_researcher: int = 3) -> list[str]:
    """Parallel researchers as `aar research --researchers N` leaves them: sessions <group>-r<k>,
    each attempt tagged with its researcher, each session with its own direction."""
    members = []
    for k in range(researchers):
        sid = f"{GROUP}-r{k}"
        store.create_session(manifest(sid).model_copy(update={"direction": f"direction {k}",
                                                              "extra": {"group": GROUP}}))
        for i in range(1, per_researcher + 1):
            store.record_attempt(attempt(sid, i, name=f"r{k} idea {i}", pgr=0.1 * i + 0.05 * k,
                                         attempt_id=f"g{k}{i:04d}cccc", researcher=f"r{k}"))
        members.append(sid)
    return members

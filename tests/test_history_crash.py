"""Kill the writer at random moments (SIGKILL) and find a valid lab and a resumable session."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from experiments.reviews import add_review
from experiments.store import LabStore
from tests.test_history_support import attempt, manifest

ROOT = Path(__file__).resolve().parents[1]
SESSION = "crash-session"
TOTAL = 100


def writer_main(lab: str, session: str, total: int) -> None:
    """Resume-or-start a session and record attempts until ``total``; as a research loop would."""
    store = LabStore.open(lab)
    if session not in store.session_heads():
        store.create_session(manifest(session))
    print("ready", flush=True)
    while (i := store.next_attempt_index(session)) <= total:
        a = attempt(session, i, f"idea {i}", pgr=(i % 7) / 10, attempt_id=f"crash-{i:04d}",
                    parent_id=f"crash-{i - 1:04d}" if i > 1 else None)
        store.record_attempt(a, session_files={"progress.json": json.dumps({"last": i})})
        if i % 3 == 0:
            store.write_session_file(session, f"notes/{i}.md", f"after step {i}\n")
        if i % 4 == 0:
            store.sessions()  # index refreshes write SQLite: kills land there too
        if i % 5 == 0:
            add_review(store, a.attempt_id, "accept", f"step {i} looks right")
    store.set_session_status(session, "finished")
    print("done", flush=True)


def _start(lab: Path) -> subprocess.Popen:
    code = f"from tests.test_history_crash import writer_main; writer_main({str(lab)!r}, {SESSION!r}, {TOTAL})"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def _live_members(pgid: int) -> list[int]:
    """Processes of the group that are still running (zombies do not count)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            out.append(int(stat.parent.name))
    return out


def _kill(proc: subprocess.Popen, whole_group: bool) -> None:
    """SIGKILL the writer alone (its git children finish on their own, as after an OOM kill) or
    its whole process group (git children die mid-command too), then wait for the group to end."""
    if whole_group:
        os.killpg(proc.pid, signal.SIGKILL)
    else:
        proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    deadline = time.monotonic() + 30
    while _live_members(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.01)


def _git(lab: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=lab, capture_output=True, text=True)


def _assert_valid(lab: Path, context: str) -> int:
    """The lab passes fsck, every branch reads back, the index rebuilds; returns attempts recorded."""
    fsck = _git(lab, "fsck", "--no-dangling", "--no-progress")
    assert fsck.returncode == 0, f"{context}: {fsck.stdout}{fsck.stderr}"
    for ref in _git(lab, "for-each-ref", "--format=%(refname)").stdout.split():
        assert _git(lab, "ls-tree", "-r", ref).returncode == 0, f"{context}: {ref} unreadable"
    store = LabStore(lab)
    report = store.check(rebuild_index=True)
    assert report.ok, f"{context}: {report.problems}"
    if SESSION not in store.session_heads():
        return 0  # killed before the session's first commit: nothing to lose
    attempts = store.attempts(SESSION)
    indices = [a.index for a in attempts]
    assert indices == list(range(1, len(attempts) + 1)), f"{context}: gaps or duplicates {indices}"
    assert all(a.code and a.result and a.result.pgr for a in attempts), context
    if attempts:  # the loop's state moved in the same commit as the attempt
        assert json.loads(store.read_session_file(SESSION, "progress.json"))["last"] == len(attempts)
    assert len(store.index.ideas(session=SESSION, limit=None)) == len(attempts), context
    return len(attempts)


def test_sigkill_at_random_moments_leaves_a_valid_lab_and_a_resumable_session(tmp_path):
    seed = int(os.environ.get("AAR_CRASH_SEED", time.time_ns() % 100_000))
    rng = random.Random(seed)
    lab = tmp_path / "lab"
    LabStore.open(lab)
    counts, interrupted = [], 0
    for iteration in range(10):
        proc = _start(lab)
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        time.sleep(rng.uniform(0.0, 0.35))
        interrupted += proc.poll() is None
        _kill(proc, whole_group=iteration % 2 == 1)
        counts.append(_assert_valid(lab, f"seed {seed}, kill {iteration}"))
    assert counts == sorted(counts), f"seed {seed}: attempts disappeared {counts}"
    assert interrupted >= 7 and counts[-1] < TOTAL, f"seed {seed}: too few kills landed mid-run"

    proc = _start(lab)  # the session is rerunnable: a fresh writer resumes and completes it
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0 and out.split() == ["ready", "done"], err
    assert _assert_valid(lab, f"seed {seed}, final") == TOTAL
    store = LabStore(lab)
    assert store.manifest(SESSION).status == "finished"
    assert [a.parent_id for a in store.attempts(SESSION)][1:] == [f"crash-{i:04d}" for i in range(1, TOTAL)]

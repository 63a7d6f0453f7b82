"""The lab store: sessions as branches, attempts as commits, index, reviews, health check."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import time
from pathlib import Path

import pytest

from experiments.gitobjects import identity
from experiments.layout import StoreError
from experiments.reviews import add_review
from experiments.store import LabStore, lab_path
from tests.test_history_support import attempt, manifest


def git(lab: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=lab, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LabStore:
    monkeypatch.setenv("HOME", str(tmp_path))  # no global git identity unless a test sets one
    monkeypatch.setenv("USER", "tester")
    return LabStore.open(tmp_path / "lab")


def test_open_resolves_argument_env_then_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AAR_LAB", raising=False)
    assert lab_path() == tmp_path / "aar-lab"
    monkeypatch.setenv("AAR_LAB", str(tmp_path / "envlab"))
    assert lab_path() == tmp_path / "envlab"
    assert lab_path(tmp_path / "x") == tmp_path / "x"
    with pytest.raises(StoreError, match="no lab repository"):
        LabStore.open(create=False)
    store = LabStore.open()
    assert (tmp_path / "envlab" / ".git").is_dir()
    assert git(store.path, "status", "--porcelain") == ""  # README checked out on main, clean
    assert "sessions/" in (tmp_path / "envlab" / "README.md").read_text()


def test_attempt_round_trip_commit_layout_and_trailers(store):
    store.create_session(manifest("s1"))
    assert store.next_attempt_index("s1") == 1
    first = attempt("s1", 1, "confident only")
    sha1 = store.record_attempt(first)
    second = attempt("s1", store.next_attempt_index("s1"), "aux conf", parent_id=first.attempt_id)
    sha2 = store.record_attempt(second, session_files={"conversation.json": '{"turns": 2}'})
    assert second.index == 2 and store.next_attempt_index("s1") == 3
    assert store.attempts("s1") == [first, second]
    assert store.get_attempt(second.attempt_id[:6]) == second
    assert store.read_session_file("s1", "conversation.json") == '{"turns": 2}'

    files = git(store.path, "ls-tree", "-r", "--name-only", sha2).split()
    assert "session.json" in files and "state/conversation.json" in files
    for name in ("idea.py", "rationale.md", "result.json", "run.log", "transcript.json", "attempt.json"):
        assert f"attempts/0002-aux-conf/{name}" in files
    transcript = json.loads(git(store.path, "show", f"{sha2}:attempts/0002-aux-conf/transcript.json"))
    assert transcript["usage"]["cost_usd"] == 0.012 and transcript["calls"] == second.transcript
    meta = json.loads(git(store.path, "show", f"{sha2}:attempts/0002-aux-conf/attempt.json"))
    assert meta["parent_id"] == first.attempt_id
    subject = git(store.path, "log", "-1", "--format=%s", sha1).strip()
    assert subject == "#1 confident only: ok, PGR +0.300 ± 0.050"
    trailers = git(store.path, "log", "-1", "--format=%(trailers:only,unfold)", sha2)
    assert f"Aar-Attempt: {second.attempt_id}" in trailers
    assert "Aar-Status: ok" in trailers and "Aar-PGR: 0.300000" in trailers
    assert f"Aar-Parent: {first.attempt_id}" in trailers
    assert git(store.path, "rev-parse", "sessions/s1").strip() == sha2
    assert git(store.path, "rev-parse", f"{sha2}^").strip() == sha1
    sha3 = store.record_attempt(second)  # re-recording the same attempt replaces its folder
    assert git(store.path, "rev-parse", f"{sha3}^").strip() == sha2
    assert store.attempts("s1") == [first, second] and store.get_attempt(second.attempt_id).index == 2


def test_session_status_manifest_and_errors(store):
    branch = store.create_session(manifest("s1"))
    assert branch == "sessions/s1"
    with pytest.raises(StoreError, match="already exists"):
        store.create_session(manifest("s1"))
    with pytest.raises(StoreError, match="letters, digits"):
        store.create_session(manifest("bad id"))
    store.set_session_status("s1", "finished")
    assert store.manifest("s1").status == "finished"
    assert store.manifest("s1").run.split_sizes == "200,600,200,200"  # a format-1 manifest, read into run
    with pytest.raises(StoreError, match="no session"):
        store.record_attempt(attempt("nope", 1))
    with pytest.raises(StoreError, match="relative path"):
        store.write_session_file("s1", "../escape", "x")
    store.record_attempt(attempt("s1", 1, "a"))
    with pytest.raises(StoreError, match="next_attempt_index"):
        store.record_attempt(attempt("s1", 1, "b", attempt_id="other-id"))
    store.record_attempt(attempt("s1", 1, "b", attempt_id="par-id", researcher="r1"))  # parallel researcher
    with pytest.raises(StoreError, match="no attempt"):
        store.get_attempt("ffffffff")


def test_index_listing_filters_and_refresh_from_another_writer(store):
    store.create_session(manifest("s1"))
    store.create_session(manifest("s2", task="other-task"))
    store.record_attempt(attempt("s1", 1, "low", pgr=0.1))
    store.record_attempt(attempt("s1", 2, "high", pgr=0.6))
    store.record_attempt(attempt("s1", 3, "broken", pgr=None))
    store.record_attempt(attempt("s2", 1, "elsewhere", pgr=0.9, task="other-task"))
    assert [r.name for r in store.index.ideas(session="s1", sort="pgr")] == ["high", "low", "broken"]
    assert [r.name for r in store.index.ideas(statuses=["error"])] == ["broken"]
    assert [r.name for r in store.index.leaderboard("wordnet-10")] == ["high", "low"]
    top = store.index.leaderboard("wordnet-10")[0]
    assert top.heldout_acc == pytest.approx(0.49 + 0.6 / 4) and top.pgr_ci95 == 0.05
    summary = {s.session_id: s for s in store.sessions()}
    assert summary["s1"].attempts == 3 and summary["s1"].ok == 2
    assert summary["s1"].best_pgr == pytest.approx(0.6) and summary["s1"].cost_usd == pytest.approx(0.036)

    other = LabStore(store.path)  # a second writer (same as another process)
    other.record_attempt(attempt("s1", 4, "newer", pgr=0.7))
    assert store.index.ideas(session="s1", sort="pgr")[0].name == "newer"
    store.index.path.write_bytes(b"this is not sqlite")  # derived data: damaged -> rebuilt
    assert len(store.index.ideas()) == 5


def test_reviews_are_git_notes_with_reviewer_from_config(store):
    store.create_session(manifest("s1"))
    a = attempt("s1", 1)
    sha = store.record_attempt(a)
    review = add_review(store, a.attempt_id, "reject", "leaks test labels")
    assert review.reviewer == "tester"  # no git identity configured: $USER
    with store.repo.config_writer() as cfg:
        cfg.set_value("user", "name", "Ada Lovelace")
        cfg.set_value("user", "email", "ada@example.org")
    add_review(store, a.attempt_id[:5], "accept", "fine after all")
    note = json.loads(git(store.path, "notes", "--ref=aar-reviews", "show", sha))
    assert [r["verdict"] for r in note["reviews"]] == ["reject", "accept"]
    assert note["reviews"][1]["reviewer"] == "Ada Lovelace"
    assert [r.note for r in store.index.reviews(a.attempt_id)] == ["leaks test labels", "fine after all"]
    assert store.index.ideas()[0].review == "accept"


def _writer(lab: str, session: str, researcher: str, count: int) -> None:
    store = LabStore(Path(lab))
    for i in range(count):
        store.record_attempt(attempt(session, i + 1, f"{researcher} {i}", researcher=researcher,
                                     attempt_id=f"{session}-{researcher}-{i}"))


def test_parallel_writers_never_lose_or_corrupt(store):
    store.create_session(manifest("shared"))
    store.create_session(manifest("solo"))
    jobs = [("shared", "r0"), ("shared", "r1"), ("shared", "r2"), ("solo", "r0")]
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(store.path), s, r, 8)) for s, r in jobs]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    assert len(store.attempts("shared")) == 24 and len(store.attempts("solo")) == 8
    assert {a.researcher for a in store.attempts("shared", researcher="r1")} == {"r1"}
    report = store.check()
    assert report.ok, report.problems
    assert report.attempts == 32


def test_researcher_threads_each_with_their_own_store(store):
    """The research loop runs parallel researchers as threads in one process."""
    import threading

    for k in range(3):
        store.create_session(manifest(f"group-r{k}"))
    threads = [threading.Thread(target=_writer, args=(str(store.path), f"group-r{k}", f"r{k}", 6)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert [len(store.attempts(f"group-r{k}")) for k in range(3)] == [6, 6, 6]
    assert store.check().ok


def test_check_reports_damage(store):
    store.create_session(manifest("s1"))
    store.record_attempt(attempt("s1", 1))
    assert store.check(rebuild_index=True).ok
    import sqlite3

    with sqlite3.connect(store.index.path) as db:  # the index loses a row while the heads still match
        db.execute("DELETE FROM attempts")
    assert any("index differs from git" in p for p in store.check().problems)
    assert store.check(rebuild_index=True).ok
    # A branch whose attempt folder lacks files (written behind the store's back).
    objects = store.objects
    root = objects.commit_tree(objects.ref_sha("refs/heads/sessions/s1"))
    broken = objects.put(root, "attempts/0002-half/idea.py", (objects.blob("x = 1\n"), 0o100644))
    head = objects.ref_sha("refs/heads/sessions/s1")
    me = identity(store.repo)
    sha = objects.commit(broken, [head], "half", me, me)
    objects.update_ref("refs/heads/sessions/s1", sha, head, "test")
    report = store.check()
    assert not report.ok
    assert any("0002-half" in p and "lacks" in p for p in report.problems)


def test_a_ref_moved_outside_the_lock_is_retried_not_lost(store, monkeypatch):
    store.create_session(manifest("s1"))
    store.record_attempt(attempt("s1", 1, "first"))
    original = store.objects.update_ref
    moved = []

    def racing_update(ref, new, old, reason):
        if not moved:  # another git process advances the branch just before our compare-and-swap
            me = identity(store.repo)
            other = store.objects.commit(store.objects.commit_tree(old), [old], "external", me, me)
            original(ref, other, old, "external")
            moved.append(other)
        return original(ref, new, old, reason)

    monkeypatch.setattr(store.objects, "update_ref", racing_update)
    sha = store.record_attempt(attempt("s1", 2, "second"))
    assert git(store.path, "rev-parse", f"{sha}^").strip() == moved[0]
    assert [a.name for a in store.attempts("s1")] == ["first", "second"]


def test_a_stale_ref_lock_left_by_a_killed_git_is_cleared(store):
    store.create_session(manifest("s1"))
    lock = store.git_dir / "refs" / "heads" / "sessions" / "s1.lock"
    lock.write_text("")
    old = time.time() - 60
    os.utime(lock, (old, old))
    store.record_attempt(attempt("s1", 1))
    assert not lock.exists() and len(store.attempts("s1")) == 1

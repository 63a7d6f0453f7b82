"""People steer running researchers: a review or a message written by another process reaches the
researcher at its next turn, takes effect (a rejected attempt leaves every ranking), is committed
with the transcript, and is never delivered twice (not even across --resume)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from agent.progress import Reporter
from agent.research import run_research
from experiments.store import LabStore
from tests.conftest import SMALL
from tests.fakes.messages_server import MessagesServer
from tests.test_e2e_claude import anthropic_env, config, plain_session, run_step  # noqa: F401 (a fixture)

NOTE = "reward hack: it only copies the teacher"
STEER = "try label propagation over the strong features"
WRITE_BOTH = f"""import sys
from experiments.reviews import add_review
from experiments.steering import send_steer
from experiments.store import LabStore
store = LabStore.open(sys.argv[1], create=False)
add_review(store, sys.argv[2], "reject", {NOTE!r})
send_steer(store, sys.argv[3], {STEER!r})
"""


def aar(lab: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``aar ARGS --lab LAB`` in its own process, as a person at another terminal would type it."""
    return subprocess.run([sys.executable, "-m", "agent.cli", *args, "--lab", str(lab)], capture_output=True,
                          text=True, env=env or dict(os.environ), timeout=120, check=False)


def steering_entries(store: LabStore, session_id: str) -> list[tuple[int, dict[str, Any]]]:
    """``(attempt index, delivered item)`` of every delivery committed in the session's transcripts."""
    return [(a.index, d) for a in store.attempts(session_id) for e in a.transcript for d in e.get("steering", [])]


@pytest.mark.slow
def test_a_running_offline_session_hears_a_rejection_and_a_steer_from_another_process(small_cache, tmp_path):
    env = {**os.environ, "AAR_CACHE_DIR": str(small_cache.root)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent.cli", "research", "--split-sizes", SMALL, "--seeds", "2",
         "--max-attempts", "16", "--lab", str(tmp_path), "--plain"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline, summary = time.monotonic() + 600, None
        while time.monotonic() < deadline and summary is None:
            time.sleep(1)
            if (tmp_path / ".git").exists():
                summary = next((s for s in LabStore.open(tmp_path, create=False).sessions()
                                if s.ok >= 2 and s.best_attempt), None)
        assert summary is not None and proc.poll() is None, "the session did not get going"
        rejected = summary.best_attempt
        # another process writes both at once (two CLI start-ups could outlast a short session)
        subprocess.run([sys.executable, "-c", WRITE_BOTH, str(tmp_path), rejected, summary.session_id],
                       check=True, env=env, timeout=300)
        out, err = proc.communicate(timeout=900)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    store = LabStore.open(tmp_path)
    sid = summary.session_id
    delivered = steering_entries(store, sid)
    kinds = {d["kind"]: (index, d) for index, d in delivered}
    assert set(kinds) == {"review", "steer"} and len(delivered) == 2  # each once
    assert kinds["review"][1]["attempt_id"] == rejected and kinds["review"][1]["text"] == NOTE
    assert kinds["steer"][1]["text"] == STEER
    first_after = min(index for index, _ in delivered)
    later = [a for a in store.attempts(sid) if a.index >= first_after]
    assert later and all(a.parent_id != rejected for a in later)  # the rejected one parents nothing more
    requests = [e["request"] for a in later for e in a.transcript if "request" in e]
    assert any(r.get("steering") for r in requests)  # the offline search said what it did with them
    receipts = " ".join(t for r in requests for t in r.get("steering", []))
    assert f"rejection of {rejected}" in receipts and "clean-the-weak-labels genes" in receipts
    assert all(any(x.get("rejected") for x in r["results"]) for r in requests)  # the search sees it rejected
    final = next(s for s in store.sessions() if s.session_id == sid)
    assert final.best_attempt != rejected and rejected not in out.split("best PGR")[-1]
    assert "review of" in err and "message from" in err  # shown as they arrived
    board = store.index.leaderboard(final.task)
    assert board[-1].attempt_id == rejected and board[-1].rejected and board[-1].review_note == NOTE


@pytest.mark.slow
def test_the_scripted_model_hears_the_review_and_the_message_once_even_across_resume(small_cache, tmp_path):
    state: dict[str, str] = {}

    def review_and_steer(body: dict[str, Any]) -> dict[str, Any]:
        """While the model 'thinks' about its second turn, a person reviews and writes."""
        store = LabStore.open(tmp_path)
        (session,) = store.sessions()
        first = store.attempts(session.session_id)[0]
        state["attempt"] = first.attempt_id
        subprocess.run([sys.executable, "-m", "agent.cli", "review", first.attempt_id, "--reject", "--note", NOTE,
                        "--lab", str(tmp_path)], check=True, capture_output=True)
        subprocess.run([sys.executable, "-m", "agent.cli", "steer", session.session_id, STEER,
                        "--lab", str(tmp_path)], check=True, capture_output=True)
        return run_step("weak copy 1", "The teacher again.", "import numpy as np\n\n\ndef run(ctx):\n"
                        "    return np.asarray(ctx.weak_test_probs)\n\nVARIANT = 1\n", 1)

    steps = plain_session(3)
    steps[1] = review_and_steer
    with MessagesServer(steps[:3]) as server:
        first = run_research(config(tmp_path, server, max_attempts=3), Reporter())
    assert first.attempts == 3 and len(server.requests) == 3
    bodies = [json.dumps(b) for b in server.bodies()]
    assert NOTE not in bodies[1] and STEER not in bodies[1]
    assert NOTE in bodies[2] and STEER in bodies[2] and state["attempt"] in bodies[2]  # the very next request
    with MessagesServer(steps[3:]) as again:
        resumed = run_research(config(tmp_path, again, max_attempts=5, resume=first.session_id), Reporter())
    assert resumed.stop_reason == "the proposer finished" and again.remaining == 0
    after = json.dumps(again.bodies()[0])
    assert after.count(NOTE) == 1 and after.count(STEER) == 1  # in the history once, not delivered again
    store = LabStore.open(tmp_path)
    assert [d["kind"] for _, d in steering_entries(store, first.session_id)] == ["review", "steer"]
    assert resumed.best_attempt != state["attempt"]


@pytest.mark.slow
def test_a_queue_of_three_directions_feeds_two_researchers(small_cache, tmp_path):
    from agent.parallel import run_parallel
    from agent.session_setup import ResearchConfig
    from experiments.queue import add_direction, directions
    from experiments.schemas import Budgets, RunConfig

    store = LabStore.open(tmp_path)
    texts = ["label propagation over the strong features", "ensembles of views", "write it as a sonnet"]
    for text in texts:
        add_direction(store, text)
    config = ResearchConfig(task="wordnet-10", seeds=2, lab=tmp_path,
                            run=RunConfig(split_sizes=SMALL, budgets=Budgets(max_attempts=1)))
    group = run_parallel(config, 2, from_queue=True)
    queue = directions(store)
    assert [d.status for d in queue] == ["taken"] * 3  # every direction taken ...
    taken_by = [d.session_id for d in queue]
    assert len(set(taken_by)) == 3 and {r.session_id for r in group.researchers} == set(taken_by)  # ... once each
    for d in queue:  # each session records its direction
        assert store.manifest(d.session_id or "").direction == d.text
    assert sorted(group.directions.values()) == sorted(texts)
    assert aar(tmp_path, "queue", "list").stdout.count("taken") == 3

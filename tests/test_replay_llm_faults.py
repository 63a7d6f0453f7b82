"""``aar replay --llm`` reports honestly (issue 24): recorded attempt ids are mapped to the
replay's, so a ``parent_id`` the model read off a result resolves; a step the replay cannot
reach is a mismatch and a non-zero exit; a recorded call that broke off and was retried is not
replayed as an answer. Real loop, sandbox, lab and the local Messages server."""

from __future__ import annotations

import json
import subprocess
import sys

from agent.progress import Reporter
from agent.replay_llm import replay_llm
from agent.research import run_research
from experiments.store import LabStore
from tests.fakes.messages_server import MessagesServer
from tests.fakes.scripts import tool_use
from tests.test_e2e_claude import ISOLATION, PLAIN, anthropic_env, config, first_attempt_id  # noqa: F401
from tests.test_loop_faults import BIG


def child(parent_of: str) -> dict:
    return tool_use("run_experiment", {"name": "child", "hypothesis": "builds on the first",
                                       "code": PLAIN + "VARIANT = 'child'\n", "parent_id": parent_of},
                    call_id="toolu_child")


def test_replay_maps_attempt_ids_so_parents_resolve_and_retried_calls_are_skipped(small_cache, tmp_path):
    script = [tool_use("run_experiment", {"name": "first", "hypothesis": "floor", "code": PLAIN}, call_id="toolu_1"),
              {**tool_use("show_leaderboard", {}, usage=BIG), "cut_after_events": 3},  # broke off: retried
              lambda body: child(first_attempt_id(body)),
              tool_use("finish", {"summary": "done"}, call_id="toolu_finish")]
    with MessagesServer(script) as server:
        cfg = config(tmp_path, server, max_attempts=5)
        cfg.run.options = {"retry_base_s": 0.05}
        out = run_research(cfg, Reporter())
    store = LabStore.open(tmp_path)
    first, second = store.attempts(out.session_id)
    assert out.ending == "finished" and second.parent_id == first.attempt_id

    report = replay_llm(out.session_id, tmp_path, isolation=ISOLATION)
    new_first, new_second = LabStore.open(tmp_path).attempts(report.replay_session)
    assert new_second.parent_id == new_first.attempt_id != first.attempt_id
    assert len(report.steps) == 2 and report.reproduced


def test_a_step_the_replay_cannot_reach_is_a_mismatch_and_exit_1(small_cache, tmp_path):
    script = [tool_use("run_experiment", {"name": "first", "hypothesis": "floor", "code": PLAIN}, call_id="toolu_1"),
              tool_use("run_experiment", {"name": "second", "hypothesis": "again", "code": PLAIN + "VARIANT = 2\n"},
                       call_id="toolu_2"),
              tool_use("finish", {"summary": "done"}, call_id="toolu_finish")]
    with MessagesServer(script) as server:
        out = run_research(config(tmp_path, server, max_attempts=5), Reporter())
    store = LabStore.open(tmp_path)
    assert len(store.attempts(out.session_id)) == 2
    full = [c for a in store.attempts(out.session_id) for c in a.transcript]
    cut = full[:len(store.attempts(out.session_id)[0].transcript)]  # the recording ends after attempt 1
    report = replay_llm(out.session_id, tmp_path, isolation=ISOLATION, calls=cut)
    assert [s.reproduced for s in report.steps] == [True, False] and not report.reproduced
    assert report.steps[1].replayed_pgr is None and report.steps[1].recorded_pgr is not None

    whole = subprocess.run([sys.executable, "-m", "agent.cli", "replay", out.session_id, "--llm", "--lab",
                            str(tmp_path), "--json", "--isolation", ISOLATION], capture_output=True, text=True)
    assert whole.returncode == 0, whole.stderr
    assert json.loads(whole.stdout)["reproduced"]

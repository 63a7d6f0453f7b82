"""Streams that break off mid-way (issue 24): an ``event: error``, a garbled data line, an end
before ``message_stop``. Each is retried like a 5xx, a stream whose ``message_delta`` arrived is
accepted, and every stream that started is charged, to the cent of what the server billed, in the
session's totals. Real anthropic SDK against the local Messages server; the real loop and lab."""

from __future__ import annotations

import json

import pytest

from agent.progress import Reporter
from agent.proposers.base import ProposerConfig, get_proposer
from agent.research import run_research
from experiments.layout import PENDING_CALLS_FILE
from experiments.store import LabStore
from sandbox.errors import HarnessError
from tests.fakes.messages_server import MessagesServer
from tests.fakes.scripts import tool_use
from tests.fakes.tools import RecordingTools
from tests.test_e2e_claude import PLAIN, anthropic_env, config  # noqa: F401 - anthropic_env: the dummy key
from tests.test_loop_faults import BIG, billed

FAST = {"max_retries": 2, "retry_base_s": 0.05, "retry_max_wait_s": 0.1}
OVERLOADED = {"type": "overloaded_error", "message": "Overloaded"}


def finish(summary: str = "done", **extra: object) -> dict[str, object]:
    return {**tool_use("finish", {"summary": summary}, usage=BIG), **extra}


def claude(server: MessagesServer, **options: object):
    return get_proposer("claude", ProposerConfig(base_url=server.url, options={**FAST, **options}))


@pytest.mark.parametrize("fault", [
    {"error_event": OVERLOADED},
    {"error_event": {"type": "api_error", "message": "Internal server error"}, "cut_after_events": 3},
    {"garbled": True, "cut_after_events": 2},
    {"cut_after_events": 3},  # ends cleanly, no message_delta, no message_stop
], ids=["overloaded-event", "api-error-event", "garbled-line", "no-message-stop"])
def test_a_stream_that_breaks_off_is_retried_and_charged(fault):
    tools = RecordingTools()
    with MessagesServer([finish("first", **fault), finish("second")]) as server:
        claude(server).run(tools)
    assert tools.finished == ["second"] and len(server.requests) == 2
    assert len(tools.notices) == 1 and "retry 1 of 2" in tools.notices[0]
    abandoned = [c for c in tools.calls if c.get("error")]
    assert len(abandoned) == 1 and abandoned[0]["usage"]["input_tokens"] == BIG["input_tokens"]
    assert tools.cost == pytest.approx(billed([server])[0]) and len(server.billed) == 2


def test_an_error_event_names_its_type_in_the_retry_notice():
    tools = RecordingTools()
    with MessagesServer([finish(error_event=OVERLOADED), finish("ok")]) as server:
        claude(server).run(tools)
    assert "overloaded_error: Overloaded" in tools.notices[0] and "200" not in tools.notices[0]


def test_a_final_error_event_is_not_retried():
    tools = RecordingTools()
    bad = {"type": "invalid_request_error", "message": "bad thing"}
    with MessagesServer([finish(error_event=bad), finish("never")]) as server:
        with pytest.raises(HarnessError) as info:
            claude(server).run(tools)
    assert len(server.requests) == 1 and "rejected the request mid-stream" in str(info.value)
    assert "invalid_request_error: bad thing" in str(info.value) and tools.cost == pytest.approx(billed([server])[0])


def test_a_stream_that_brought_message_delta_is_accepted_without_message_stop():
    tools = RecordingTools()
    with MessagesServer([finish("complete enough", cut_after_events=-1)]) as server:
        claude(server).run(tools)
    assert tools.finished == ["complete enough"] and tools.notices == [] and len(server.requests) == 1
    assert tools.cost == pytest.approx(billed([server])[0])
    assert tools.calls[0]["usage"]["output_tokens"] == BIG["output_tokens"]  # message_delta's count


def test_retries_spent_on_broken_streams_fail_with_one_line_and_every_stream_charged(small_cache, tmp_path):
    broken = [finish(error_event=OVERLOADED), finish(garbled=True), finish(cut_after_events=3)]
    with MessagesServer([tool_use("show_leaderboard", {}, usage=BIG), *broken]) as server:
        cfg = config(tmp_path, server, max_attempts=5)
        cfg.run.options = FAST
        out = run_research(cfg, Reporter())
    assert out.ending == "failed" and out.exit_code == 1 and out.resume_command
    assert "\n" not in out.stop_reason and "still broke off after 2 retries" in out.stop_reason
    assert "Unterminated" not in out.stop_reason and "Traceback" not in out.stop_reason
    cost, _ = billed([server])
    assert len(server.billed) == 4 and out.cost_usd == pytest.approx(cost, abs=1e-9)
    store = LabStore.open(tmp_path)
    assert store.manifest(out.session_id).status == "failed"
    kept = json.loads(store.read_session_file(out.session_id, PENDING_CALLS_FILE))
    assert len(kept) == 4 and [bool(k.get("error")) for k in kept] == [False, True, True, True]
    row = next(s for s in store.sessions() if s.session_id == out.session_id)
    assert row.cost_usd == pytest.approx(cost, abs=1e-9)

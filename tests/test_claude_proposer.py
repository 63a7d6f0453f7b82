"""The Claude proposer through the real anthropic SDK against the scripted Messages server."""

from __future__ import annotations

import json
import time

import pytest

from agent.proposers.base import BudgetStop, ProposerConfig, get_proposer
from agent.proposers.claude import DEFAULT_MODEL, ClaudeOptions, make_client, resolve_provider
from agent.proposers.tooling import available_tools
from sandbox.errors import HarnessError
from tests.fakes.messages_server import MessagesServer
from tests.fakes.scripts import (
    error_step,
    result_text,
    scripted_claude_session,
    text_turn,
    tool_results,
    tool_use,
)
from tests.fakes.tools import CONFIRM_MARK, HELDOUT_MARK, RecordingTools, canned_result

GOOD = "import numpy as np\n\ndef run(ctx):\n    return np.asarray(ctx.weak_test_probs)\n"
IDEAS = [("soft targets", "Plain soft CE is the reference.", GOOD),
         ("confident only", "Dropping unsure weak labels removes noise.", GOOD + "# filtered\n")]


@pytest.fixture(autouse=True)
def _anthropic_env(monkeypatch):
    for name in ("CLAUDE_CODE_USE_BEDROCK", "CLAUDE_CODE_USE_VERTEX", "ANTHROPIC_VERTEX_PROJECT_ID",
                 "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_PROFILE", "ANTHROPIC_BASE_URL", "AAR_PRICES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")


def claude(server: MessagesServer, **options):
    proposer = get_proposer("claude", ProposerConfig(base_url=server.url, options=options))
    proposer.check_ready()
    return proposer


def assert_valid_transcript(messages: list[dict]) -> None:
    """Roles alternate from a user message and every tool_result answers the turn before it."""
    assert messages[0]["role"] == "user"
    for before, after in zip(messages, messages[1:], strict=False):
        assert before["role"] != after["role"]
        ids = {b["id"] for b in before["content"] if b.get("type") == "tool_use"} if before["role"] == "assistant" else set()
        for block in after["content"]:
            if block.get("type") == "tool_result":
                assert block["tool_use_id"] in ids


def test_session_dispatches_tools_and_feeds_back_dev_figures_only():
    tools = RecordingTools(leak_heldout=True)  # even a full dump must not reach the model
    with MessagesServer(scripted_claude_session(IDEAS)) as server:
        claude(server).run(tools)
    bodies = server.bodies()
    assert len(bodies) == 4 and server.remaining == 0
    assert [(s.name, s.hypothesis, s.code) for s in tools.experiments] == IDEAS
    assert tools.finished == ["Tried the scripted ideas; see the leaderboard."]
    first = bodies[0]
    assert first["model"] == DEFAULT_MODEL
    assert [t["name"] for t in first["tools"]] == ["run_experiment", "show_leaderboard", "show_attempt", "finish",
                                                   "post_finding", "read_findings"]
    assert first["stream"] is True  # streamed: max_tokens may pass the non-streaming limit
    assert first["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert first["tools"][-1]["cache_control"] == {"type": "ephemeral"}
    assert first["messages"][-1]["content"][-1]["cache_control"] == {"type": "ephemeral"}
    assert "confident_only" in first["messages"][0]["content"][0]["text"]  # baselines table
    feedback = result_text(tool_results(bodies[1])[0])
    assert "0.450 ± 0.057" in feedback and "0.400, 0.500, 0.450" in feedback
    assert "+0.250" in feedback and "p = 0.031" in feedback and "a001" in feedback
    board = result_text(tool_results(bodies[3])[0])
    assert "a001" in board and "a002" in board
    everything = json.dumps(bodies)
    assert str(HELDOUT_MARK) not in everything and "heldout" not in everything
    assert str(CONFIRM_MARK) not in everything and "confirm_" not in everything
    for body in bodies:
        assert_valid_transcript(body["messages"])
    assert all("cache_control" not in json.dumps(m) for m in tools.saved[-1]["messages"])


def test_failure_feedback_carries_traceback_and_log_tail():
    boom = "Traceback (most recent call last):\n  File \"idea.py\", line 3\nZeroDivisionError: division by zero"
    tools = RecordingTools(results=lambda spec: canned_result(spec.name, [0, 0], status="error",
                                                              error="ZeroDivisionError: division by zero",
                                                              traceback=boom))
    with MessagesServer(scripted_claude_session(IDEAS[:1], leaderboard=False)) as server:
        claude(server).run(tools)
    feedback = result_text(tool_results(server.bodies()[1])[0])
    assert "error" in feedback and "ZeroDivisionError: division by zero" in feedback
    assert "File \"idea.py\", line 3" in feedback and "epoch 1" in feedback


def test_malformed_input_and_unknown_tools_get_error_results():
    script = [tool_use("run_experiment", {"name": "no code", "hypothesis": "h"}),
              tool_use("run_experiment", {"name": "x", "hypothesis": "h", "code": GOOD, "lr": 3}),
              tool_use("launch_rockets", {}),
              tool_use("show_attempt", {"attempt_id": "a999"}),
              tool_use("finish", {"summary": "done"})]
    tools = RecordingTools()
    with MessagesServer(script) as server:
        claude(server).run(tools)
    results = [tool_results(b)[0] for b in server.bodies()[1:]]
    assert all(r.get("is_error") for r in results)
    texts = [result_text(r) for r in results]
    assert "give either code" in texts[0] and "run_experiment(name: string" in texts[0]
    assert "lr: Extra inputs are not permitted" in texts[1]
    assert "unknown tool" in texts[2] and "run_experiment" in texts[2]
    assert "no attempt 'a999'" in texts[3]
    assert tools.experiments == [] and tools.finished == ["done"]


def test_show_attempt_returns_code_and_result_to_build_on():
    script = [tool_use("run_experiment", {"name": "base", "hypothesis": "h", "code": GOOD}),
              tool_use("show_attempt", {"attempt_id": "a001"}),
              tool_use("run_experiment", {"name": "child", "hypothesis": "h2", "code": GOOD, "parent_id": "a001"}),
              tool_use("finish", {"summary": "s"})]
    tools = RecordingTools()
    with MessagesServer(script) as server:
        claude(server).run(tools)
    shown = result_text(tool_results(server.bodies()[2])[0])
    assert "np.asarray(ctx.weak_test_probs)" in shown and "PGR (dev) 0.450" in shown
    assert tools.experiments[1].parent_id == "a001"


@pytest.mark.parametrize("first", [text_turn("", stop_reason="refusal"), text_turn("I think I am done.")])
def test_refusal_or_empty_turn_is_nudged_once_then_stops_cleanly(first):
    tools = RecordingTools()
    with MessagesServer([first, text_turn("", stop_reason="refusal")]) as server:
        claude(server).run(tools)
    bodies = server.bodies()
    assert len(bodies) == 2
    nudge = bodies[1]["messages"][-1]["content"][-1]["text"]
    assert "run_experiment" in nudge and "finish" in nudge
    assert_valid_transcript(bodies[1]["messages"])
    assert tools.experiments == [] and len(tools.finished) == 1


def test_a_nudge_that_works_resets_the_count():
    script = [text_turn("Let me think."), tool_use("run_experiment", {"name": "a", "hypothesis": "h", "code": GOOD}),
              text_turn("Thinking again."), tool_use("finish", {"summary": "ok"})]
    tools = RecordingTools()
    with MessagesServer(script) as server:
        claude(server).run(tools)
    assert len(tools.experiments) == 1 and tools.finished == ["ok"]


def test_output_cut_at_max_tokens_mid_tool_call_is_an_error_result():
    script = [tool_use("run_experiment", {"name": "a", "hypothesis": "h", "code": "def run(ctx"}, stop_reason="max_tokens"),
              tool_use("finish", {"summary": "ok"})]
    tools = RecordingTools()
    with MessagesServer(script) as server:
        claude(server).run(tools)
    result = tool_results(server.bodies()[1])[0]
    assert result["is_error"] and "max_tokens" in result_text(result)
    assert tools.experiments == []


@pytest.mark.parametrize("status", [429, 529, 500])
def test_retryable_errors_are_retried_honouring_retry_after(status):
    script = [error_step(status, retry_after=1.0), *scripted_claude_session(IDEAS[:1], leaderboard=False)]
    tools = RecordingTools()
    with MessagesServer(script) as server:
        claude(server, max_retries=2).run(tools)
    assert len(server.requests) == 3 and len(tools.experiments) == 1
    assert server.answered_at[1] - server.answered_at[0] >= 0.95  # waited as told
    assert len(tools.calls) == 2  # a retried call is one recorded call
    assert len(tools.notices) == 1 and "retry 1 of 2 in 1.0s" in tools.notices[0]  # shown in the live view


def test_overloaded_without_retry_after_uses_backoff_then_succeeds():
    script = [error_step(529, message="Overloaded"), *scripted_claude_session(IDEAS[:1], leaderboard=False)]
    tools = RecordingTools()
    with MessagesServer(script) as server:
        claude(server, max_retries=1).run(tools)
    assert len(tools.experiments) == 1 and server.answered_at[1] - server.answered_at[0] >= 0.3


def test_overload_backs_off_exponentially_with_jitter_as_configured():
    """Fault 7: 529s are retried with doubling waits (jitter in [0.5, 1]) up to a configurable
    cap, each wait announced; the defaults reach minutes."""
    script = [error_step(529, message="Overloaded") for _ in range(4)]
    tools = RecordingTools()
    with MessagesServer([*script, tool_use("finish", {"summary": "s"})]) as server:
        claude(server, max_retries=5, retry_base_s=0.2, retry_max_wait_s=0.8).run(tools)
    gaps = [b - a for a, b in zip(server.answered_at, server.answered_at[1:], strict=False)]
    assert len(gaps) == 4 and tools.finished == ["s"]
    for k, gap in enumerate(gaps):  # 0.2, 0.4, 0.8, 0.8 (capped), each times a jitter in [0.5, 1]
        assert min(0.2 * 2 ** k, 0.8) * 0.5 - 0.02 <= gap <= min(0.2 * 2 ** k, 0.8) + 0.3, gaps
    assert [n.split("; ")[1][:12] for n in tools.notices] == [f"retry {k} of 5" for k in range(1, 5)]
    assert "529 overloaded_error: Overloaded" in tools.notices[0]
    defaults = ClaudeOptions()
    assert defaults.max_retries * defaults.retry_max_wait_s >= 600  # overloads that last minutes


def test_a_timeout_is_retried():
    script = [{**text_turn("slow"), "delay_s": 1.5}, *scripted_claude_session(IDEAS[:1], leaderboard=False)]
    tools = RecordingTools()
    with MessagesServer(script) as server:
        claude(server, max_retries=1, timeout_s=0.5).run(tools)
    assert len(tools.experiments) == 1 and len(server.requests) == 3


def test_retries_spent_stop_with_one_line():
    tools = RecordingTools()
    with MessagesServer([error_step(529, message="Overloaded"), error_step(529, message="Overloaded")]) as server:
        with pytest.raises(HarnessError) as info:
            claude(server, max_retries=1).run(tools)
    message = str(info.value)
    assert "\n" not in message and "529" in message and "after 1 retries" in message
    assert tools.experiments == []


def test_invalid_key_stops_before_any_experiment_with_one_line():
    tools = RecordingTools()
    with MessagesServer([error_step(401, message="invalid x-api-key")]) as server:
        with pytest.raises(HarnessError) as info:
            claude(server).run(tools)
    message = str(info.value)
    assert "\n" not in message and "ANTHROPIC_API_KEY" in message and "401" in message
    assert len(server.requests) == 1 and tools.experiments == []


def test_missing_key_fails_check_ready_with_one_line(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    with pytest.raises(HarnessError) as info:
        get_proposer("claude", ProposerConfig()).check_ready()
    assert "ANTHROPIC_API_KEY is not set" in str(info.value) and "\n" not in str(info.value)


def test_unpriced_model_and_bad_options_fail_fast():
    with pytest.raises(HarnessError, match="no price for model 'claude-unknown-9'"):
        get_proposer("claude", ProposerConfig(model="claude-unknown-9")).check_ready()
    with pytest.raises(HarnessError, match="claude option max_retriess"):
        get_proposer("claude", ProposerConfig(options={"max_retriess": 2}))


def test_bedrock_and_vertex_clients_are_the_sdks_own(monkeypatch):
    from anthropic import AnthropicBedrock, AnthropicVertex

    monkeypatch.setenv("CLAUDE_CODE_USE_BEDROCK", "1")
    assert resolve_provider(ClaudeOptions()) == "bedrock"
    bedrock = make_client("bedrock", ClaudeOptions(region="us-east-1", max_retries=3), None)
    assert isinstance(bedrock, AnthropicBedrock) and bedrock.max_retries == 0  # retries are agent/proposers/retries
    assert "bedrock-runtime.us-east-1" in str(bedrock.base_url)
    monkeypatch.delenv("CLAUDE_CODE_USE_BEDROCK")
    monkeypatch.setenv("ANTHROPIC_VERTEX_PROJECT_ID", "my-project")
    assert resolve_provider(ClaudeOptions()) == "vertex"
    vertex = make_client("vertex", ClaudeOptions(region="us-east5"), None)
    assert isinstance(vertex, AnthropicVertex) and vertex.project_id == "my-project"
    assert resolve_provider(ClaudeOptions(provider="anthropic")) == "anthropic"


def test_cost_is_charged_per_call_from_the_price_table():
    usage = {"input_tokens": 1000, "output_tokens": 2000, "cache_creation_input_tokens": 4000,
             "cache_read_input_tokens": 8000}
    script = [{"message": {"content": [{"type": "tool_use", "id": "t1", "name": "finish",
                                        "input": {"summary": "s"}}], "usage": usage}}]
    tools = RecordingTools()
    with MessagesServer(script) as server:
        claude(server).run(tools)
    expected = (1000 * 5.0 + 2000 * 25.0 + 4000 * 6.25 + 8000 * 0.50) / 1e6  # claude-opus-4-6 prices
    assert tools.calls[0]["cost"] == pytest.approx(expected)
    assert tools.calls[0]["usage"] == {"input_tokens": 1000, "output_tokens": 2000, "cache_write_tokens": 4000,
                                       "cache_read_tokens": 8000, "cost_usd": pytest.approx(expected)}


def test_budget_stop_propagates_and_resume_continues_the_conversation():
    tools = RecordingTools(max_attempts=1)
    with MessagesServer(scripted_claude_session(IDEAS, leaderboard=False)) as server:
        with pytest.raises(BudgetStop):
            claude(server).run(tools)
    assert len(tools.experiments) == 1
    saved = tools.saved[-1]
    assert saved["messages"][-1]["role"] == "assistant"  # the call the budget stopped

    resumed = RecordingTools(state=saved)
    with MessagesServer([tool_use("finish", {"summary": "after resume"})]) as server:
        claude(server).run(resumed)
    messages = server.bodies()[0]["messages"]
    assert_valid_transcript(messages)
    assert messages[:len(saved["messages"])] == saved["messages"][:-1] + [messages[len(saved["messages"]) - 1]]
    last = messages[-1]["content"]
    assert last[0]["type"] == "tool_result" and last[0]["is_error"] and "did not complete" in last[0]["content"]
    assert "resumed" in last[-1]["text"]
    assert resumed.finished == ["after resume"]


def test_compaction_replaces_old_turns_with_a_table_of_attempts():
    ideas = [(f"idea {i}", "h" * 50, GOOD + "#" * 400) for i in range(5)]
    tools = RecordingTools()
    with MessagesServer(scripted_claude_session(ideas, leaderboard=False)) as server:
        claude(server, compact_chars=4000, keep_rounds=1).run(tools)
    bodies = server.bodies()
    assert len(tools.experiments) == 5 and tools.finished
    last = bodies[-1]["messages"]
    assert_valid_transcript(last)
    head = last[0]["content"][0]["text"]
    assert "# Task: wordnet-10" in head and "compacted" in head
    assert "Attempts used 0" not in head
    assert "Attempts used 5" in head  # fault 7: the budget as it is now, not as the intro said
    for i in range(4):
        assert f"idea {i}" in head
    assert len(last) == 3  # table, the last tool call, its result
    assert tools.saved[-1]["compactions"] >= 1
    assert max(len(json.dumps(b["messages"])) for b in bodies[2:]) < 4000 + len(json.dumps(bodies[1]["messages"]))


def test_replay_without_a_model_reproduces_the_requests():
    tools = RecordingTools()
    with MessagesServer(scripted_claude_session(IDEAS)) as server:
        claude(server).run(tools)
    replay = RecordingTools(replay=[c["response"] for c in tools.calls])
    proposer = get_proposer("claude", ProposerConfig(base_url="http://127.0.0.1:9"))  # nothing listens there
    proposer.run(replay)
    assert [c["request"] for c in replay.calls] == [c["request"] for c in tools.calls]
    assert replay.finished == tools.finished


def test_retry_after_is_read_by_the_sdk_in_seconds():
    start = time.monotonic()
    with MessagesServer([error_step(429, retry_after=0.6), tool_use("finish", {"summary": "s"})]) as server:
        claude(server, max_retries=1).run(RecordingTools())
    assert 0.55 <= server.answered_at[1] - server.answered_at[0] < 3.0
    assert time.monotonic() - start < 5.0


def test_price_lookup_covers_provider_model_ids_and_overrides(tmp_path, monkeypatch):
    from agent.costs import cost_of, price_for

    assert price_for("us.anthropic.claude-opus-4-6-v1:0").input == 5.0  # Bedrock id
    assert price_for("claude-sonnet-4-5@20250929").output == 15.0  # Vertex id
    assert price_for("claude-haiku-4-5-20251001").cache_read == 0.10  # dated snapshot
    assert price_for("claude-opus-4-1-20250805").input == 15.0  # longest family wins over claude-opus-4
    assert cost_of("llama3", {"usage": {"prompt_tokens": 10, "completion_tokens": 5}}).cost_usd == 0.0
    table = tmp_path / "prices.toml"
    table.write_text('[models."claude-opus-4-6"]\ninput = 1\noutput = 2\ncache_write = 3\ncache_read = 4\n')
    monkeypatch.setenv("AAR_PRICES", str(table))
    usage = cost_of("claude-opus-4-6", {"usage": {"input_tokens": 1_000_000, "output_tokens": 1_000_000}})
    assert usage.cost_usd == pytest.approx(3.0) and usage.output_tokens == 1_000_000
    table.write_text("[models.broken\n")
    with pytest.raises(HarnessError, match="unreadable"):
        price_for("claude-opus-4-6")


def test_prompts_are_versioned_and_strict():
    from agent.prompting import directions, prompt_versions, render
    from agent.proposers.tooling import _REGISTRY, anthropic_tools, openai_tools

    versions = prompt_versions()
    for name in ("system.md", "task_card.md", "feedback.md", "compaction.md", "directions.md",
                 "idea_contract.md", "tools.toml"):
        assert len(versions[name]) == 12
    with pytest.raises(HarnessError, match="undefined"):
        render("feedback")
    assert len(directions()) >= 6
    every = list(_REGISTRY.values())
    custom = [t for t in anthropic_tools(every) if "type" not in t]  # client tools carry no schema
    assert all(t["description"] and all(p["description"] for p in t["input_schema"]["properties"].values())
               for t in custom) and len(custom) == len([t for t in every if t.anthropic_spec is None])
    assert all(f["function"]["description"] and all(p["description"] for p in
               f["function"]["parameters"]["properties"].values()) for f in openai_tools(every))
    assert len(openai_tools(every)) == len(every)


class ForumTools(RecordingTools):
    def __init__(self) -> None:
        super().__init__()
        self.posts: list[tuple[str, str, str | None]] = []

    def post_finding(self, title: str, body: str, attempt_id: str | None) -> dict:
        self.posts.append((title, body, attempt_id))
        return {"id": f"f{len(self.posts)}"}

    def read_findings(self, limit: int = 20) -> list[dict]:
        return [{"title": t, "body": b, "attempt_id": a, "author": "r1"} for t, b, a in self.posts][-limit:]


def test_findings_tools_are_offered_when_the_session_has_a_forum():
    script = [tool_use("post_finding", {"title": "Filtering helps", "body": "Kept 60%.", "attempt_id": "a001"}),
              tool_use("read_findings", {}), tool_use("finish", {"summary": "s"})]
    tools = ForumTools()
    with MessagesServer(script) as server:
        claude(server).run(tools)
    bodies = server.bodies()
    assert "post_finding" in [t["name"] for t in bodies[0]["tools"]]
    assert tools.posts == [("Filtering helps", "Kept 60%.", "a001")]
    assert "`f1`" in result_text(tool_results(bodies[1])[0])
    assert "Filtering helps" in result_text(tool_results(bodies[2])[0])


def test_compaction_also_triggers_on_the_input_tokens_a_call_read():
    big = {"input_tokens": 500, "output_tokens": 10, "cache_creation_input_tokens": 0,
           "cache_read_input_tokens": 150_000}
    script = [tool_use("run_experiment", {"name": f"i{i}", "hypothesis": "h", "code": GOOD}) for i in range(2)]
    script.append({"message": {**script[-1]["message"], "usage": big}})
    script[-1]["message"]["content"] = [{"type": "tool_use", "id": "t3", "name": "run_experiment",
                                         "input": {"name": "i2", "hypothesis": "h", "code": GOOD}}]
    script.append(tool_use("finish", {"summary": "s"}))
    tools = RecordingTools()
    with MessagesServer(script) as server:
        claude(server, compact_tokens=100_000, keep_rounds=1).run(tools)
    bodies = server.bodies()
    assert "compacted" not in json.dumps(bodies[2]["messages"][0])
    head = bodies[3]["messages"][0]["content"][0]["text"]
    assert "compacted" in head and "| i0 |" in head and "| i1 |" in head
    assert_valid_transcript(bodies[3]["messages"])


def test_bedrock_needs_an_explicit_model(monkeypatch):
    monkeypatch.setenv("CLAUDE_CODE_USE_BEDROCK", "1")
    monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", "token")
    with pytest.raises(HarnessError, match="Bedrock names models"):
        get_proposer("claude", ProposerConfig(options={"region": "us-east-1"})).check_ready()
    get_proposer("claude", ProposerConfig(model="us.anthropic.claude-opus-4-6-v1:0",
                                          options={"region": "us-east-1"})).check_ready()


def test_thinking_is_requested_and_its_blocks_are_sent_back():
    thought = {"type": "thinking", "thinking": "Filtering first.", "signature": "sig123"}
    script = [{"message": {"content": [thought, {"type": "tool_use", "id": "t1", "name": "show_leaderboard",
                                                 "input": {}}]}},
              tool_use("finish", {"summary": "s"})]
    with MessagesServer(script) as server:
        claude(server, thinking="adaptive").run(RecordingTools())
    bodies = server.bodies()
    assert bodies[0]["thinking"] == {"type": "adaptive"}
    assert bodies[1]["messages"][1]["content"][0] == thought
    with pytest.raises(HarnessError, match="thinking_budget"):
        get_proposer("claude", ProposerConfig(options={"thinking_budget": 9000, "max_tokens": 8000}))
    budgeted = get_proposer("claude", ProposerConfig(model="claude-sonnet-4-5", options={"thinking_budget": 2048}))
    assert budgeted.backend().request("s", [], available_tools(RecordingTools()))["thinking"] == {
        "type": "enabled", "budget_tokens": 2048}


def test_calls_stream_so_max_tokens_may_pass_the_non_streaming_limit_and_replay_the_same():
    thinking = {"type": "thinking", "thinking": "Plan: try the floor first.", "signature": "sig-123"}
    step = tool_use("finish", {"summary": "s"})
    step["message"]["content"].insert(0, thinking)
    tools = RecordingTools()
    with MessagesServer([step]) as server:
        claude(server, max_tokens=64_000, thinking="adaptive").run(tools)
    sent = server.bodies()[0]
    assert sent["stream"] is True and sent["max_tokens"] == 64_000 and sent["thinking"] == {"type": "adaptive"}
    recorded = tools.calls[0]
    assert recorded["request"]["max_tokens"] == 64_000 and "stream" not in recorded["request"]
    assert recorded["response"]["content"][0] == {**thinking, "type": "thinking"}  # rebuilt from the deltas
    assert recorded["response"]["content"][1]["input"] == {"summary": "s"}
    assert recorded["usage"]["cache_read_tokens"] == 3000  # usage from message_start and message_delta
    replayed = RecordingTools(replay=[c["response"] for c in tools.calls])
    claude(MessagesServer([]), max_tokens=64_000, thinking="adaptive").run(replayed)
    assert [c["request"] for c in replayed.calls] == [c["request"] for c in tools.calls]


def test_a_summary_written_as_prose_is_kept_without_finish():
    tools = RecordingTools()
    with MessagesServer([text_turn("Summary: the floor holds."), error_step(400, message="bad")]) as server:
        with pytest.raises(HarnessError):
            claude(server).run(tools)
    assert tools.summaries == ["Summary: the floor holds."] and tools.finished == []


def test_a_prompt_too_long_is_compacted_and_asked_again():
    """Issue 24: a 400 "prompt is too long" compacts the transcript at once (fewer rounds each time
    it recurs) instead of ending the session; the saved state is the compacted one."""
    too_long = error_step(400, message="prompt is too long: 250000 tokens > 200000 maximum")
    script = [*scripted_claude_session(IDEAS, leaderboard=True)[:-1], too_long, too_long,
              tool_use("finish", {"summary": "s"})]
    tools = RecordingTools()
    with MessagesServer(script) as server:
        claude(server, max_retries=3, keep_rounds=2).run(tools)
    bodies = server.bodies()
    assert tools.finished == ["s"] and len(bodies) == 6 and len(tools.experiments) == 2
    assert len(bodies[4]["messages"]) < len(bodies[3]["messages"])  # compacted, not the same request again
    assert len(bodies[5]["messages"]) < len(bodies[4]["messages"])  # the second refusal kept fewer rounds
    first = bodies[4]["messages"][0]["content"][0]["text"]
    assert "compacted" in first and "Continue from the attempts below" in first
    assert "Begin with a short plan" not in first
    assert_valid_transcript(bodies[5]["messages"])
    compacted = [s for s in tools.saved if s["compactions"]]
    assert compacted and compacted[0]["messages"][0] == bodies[4]["messages"][0]  # a resume starts compacted


def test_a_prompt_too_long_with_nothing_left_to_compact_is_one_line():
    tools = RecordingTools()
    with MessagesServer([error_step(400, message="prompt is too long: 9 tokens > 1 maximum")]) as server:
        with pytest.raises(HarnessError, match="prompt is too long") as info:
            claude(server).run(tools)
    assert "\n" not in str(info.value) and len(server.requests) == 1


def test_look_up_turns_are_bounded():
    """Issue 24: after max_lookups rounds without an experiment the model is told to run one or
    finish; after as many again the session stops."""
    looks = [tool_use("show_leaderboard", {}, call_id=f"toolu_look_{k}") for k in range(5)]
    tools = RecordingTools()
    with MessagesServer(looks) as server:
        with pytest.raises(BudgetStop, match="4 turns in a row without running an experiment"):
            claude(server, max_lookups=2).run(tools)
    bodies = server.bodies()
    told = [i for i, b in enumerate(bodies) if "looked things up for 2 turns" in json.dumps(b["messages"][-1])]
    assert told == [2] and len(bodies) == 4 and server.remaining == 1


def test_an_experiment_resets_the_look_up_count():
    script = [tool_use("show_leaderboard", {}, call_id="toolu_a"),
              *scripted_claude_session(IDEAS[:1], leaderboard=False)[:-1],
              tool_use("show_leaderboard", {}, call_id="toolu_b"), tool_use("finish", {"summary": "s"})]
    tools = RecordingTools()
    with MessagesServer(script) as server:
        claude(server, max_lookups=2).run(tools)
    assert tools.finished == ["s"] and "looked things up" not in json.dumps(server.bodies())


def test_a_call_the_budget_stopped_is_told_the_budget_on_resume_not_interrupted():
    """Issue 24: in a two-call turn past the budget, the second call hears why it did not run."""
    both = {"message": {"content": [
        {"type": "tool_use", "id": "toolu_one", "name": "run_experiment",
         "input": {"name": "one", "hypothesis": "h", "code": GOOD}},
        {"type": "tool_use", "id": "toolu_two", "name": "run_experiment",
         "input": {"name": "two", "hypothesis": "h", "code": GOOD + "# two\n"}}]}}
    tools = RecordingTools(max_attempts=1)
    with MessagesServer([both]) as server:
        with pytest.raises(BudgetStop):
            claude(server).run(tools)
    resumed = RecordingTools(state=tools.saved[-1])
    with MessagesServer([tool_use("finish", {"summary": "s"})]) as server:
        claude(server).run(resumed)
    results = {b["tool_use_id"]: b for b in tool_results(server.bodies()[0])}
    assert not results["toolu_one"].get("is_error")
    assert "attempt budget reached (1/1)" in results["toolu_two"]["content"]
    assert "(interrupted)" not in results["toolu_two"]["content"]


def test_a_shorter_prose_reply_does_not_replace_the_summary():
    summary = "Summary: soft targets hold the floor at PGR 0.2; filtering weak labels did not help."
    tools = RecordingTools()
    with MessagesServer([text_turn(summary), text_turn("As I said above.")]) as server:
        claude(server, max_nudges=1).run(tools)
    assert tools.summaries == [summary] and tools.finished == [summary]

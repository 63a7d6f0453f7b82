"""The Claude proposer's side of the Messages API, through the real anthropic SDK against the
scripted server: retries and back-off, keys and providers, prices and cost, streaming and
thinking, a prompt too long. The conversation itself: test_claude_proposer.py."""

from __future__ import annotations

import pytest

from agent.proposers.base import ProposerConfig, get_proposer
from agent.proposers.claude import ClaudeOptions, make_client, resolve_provider
from agent.proposers.tooling import available_tools
from sandbox.errors import HarnessError
from tests.fakes.messages_server import MessagesServer
from tests.fakes.scripts import (
    error_step,
    scripted_claude_session,
    text_turn,
    tool_use,
)
from tests.fakes.tools import RecordingTools
from tests.test_claude_proposer import (  # noqa: F401 - _anthropic_env: autouse here too
    IDEAS,
    _anthropic_env,
    assert_valid_transcript,
    claude,
)


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


def test_retry_after_is_read_by_the_sdk_in_seconds():
    # The gap between the two requests is the SDK's wait: 0.6 s as told (read as milliseconds it
    # would be ~0, as minutes far above the bound); the whole run's time is the machine's load.
    with MessagesServer([error_step(429, retry_after=0.6), tool_use("finish", {"summary": "s"})]) as server:
        claude(server, max_retries=1).run(RecordingTools())
    assert 0.55 <= server.answered_at[1] - server.answered_at[0] < 3.0


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

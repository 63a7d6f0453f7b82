"""The Claude proposer through the real anthropic SDK against the scripted Messages server: the
conversation (tools, feedback, nudges, budgets, resume, compaction, summaries, look-up turns).
The API side (retries, keys, providers, prices, streaming, prompt too long): test_claude_api.py."""

from __future__ import annotations

import json

import pytest

from agent.proposers.base import BudgetStop, ProposerConfig, get_proposer
from agent.proposers.claude import DEFAULT_MODEL
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
        uses = before["content"] if before["role"] == "assistant" else []
        ids = {b["id"] for b in uses if b.get("type") == "tool_use"}
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
    script = [tool_use("run_experiment", {"name": "a", "hypothesis": "h", "code": "def run(ctx"},
                       stop_reason="max_tokens"),
              tool_use("finish", {"summary": "ok"})]
    tools = RecordingTools()
    with MessagesServer(script) as server:
        claude(server).run(tools)
    result = tool_results(server.bodies()[1])[0]
    assert result["is_error"] and "max_tokens" in result_text(result)
    assert tools.experiments == []


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


def test_a_summary_written_as_prose_is_kept_without_finish():
    tools = RecordingTools()
    with MessagesServer([text_turn("Summary: the floor holds."), error_step(400, message="bad")]) as server:
        with pytest.raises(HarnessError):
            claude(server).run(tools)
    assert tools.summaries == ["Summary: the floor holds."] and tools.finished == []


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

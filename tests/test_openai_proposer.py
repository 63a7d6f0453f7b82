"""The OpenAI-compatible proposer against the scripted server's /v1/chat/completions."""

from __future__ import annotations

import json

import pytest

from agent.proposers.base import BudgetStop, ProposerConfig, get_proposer
from agent.proposers.retries import retry_after
from sandbox.errors import HarnessError
from tests.fakes.messages_server import CHAT_PATH, MessagesServer
from tests.fakes.scripts import chat_text, chat_tool_call, error_step, scripted_openai_session
from tests.fakes.tools import CONFIRM_MARK, HELDOUT_MARK, RecordingTools

GOOD = "def run(ctx):\n    return ctx.weak_test_probs\n"
IDEAS = [("soft", "reference", GOOD), ("hard", "argmax targets", GOOD + "# hard\n")]


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "AAR_PRICES"):
        monkeypatch.delenv(name, raising=False)


def openai(server: MessagesServer, model: str = "qwen2.5-coder:7b", **options):
    proposer = get_proposer("openai", ProposerConfig(model=model, base_url=server.url + "/v1", options=options))
    proposer.check_ready()
    return proposer


def tool_messages(body: dict) -> list[dict]:
    tail = []
    for message in reversed(body["messages"]):
        if message["role"] != "tool":
            break
        tail.insert(0, message)
    return tail


def test_session_through_function_calling():
    tools = RecordingTools(leak_heldout=True)
    with MessagesServer(scripted_openai_session(IDEAS)) as server:
        openai(server).run(tools)
    bodies = server.bodies(CHAT_PATH)
    assert len(bodies) == 3 and [s.name for s in tools.experiments] == ["soft", "hard"]
    first = bodies[0]
    assert first["model"] == "qwen2.5-coder:7b" and first["messages"][0]["role"] == "system"
    assert "weak-to-strong" in first["messages"][0]["content"]
    assert first["tools"][0]["type"] == "function"
    assert first["tools"][0]["function"]["name"] == "run_experiment"
    assert first["tools"][0]["function"]["parameters"]["required"] == ["name", "hypothesis"]  # code or path
    result = tool_messages(bodies[1])[0]
    assert result["tool_call_id"] == "call_run_0" and "0.450 ± 0.057" in result["content"]
    assert str(HELDOUT_MARK) not in json.dumps(bodies)
    assert str(CONFIRM_MARK) not in json.dumps(bodies) and "confirm_" not in json.dumps(bodies)
    assert tools.finished == ["Done."]
    assert "authorization" not in {k.lower() for k in server.requests[0]["headers"]}  # no key configured, none sent
    assert tools.cost == 0.0  # a local model is not in the price table


def test_key_is_sent_and_priced_models_are_charged(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-local")
    script = [chat_tool_call("finish", {"summary": "s"}, usage={
        "prompt_tokens": 10_000, "completion_tokens": 1_000, "prompt_tokens_details": {"cached_tokens": 4_000}})]
    tools = RecordingTools()
    with MessagesServer(script) as server:
        openai(server, model="gpt-4o").run(tools)
    assert {k.lower(): v for k, v in server.requests[0]["headers"].items()}["authorization"] == "Bearer sk-local"
    assert tools.calls[0]["cost"] == pytest.approx((6_000 * 2.5 + 4_000 * 1.25 + 1_000 * 10.0) / 1e6)


def test_unparsable_arguments_and_bad_fields_are_error_results():
    script = [chat_tool_call("run_experiment", '{"name": "x", "code": '),
              chat_tool_call("run_experiment", {"name": "x", "hypothesis": "h"}),
              chat_tool_call("finish", {"summary": "s"})]
    tools = RecordingTools()
    with MessagesServer(script) as server:
        openai(server).run(tools)
    bodies = server.bodies(CHAT_PATH)
    first, second = tool_messages(bodies[1])[0]["content"], tool_messages(bodies[2])[0]["content"]
    assert first.startswith("ERROR:") and "not valid JSON" in first
    assert second.startswith("ERROR:") and "input: give either code" in second
    assert tools.experiments == []


def test_calls_without_ids_get_stable_ones():
    step = chat_tool_call("finish", {"summary": "s"})
    del step["completion"]["choices"][0]["message"]["tool_calls"][0]["id"]
    tools = RecordingTools()
    with MessagesServer([step]) as server:
        openai(server).run(tools)
    saved = tools.saved[-1]["messages"]
    assert saved[-2]["tool_calls"][0]["id"].startswith("call_")
    assert saved[-1]["tool_call_id"] == saved[-2]["tool_calls"][0]["id"]


def test_refusal_is_nudged_once_then_stops():
    tools = RecordingTools()
    script = [chat_text("", refusal="I can't help with that."), chat_text("", finish_reason="content_filter")]
    with MessagesServer(script) as server:
        openai(server).run(tools)
    second = server.bodies(CHAT_PATH)[1]["messages"]
    assert second[-1]["role"] == "user" and "run_experiment" in second[-1]["content"]
    assert tools.experiments == [] and len(tools.finished) == 1


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_honoured(status):
    tools = RecordingTools()
    with MessagesServer([error_step(status, retry_after=1.0), *scripted_openai_session(IDEAS[:1])]) as server:
        openai(server, max_retries=2).run(tools)
    assert server.answered_at[1] - server.answered_at[0] >= 0.95
    assert len(tools.experiments) == 1 and len(tools.calls) == 2


def test_retries_spent_and_bad_key_stop_with_one_line():
    with MessagesServer([error_step(500), error_step(500)]) as server:
        with pytest.raises(HarnessError, match="still failed after 1 retries") as info:
            openai(server, max_retries=1).run(RecordingTools())
    assert "\n" not in str(info.value)
    tools = RecordingTools()
    with MessagesServer([error_step(401, message="bad key")]) as server:
        with pytest.raises(HarnessError, match="set a valid OPENAI_API_KEY"):
            openai(server).run(tools)
    assert len(server.requests) == 1 and tools.experiments == []


def test_unreachable_server_is_one_line():
    proposer = get_proposer("openai", ProposerConfig(model="m", base_url="http://127.0.0.1:9/v1",
                                                     options={"max_retries": 0}))
    with pytest.raises(HarnessError, match="is the server running"):
        proposer.run(RecordingTools())


def test_check_ready_needs_a_model_and_an_endpoint(monkeypatch):
    with pytest.raises(HarnessError, match="needs --model"):
        get_proposer("openai", ProposerConfig()).check_ready()
    with pytest.raises(HarnessError, match="OPENAI_BASE_URL"):
        get_proposer("openai", ProposerConfig(model="m")).check_ready()
    monkeypatch.setenv("OPENAI_BASE_URL", "http://localhost:11434/v1")
    get_proposer("openai", ProposerConfig(model="m")).check_ready()


def test_budget_stop_propagates():
    tools = RecordingTools(max_attempts=1)
    with MessagesServer(scripted_openai_session(IDEAS)) as server:
        with pytest.raises(BudgetStop):
            openai(server).run(tools)
    assert len(tools.experiments) == 1


def test_retry_after_header_forms():
    assert retry_after({"retry-after": "2"}) == 2.0
    assert retry_after({"retry-after-ms": "250"}) == 0.25
    assert 0 <= retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) < 1
    assert retry_after({}) is None


def test_the_official_sdk_is_used_and_a_body_that_is_not_json_is_one_line():
    import openai as sdk

    from agent.proposers.openai_compat import OpenAIBackend, OpenAIOptions

    assert OpenAIBackend.send.__module__ == "agent.proposers.openai_compat" and sdk.__version__.startswith("3.")
    for raw in ("<html>502</html>", '{"id": "chatcmpl-1", "cho'):
        with MessagesServer([{"raw": raw, "content_type": "application/json"}]) as server:
            with pytest.raises(HarnessError, match="is a proxy in the way") as info:
                openai(server, max_retries=0).run(RecordingTools())
        assert "\n" not in str(info.value)
    assert OpenAIOptions().max_retries >= 10


def test_arguments_that_are_not_json_leave_a_valid_transcript():
    """Issue 24: servers that parse the history (vLLM) answer 400 to a transcript holding
    arguments that are not JSON; a placeholder stands there, and the model still hears why."""
    script = [chat_tool_call("run_experiment", '{"name": "x", "code": ', call_id="call_bad"),
              chat_tool_call("show_leaderboard", {}), chat_tool_call("finish", {"summary": "s"})]
    tools = RecordingTools()
    with MessagesServer(script) as server:
        openai(server).run(tools)
    bodies = server.bodies(CHAT_PATH)
    for body in bodies[1:]:  # every later request, as a parsing server would check it
        for message in body["messages"]:
            for call in message.get("tool_calls") or []:
                json.loads(call["function"]["arguments"])
    bad = next(m for m in bodies[1]["messages"] if m.get("tool_calls"))["tool_calls"][0]
    assert bad["id"] == "call_bad" and json.loads(bad["function"]["arguments"]) == {}
    assert "not valid JSON" in tool_messages(bodies[1])[0]["content"] and tools.finished == ["s"]


@pytest.mark.parametrize(("code", "retried"), [(503, True), ("429", True), (None, False), (400, False)])
def test_an_error_object_in_a_200_is_an_api_error_with_its_message(code, retried):
    error = {"message": "upstream model is down", "type": "server_error", **({"code": code} if code else {})}
    script = [{"completion": {"error": error}}, chat_tool_call("finish", {"summary": "s"})]
    tools = RecordingTools()
    with MessagesServer(script) as server:
        if retried:
            openai(server, max_retries=1, retry_base_s=0.05).run(tools)
            assert tools.finished == ["s"] and "upstream model is down" in tools.notices[0]
        else:
            with pytest.raises(HarnessError) as info:
                openai(server, max_retries=1, retry_base_s=0.05).run(tools)
            assert "answered 200 with an error" in str(info.value)
            assert "upstream model is down" in str(info.value) and len(server.requests) == 1


def test_a_context_length_400_is_compacted_and_asked_again():
    too_long = error_step(400, message="This model's maximum context length is 32768 tokens. However, you "
                                       "requested 40000 tokens.")
    script = [*scripted_openai_session(IDEAS)[:-1], chat_tool_call("show_leaderboard", {}, call_id="call_b"),
              too_long, chat_tool_call("finish", {"summary": "s"})]
    tools = RecordingTools()
    with MessagesServer(script) as server:
        openai(server, keep_rounds=1).run(tools)
    bodies = server.bodies(CHAT_PATH)
    assert tools.finished == ["s"] and len(bodies) == 5
    assert len(bodies[4]["messages"]) < len(bodies[3]["messages"])
    assert "compacted" in bodies[4]["messages"][1]["content"]

"""What an analysis run may read beyond an idea's context: the researcher's own earlier
attempts' predictions on the test rows, exactly as its ideas returned them, and nothing derived
from gold (no labels, no dev/held-out roles, no per-row correctness); and the analysis budget
running out, in a session and across ``--resume``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from agent.analysis_runs import AnalysisRuns
from experiments.layout import PREDICTIONS_DIR
from sandbox.execution.analysis import run_analysis, write_wrapper
from sandbox.runtime.context import weak_teacher_dir

# A constant the idea returns: what an analysis reads back must be exactly it, nothing scored.
UNIFORM_IDEA = ("import numpy as np\n\n\ndef run(ctx):\n"
                "    return np.full((ctx.card.n_test, ctx.n_classes), 1.0 / ctx.n_classes)\n")
WEAK_IDEA = "import numpy as np\n\n\ndef run(ctx):\n    return np.asarray(ctx.weak_test_probs)\n"

READ_EARLIER = '''
import numpy as np
earlier = ctx.earlier_predictions
for aid, seeds in sorted(earlier.items()):
    for seed, probs in sorted(seeds.items()):
        assert isinstance(probs, np.ndarray) and probs.dtype == np.float32 and not probs.flags.writeable
        print("PRED", aid, seed, probs.shape[0], probs.shape[1], round(float(probs.sum()), 3))
ctx.report("attempts_seen", len(earlier))
# what the context holds: nothing named like gold, roles or correctness, anywhere reachable
names = [k for k in vars(ctx)] + [k for seeds in earlier.values() for k in map(str, seeds)]
print("SUSPECT", sorted(n for n in names if any(w in n.lower() for w in ("gold", "role", "correct", "heldout"))))
'''


def analyse(evaluator, code: str, tmp_path: Path, earlier: dict[str, dict[str, str]]):
    request = evaluator.request(write_wrapper(code, "analysis.py", tmp_path, earlier=earlier),
                                evaluator.card.weak_seeds[0])
    return run_analysis(evaluator.executor, request)


def kept(result, attempt_id: str) -> dict[str, dict[str, str]]:
    """What the loop keeps for later analyses (the state file's content, as the lab holds it)."""
    (name, text), = AnalysisRuns.predictions_file(attempt_id, result).items()
    assert name == f"{PREDICTIONS_DIR}/{attempt_id}.json"
    data = json.loads(text)
    assert set(data) == {"rows", "seeds"} and data["rows"] == "test"  # the idea's predictions, nothing else
    return {attempt_id: data["seeds"]}


def test_an_analysis_reads_earlier_predictions_exactly_as_the_ideas_returned_them(evaluator, tmp_path):
    seeds = evaluator.card.weak_seeds[:2]
    uniform = evaluator.evaluate_code(UNIFORM_IDEA, seeds, "uniform", compare_vanilla=False, charge=False)
    weak = evaluator.evaluate_code(WEAK_IDEA, seeds, "weak copy", compare_vanilla=False, charge=False)
    assert all(s.status == "ok" and s.test_probs_npy for s in uniform.seeds + weak.seeds)
    for result in (uniform, weak):  # held in memory only: neither the lab's result.json nor the model sees them
        assert "test_probs_npy" not in result.model_dump_json() and "test_probs" not in json.dumps(
            result.for_proposer().model_dump(mode="json"))
    earlier = {**kept(uniform, "s-0001"), **kept(weak, "s-0002")}
    out = analyse(evaluator, READ_EARLIER, tmp_path, earlier)
    assert out.status == "ok", out
    n, c = evaluator.card.n_test, len(evaluator.card.classes)
    printed = re.findall(r"PRED (\S+) (\d+) (\d+) (\d+) (\S+)", out.output)
    assert [(a, int(s), int(r), int(k)) for a, s, r, k, _ in printed] == [
        (aid, seed, n, c) for aid in ("s-0001", "s-0002") for seed in seeds]
    assert {float(total) for _, _, _, _, total in printed} == {float(n)}  # rows of probabilities
    assert out.reports["attempts_seen"] == 2 and "SUSPECT []" in out.output
    # the weak copy's kept predictions are the weak teacher's public test probabilities, bit for bit
    import base64
    import io
    for seed in seeds:
        back = np.load(io.BytesIO(base64.b64decode(earlier["s-0002"][str(seed)])), allow_pickle=False)
        public = np.load(weak_teacher_dir(evaluator.cache.public_dir, seed) / "test_probs.npy")
        assert np.array_equal(back, public.astype(np.float32))


def test_no_predictions_are_kept_for_a_failed_idea(evaluator):
    broken = evaluator.evaluate_code("def run(ctx):\n    raise ValueError('no')\n", evaluator.card.weak_seeds[:1],
                                     "broken", compare_vanilla=False, charge=False)
    assert broken.seeds[0].status == "error" and AnalysisRuns.predictions_file("s-0003", broken) == {}
    assert AnalysisRuns.predictions_file("s-0004", None) == {}


def test_without_earlier_attempts_the_context_is_empty(evaluator, tmp_path):
    out = analyse(evaluator, "print('EARLIER', ctx.earlier_predictions)", tmp_path, {})
    assert out.status == "ok" and "EARLIER {}" in out.output


@pytest.mark.parametrize("junk", [{"a": {"0": "not base64 !"}}, {"a": {"0": "aGVsbG8="}}])
def test_a_corrupt_kept_prediction_fails_the_analysis_with_a_reason(evaluator, tmp_path, junk):
    out = analyse(evaluator, "print('never')", tmp_path, junk)
    assert out.status == "error" and out.error and "never" not in out.output


# --- the research loop: predictions kept with each attempt, the analysis budget, --resume -----
SLEEPY = "import time\ntime.sleep(1.5)\nprint('EARLIER', sorted(ctx.earlier_predictions))\n"


@pytest.mark.slow
def test_the_analysis_budget_runs_out_holds_across_resume_and_scoring_goes_on(small_cache, tmp_path, monkeypatch):
    from agent.progress import Reporter
    from agent.research import run_research
    from experiments.store import LabStore
    from tests.fakes.messages_server import MessagesServer
    from tests.fakes.scripts import result_text, tool_results, tool_use
    from tests.test_e2e_claude import PLAIN, config

    for name in ("ANTHROPIC_BASE_URL", "ANTHROPIC_AUTH_TOKEN", "AAR_PRICES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")

    def experiment(k: int) -> dict:
        return tool_use("run_experiment", {"name": f"floor {k}", "hypothesis": "The teacher as a floor.",
                                           "code": PLAIN + f"VARIANT = {k}\n"}, call_id=f"x{k}")

    def analysis(k: int, code: str = SLEEPY) -> dict:
        return tool_use("run_analysis", {"name": f"look {k}", "code": code}, call_id=f"a{k}")

    first = [experiment(1), analysis(1), analysis(2), experiment(2)]  # then the attempt budget stops it
    with MessagesServer(first) as server:
        out = run_research(config(tmp_path, server, max_attempts=2, max_analysis_s=1), Reporter())
        bodies = server.bodies()
    assert out.attempts == 2 and out.stop_reason == "attempt budget reached (2/2)", out
    store = LabStore.open(tmp_path)
    one, two = store.attempts(out.session_id)
    ran = result_text(tool_results(bodies[2])[0])
    assert ": ok" in ran and f"EARLIER ['{one.attempt_id}']" in ran  # the first attempt's predictions
    refused = tool_results(bodies[3])[0]
    assert refused.get("is_error") and "analysis budget is spent" in result_text(refused)
    assert "--max-analysis-time" in result_text(refused)
    assert "(0s left)" in result_text(tool_results(bodies[2])[0])  # the budget line says so too
    assert two.status == "ok" and two.result.pgr is not None  # scoring still works
    assert list(store.analysis_runs(out.session_id)) == ["0001-look-1"]  # the refused one left no run
    assert store.read_session_file(out.session_id, f"{PREDICTIONS_DIR}/{two.attempt_id}.json")

    # resumed with the same analysis budget: still spent (read back from the lab), still refused
    with MessagesServer([analysis(3), experiment(3)]) as server:
        again = run_research(config(tmp_path, server, max_attempts=3, max_analysis_s=1, resume=out.session_id),
                             Reporter())
        refused = tool_results(server.bodies()[1])[0]
    assert again.stop_reason == "attempt budget reached (3/3)", again
    assert refused.get("is_error") and "analysis budget is spent" in result_text(refused)
    three = LabStore.open(tmp_path).attempts(out.session_id)[-1]
    assert three.status == "ok" and three.result.pgr is not None
    # resumed with more: it runs and sees every earlier attempt's predictions, from the lab
    code = "print('EARLIER', sorted(ctx.earlier_predictions))\n"
    with MessagesServer([analysis(4, code), tool_use("finish", {"summary": "done"}, call_id="f2")]) as server:
        third = run_research(config(tmp_path, server, max_attempts=5, max_analysis_s=60, resume=out.session_id),
                             Reporter())
        seen = result_text(tool_results(server.bodies()[1])[0])
    assert third.stop_reason == "the proposer finished" and ": ok" in seen
    assert f"EARLIER {sorted([one.attempt_id, two.attempt_id, three.attempt_id])}" in seen
    assert list(LabStore.open(tmp_path).analysis_runs(out.session_id)) == ["0001-look-1", "0002-look-4"]
    assert LabStore.open(tmp_path).check().ok

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sandbox.errors import BudgetExhaustedError
from sandbox.execution.run_output import RunOutput
from sandbox.scoring.evaluator import (
    Evaluator,
    ScoringBudget,
    degeneracy_warnings,
    paired_difference,
    validate_predictions,
)
from tests.conftest import SMALL


def test_validation_accepts_ids_and_probabilities():
    probs, err = validate_predictions(np.array([0, 2, 1]), 3, 3)
    assert err is None and probs.argmax(1).tolist() == [0, 2, 1]
    p = np.full((3, 3), 1 / 3)
    assert validate_predictions(p, 3, 3)[1] is None


@pytest.mark.parametrize("pred, message", [
    (np.array([[0.5, np.nan, 0.5]] * 3), "NaN or inf"),
    (np.array([[0.5, np.inf, 0.5]] * 3), "NaN or inf"),
    (np.ones((3, 3)), "sum to 1"),
    (np.array([[2.0, -1.0, 0.0]] * 3), r"\[0, 1\]"),
    (np.zeros((4, 3)) + 1 / 3, "shape"),
    (np.array([0, 1, 5]), "class ids"),
    (np.array([0.5, 1.0, 2.0]), "integer class ids"),
    (np.array(["a", "b", "c"]), "numbers"),
    (np.zeros((3, 3, 1)), "shape"),
])
def test_validation_rejects_garbage(pred, message):
    probs, err = validate_predictions(pred, 3, 3)
    assert probs is None
    assert __import__("re").search(message, err)


def test_degenerate_and_far_from_weak_warnings():
    weak = np.eye(2)[np.array([0, 1] * 50)]
    one_class = np.eye(2)[np.zeros(100, int)]
    warnings = degeneracy_warnings(one_class, weak)
    assert any("degenerate" in w for w in warnings) and any("far from" in w for w in warnings)
    assert degeneracy_warnings(weak, weak) == []


def test_paired_difference_statistics():
    d = paired_difference({0: 0.5, 1: 0.6, 2: 0.7}, {0: 0.4, 1: 0.45, 2: 0.5})
    assert d.n == 3 and d.mean == pytest.approx(0.15)
    assert 0 < d.p_value < 0.1 and d.ci95 > 0
    assert paired_difference({0: 0.5}, {0: 0.4}).p_value is None
    assert paired_difference({0: 0.5}, {1: 0.4}) is None


def test_budget_counts_and_refuses(tmp_path):
    budget = ScoringBudget(max_calls=2, state_path=tmp_path / "b.json")
    budget.charge()
    budget.charge()
    with pytest.raises(BudgetExhaustedError, match="scoring budget exhausted"):
        budget.charge()
    assert ScoringBudget(max_calls=2, state_path=tmp_path / "b.json").used == 2


def test_scoring_gold_perfect_and_pgr(small_cache):
    ev = Evaluator(small_cache, budget=ScoringBudget(max_calls=10))
    gold = small_cache.gold_test()
    result = ev.score(RunOutput("ok", predictions=gold.copy()), seed=0)
    b = small_cache.baselines()
    assert result.dev_acc == 1.0 and result.heldout_acc == 1.0
    assert result.pgr == pytest.approx((1 - b.weak_dev.mean) / (b.ceiling_dev.mean - b.weak_dev.mean))
    assert ev.budget.used == 1


def test_evaluate_idea_end_to_end(evaluator, idea_file, small_cache):
    path = idea_file(
        "import numpy as np\n"
        "def run(ctx):\n"
        "    ctx.report('n', len(ctx.test_texts))\n"
        "    return np.asarray(ctx.weak_test_probs)\n"
    )
    result = evaluator.evaluate(path, [0, 1])
    assert result.status == "ok" and len(result.seeds) == 2
    # returning the weak teacher's predictions scores the weak accuracy: PGR near 0
    assert abs(result.pgr.mean) < 0.15
    assert result.seeds[0].diagnostics == {"n": small_cache.card().n_test}
    view = result.for_proposer().model_dump()
    assert "heldout_acc" not in view and all("heldout_acc" not in s for s in view["seeds"])
    assert result.vs_vanilla is not None and result.vs_vanilla.n == 2


def test_idea_failures_get_clear_statuses(evaluator, idea_file):
    crash = evaluator.evaluate(idea_file("def run(ctx):\n    raise RuntimeError('boom')\n"), [0])
    assert crash.status == "error" and "RuntimeError: boom" in crash.seeds[0].error
    assert "Traceback" in crash.seeds[0].traceback
    norun = evaluator.evaluate(idea_file("x = 1\n"), [0])
    assert norun.status == "invalid" and "run(ctx)" in norun.seeds[0].error
    syntax = evaluator.evaluate(idea_file("def run(ctx)\n  pass\n"), [0])
    assert syntax.status == "error" and "SyntaxError" in syntax.seeds[0].error
    garbage = evaluator.evaluate(idea_file("def run(ctx):\n    return [[1, 2]]\n"), [0])
    assert garbage.status == "invalid" and "shape" in garbage.seeds[0].error


WARM_UP_IMPORTS_STATS = """
import sys, threading
from sandbox.cache.task_cache import open_cache
from sandbox.scoring.evaluator import Evaluator
from sandbox.execution.base import Executor
from sandbox.tasks import SplitSizes, get_task


class NoWorker(Executor):  # the worker's start is not what this checks
    name = "none"
    def run(self, requests):
        raise AssertionError("nothing runs here")
    def warm(self, request):
        pass

cache = open_cache(get_task("wordnet-10", SplitSizes.parse(sys.argv[1])), n_weak_seeds=5, show_progress=False)
assert "scipy.stats" not in sys.modules, "imported before warm_up: the check below proves nothing"
Evaluator(cache, executor=NoWorker()).warm_up()
for thread in threading.enumerate():
    if thread.name == "stats-import":
        thread.join(60)
print("scipy.stats" in sys.modules)
"""


def test_warm_up_imports_the_scoring_statistics_meanwhile(small_cache):
    """A session's first scoring must not wait for scipy.stats (~1.2 s): warm_up imports it on
    a thread while the worker starts (a fresh interpreter, where nothing imported it yet)."""
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", WARM_UP_IMPORTS_STATS, SMALL], cwd=root, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(root)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "True"

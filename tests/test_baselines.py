import pytest

from sandbox.baseline_ideas import baseline_files

NAMES = [p.stem for p in baseline_files()]


def test_the_required_baselines_exist():
    required = {"vanilla_hard", "vanilla_soft", "confident_only", "aux_confidence",
                "bootstrap_self_training", "probe_relabel", "label_propagation", "weak_val_early_stop"}
    assert required <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_each_baseline_runs_and_scores(evaluator, name):
    path = next(p for p in baseline_files() if p.stem == name)
    result = evaluator.evaluate(path, [0], compare_vanilla=False, charge=False)
    assert result.status == "ok", result.seeds[0].error
    assert result.seeds[0].dev_acc > 0.3  # far above chance on 10 classes
    assert result.pgr is not None and -3 < result.pgr.mean < 3


def test_vanilla_is_deterministic(evaluator):
    path = next(p for p in baseline_files() if p.stem == "vanilla_soft")
    a = evaluator.evaluate(path, [1], compare_vanilla=False, charge=False)
    b = evaluator.evaluate(path, [1], compare_vanilla=False, charge=False)
    assert a.seeds[0].dev_acc == b.seeds[0].dev_acc and a.seeds[0].pgr == b.seeds[0].pgr

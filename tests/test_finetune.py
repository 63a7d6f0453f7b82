"""Fine-tune students (encoder family, the real all-MiniLM-L6-v2): the shared loss API, LoRA,
read-outs, limits, the task kind, and a vanilla fine-tune seed scored through the sandbox."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sandbox.errors import HarnessError
from sandbox.runtime import (
    aux_confidence_loss,
    bootstrap_loss,
    confidence_window_loss,
    finetune,
    hidden_states,
    predict_proba,
    product_loss,
    soft_ce,
)
from sandbox.runtime.students import load_student
from sandbox.tasks import SplitSizes, get_task
from sandbox.tasks.models import resolve_student

TEXTS = ["dog: a domestic animal", "oak: a large tree", "hammer: a hand tool",
         "cat: a small feline", "pine: a conifer tree", "saw: a cutting tool"] * 3
CLASSES = ["animal", "plant", "artifact"]
TARGETS = np.eye(3, dtype=np.float32)[[0, 1, 2] * 6] * 0.8 + 0.2 / 3
TINY_FT = "40,60,30,30"


@pytest.fixture(scope="module")
def spec():
    return resolve_student("minilm-l6", CLASSES, max_len=24)


@pytest.mark.parametrize("loss", [soft_ce, aux_confidence_loss(), product_loss(), bootstrap_loss(),
                                  confidence_window_loss()], ids=["soft", "aux", "product", "bootstrap", "window"])
def test_finetune_takes_the_head_losses(spec, loss):
    student = load_student(spec, 3, seed=0, device="cpu")
    finetune(student, TEXTS, TARGETS, loss_fn=loss, epochs=1, batch_size=6, seed=0)
    assert student.history and np.isfinite(student.history[-1]["loss"])
    probs = predict_proba(student, TEXTS[:4])
    assert probs.shape == (4, 3) and np.allclose(probs.sum(1), 1, atol=1e-5)


def test_all_weights_learn_and_lora_leaves_the_body_frozen(spec):
    full = load_student(spec, 3, seed=0, device="cpu")
    lora = load_student(spec, 3, lora={"rank": 4, "alpha": 8}, seed=0, device="cpu")
    assert lora.trainable_parameters() < full.trainable_parameters() / 50
    frozen = {n: p.detach().clone() for n, p in lora.model.named_parameters() if not p.requires_grad}
    before = predict_proba(lora, TEXTS)
    finetune(lora, TEXTS, TARGETS, epochs=3, batch_size=6, seed=0)
    after = {n: p for n, p in lora.model.named_parameters() if not p.requires_grad}
    assert all(torch.equal(frozen[n], after[n]) for n in frozen)
    assert not np.allclose(before, predict_proba(lora, TEXTS), atol=1e-4)  # adapter + head moved
    trained = (predict_proba(lora, TEXTS).argmax(1) == TARGETS.argmax(1)).mean()
    assert trained > 0.5, trained


def test_time_limit_and_weak_val_early_stopping(spec):
    student = load_student(spec, 3, seed=1, device="cpu")
    finetune(student, TEXTS, TARGETS, epochs=5, batch_size=6, time_limit_s=0.0, seed=1)
    assert len(student.history) == 1 and student.history[0]["step"] == 1
    student = load_student(spec, 3, seed=1, device="cpu")
    finetune(student, TEXTS, TARGETS, epochs=2, batch_size=6, val=(TEXTS[:6], TARGETS[:6]),
             eval_every=1, patience=1, seed=1)
    assert all("weak_val_agreement" in r for r in student.history)


def test_hidden_states_per_layer(spec):
    student = load_student(spec, 3, seed=0, device="cpu")
    first, last = hidden_states(student, TEXTS[:3], 0), hidden_states(student, TEXTS[:3], -1)
    assert first.shape == last.shape == (3, 384) and not np.allclose(first, last)


def test_finetune_kind_on_the_card_and_bad_kinds(tmp_path):
    spec = get_task("wordnet-10-ft")
    assert spec.kind == "finetune" and spec.strong_model == "minilm-l6"
    rows = [{"question": f"{a}+{a}", "choice": str(a + a + (i % 2)), "label": i % 2 == 0}
            for i, a in enumerate(range(10))]
    (tmp_path / "rows.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    (tmp_path / "task.json").write_text(json.dumps({"kind": "lora"}))
    with pytest.raises(HarnessError, match="unknown kind 'lora'; use one of features, finetune"):
        get_task(str(tmp_path))
    (tmp_path / "task.json").write_text(json.dumps({"strong_model": "smollm2-135m"}))
    with pytest.raises(HarnessError, match="missing kind.*features, finetune"):
        get_task(str(tmp_path))


def test_features_task_refuses_ctx_student(small_cache, tmp_path):
    from sandbox.runtime.context import IdeaContext, JobSpec

    job = JobSpec(idea_path="x", public_dir=str(small_cache.public_dir), weak_seed=0, student_seed=0,
                  weak_dir=str(small_cache.public_dir / "weak" / "seed_0"), time_budget_s=10,
                  scratch_dir=str(tmp_path), out_dir=str(tmp_path))
    with pytest.raises(ValueError, match="features task.*wordnet-10-ft"):
        IdeaContext.from_job(job).student()


@pytest.fixture(scope="module")
def ft_cache(cache_dir):
    from sandbox.cache.task_cache import open_cache

    spec = get_task("wordnet-10-ft", SplitSizes.parse(TINY_FT))
    return open_cache(spec, n_weak_seeds=1, show_progress=False, root=cache_dir, device="cpu")


def test_finetune_cache_has_ceiling_student_and_features(ft_cache):
    card = ft_cache.card()
    assert card.kind == "finetune" and card.student is not None and card.student.family == "encoder"
    assert card.weak_seeds == [0] and "final" in card.layers
    assert "finetune" in ft_cache.baselines().ceiling_recipe
    assert not (ft_cache.public_dir / "gold_unlabeled.npy").exists()


def test_vanilla_finetune_seed_through_the_sandbox(ft_cache):
    from sandbox.baseline_ideas import baseline_files, baseline_path
    from sandbox.isolation.registry import get_isolation
    from sandbox.scoring.evaluator import Evaluator

    ok, why = get_isolation("bwrap").available()
    if not ok:
        pytest.skip(why)
    names = [p.stem for p in baseline_files("finetune")]
    assert names[0] == "ft_vanilla" and {"ft_lora", "ft_aux_confidence", "ft_product", "ft_bootstrap",
                                         "ft_weak_val_early_stop"} <= set(names)
    # The tiny split checks the mechanics; its ceiling may not beat the weak teacher.
    ev = Evaluator(ft_cache, isolation="bwrap", time_budget_s=600, device="cpu", require_gap=False)
    result = ev.evaluate(baseline_path("ft_vanilla"), [0], compare_vanilla=False)
    seed = result.seeds[0]
    assert seed.status == "ok", (seed.error, seed.log_tail[-2000:])
    assert seed.dev_acc is not None and 0 <= seed.dev_acc <= 1
    assert 0 < seed.diagnostics["peak_rss_mb"] < 4096


GREEDY_FT_IDEA = '''
import torch
from sandbox.runtime import finetune


def run(ctx):
    student = ctx.student()
    hoard = []
    while True:  # a fine-tune idea that never stops asking for memory
        hoard.append(torch.ones(64 << 20, dtype=torch.uint8))
'''

ENDLESS_FT_IDEA = '''
from sandbox.runtime import finetune


def run(ctx):
    student = ctx.student()
    while True:  # ignores ctx.time_left()
        finetune(student, ctx.unlabeled_texts[:8], ctx.weak_soft[:8], epochs=1, batch_size=8)
'''


def _run_ft(ft_cache, tmp_path, source, limits):
    from sandbox.execution.pool import run_idea
    from sandbox.isolation.devices import run_passthrough
    from sandbox.isolation.registry import get_isolation

    ok, why = get_isolation("bwrap").available()
    if not ok:
        pytest.skip(why)
    idea = tmp_path / "idea.py"
    idea.write_text(source)
    return run_idea(idea, ft_cache.public_dir, 0, limits, get_isolation("bwrap"),
                    passthrough=run_passthrough("cpu", [ft_cache.card().student.model_dir]))


def test_finetune_idea_out_of_memory_ends_with_the_reason(ft_cache, tmp_path):
    from sandbox.isolation.base import Limits

    out = _run_ft(ft_cache, tmp_path, GREEDY_FT_IDEA, Limits(time_s=300, memory_bytes=2 << 30))
    error = out.error or ""
    # The address-space cap fails the allocation inside the idea (torch says so); a whole-run
    # cgroup cap that trips first kills the run. Either way the reason is memory, in one line.
    assert (out.status == "error" and "can't allocate memory" in error) or (
        out.status == "killed" and "memory limit" in error), (out.status, error)


def test_finetune_idea_past_its_time_ends_timeout_with_the_reason(ft_cache, tmp_path):
    from sandbox.isolation.base import Limits

    out = _run_ft(ft_cache, tmp_path, ENDLESS_FT_IDEA, Limits(time_s=45))
    assert out.status == "timeout" and "45s time budget" in (out.error or ""), out.error

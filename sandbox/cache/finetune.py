"""Cache parts of fine-tune tasks (trusted side): the student spec, its fingerprint, frozen
features read off the student, and the gold-trained ceiling (the vanilla recipe on gold labels).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from sandbox.cache.encoders import intermediate_layers
from sandbox.runtime.student_spec import LoraSpec, StudentSpec
from sandbox.runtime.templates import is_chat_model
from sandbox.tasks.models import (
    cached_file_hash as _cached_file_hash,
)
from sandbox.tasks.models import (
    model_fingerprint as _model_fingerprint,
)
from sandbox.tasks.models import resolve_student
from sandbox.tasks.spec import TaskSpec

CEILING_RECIPE_FT = ("finetune with the vanilla recipe (VANILLA_FT; all weights unless the task names a "
                     "vanilla LoRA) on gold one-hot unlabeled labels, seed s")


def student_spec(spec: TaskSpec, classes: list[str]) -> StudentSpec:
    student = resolve_student(spec.strong_model, classes, label_words=list(spec.label_words or []) or None,
                              cue=spec.cue, max_len=spec.max_len)
    return student.model_copy(update={"vanilla_lora": LoraSpec(**spec.lora) if spec.lora else None,
                                      "chat_template": uses_chat_template(spec, spec.strong_model)})


def uses_chat_template(spec: TaskSpec, ref: str) -> bool | None:
    """Whether model ``ref`` of this task reads inputs through its chat template: as task.json
    says, else under the reference template for chat models only (as the reference does);
    None (plain text, and no change to the cache key) otherwise."""
    if spec.chat_template is not None:
        return spec.chat_template
    return True if spec.template == "reference" and is_chat_model(ref) else None


def student_fingerprint(student: StudentSpec) -> str:
    """Content hash of the weights the student starts from (GGUF file or config + weights)."""
    path = Path(student.model_dir)
    if student.gguf_file:
        stat = (path / student.gguf_file).stat()
        return _cached_file_hash(path / student.gguf_file, stat.st_size, stat.st_mtime_ns)[:16]
    index = path / "model.safetensors.index.json"  # sharded checkpoints: the index names the shards
    extra = _cached_file_hash(index, index.stat().st_size, index.stat().st_mtime_ns)[:16] if index.exists() else ""
    return _model_fingerprint(path) + extra


def key_parts(spec: TaskSpec, classes: list[str]) -> dict:
    from sandbox.runtime.recipes import VANILLA_FT  # torch-free: computing a key loads no model

    student = student_spec(spec, classes)
    return {"kind": spec.kind, "student": [student.model_dump(exclude={"model_dir"}, exclude_none=True),
                                           student_fingerprint(student)],
            "ceiling": [CEILING_RECIPE_FT, VANILLA_FT]}


def uses_encoder_features(spec: TaskSpec) -> bool:
    """Whether the strong model is a registered encoder (features come from sandbox.cache.encoders)."""
    from sandbox.cache.encoders import list_encoders

    return spec.strong_model in list_encoders()


def student_features(student: StudentSpec, n_classes: int, texts: list[str],
                     device: str = "auto") -> dict[str, np.ndarray]:
    """Frozen features read off the untrained student: a few intermediate layers and the last."""
    from sandbox.runtime.finetuning import pooled_layers
    from sandbox.runtime.students import load_student

    model = load_student(student, n_classes, device=device)
    config: Any = model.model.config  # a transformers config (nn.Module's typing says Tensor)
    middle = intermediate_layers(int(config.num_hidden_layers))
    pooled = pooled_layers(model, texts, [*middle, -1])
    return {**{f"layer_{i}": pooled[i] for i in middle}, "final": pooled[-1]}


def ceiling_probs(student: StudentSpec, n_classes: int, train_texts: list[str],
                  gold: np.ndarray, test_texts: list[str], seed: int, device: str = "auto") -> np.ndarray:
    """The strong model fine-tuned on gold labels with the vanilla recipe: test probabilities."""
    from sandbox.runtime.finetuning import finetune, predict_proba, vanilla_recipe
    from sandbox.runtime.students import load_student

    model = load_student(student, n_classes, lora=student.vanilla_lora, seed=seed, device=device)
    onehot = np.eye(n_classes, dtype=np.float32)[np.asarray(gold)]
    finetune(model, train_texts, onehot, seed=seed, **vanilla_recipe(model))
    return predict_proba(model, test_texts)


def public_texts(public_dir: Path) -> dict[str, list[str]]:
    return json.loads((public_dir / "texts.json").read_text())


def weak_is_lm(spec: TaskSpec) -> bool:
    """A fine-tune task whose weak model is a causal LM (fine-tuned on weak-train as teacher)."""
    from sandbox.cache.encoders import list_encoders
    from sandbox.tasks.models import model_dir, model_family

    if spec.kind != "finetune" or spec.weak_model == "tfidf" or spec.weak_model in list_encoders():
        return False
    return model_family(*model_dir(spec.weak_model)) == "causal"


def weak_spec(spec: TaskSpec, classes: list[str]) -> StudentSpec:
    weak = resolve_student(spec.weak_model, classes, label_words=list(spec.label_words or []) or None,
                           cue=spec.cue, max_len=spec.max_len)
    return weak.model_copy(update={"chat_template": uses_chat_template(spec, spec.weak_model)})


def weak_lm_probs(spec: TaskSpec, classes: list[str], train_texts: list[str], gold: np.ndarray,
                  predict: dict[str, list[str]], seed: int, device: str = "auto") -> dict[str, np.ndarray]:
    """The weak causal LM fine-tuned (vanilla recipe) on its seed's subsample of weak-train gold."""
    from sandbox.cache.teachers import subsample
    from sandbox.runtime.finetuning import VANILLA_FT, finetune, predict_proba
    from sandbox.runtime.students import load_student

    keep = subsample(len(train_texts), seed)
    model = load_student(weak_spec(spec, classes), len(classes), seed=seed, device=device)
    onehot = np.eye(len(classes), dtype=np.float32)[np.asarray(gold)[keep]]
    finetune(model, [train_texts[i] for i in keep], onehot, seed=seed, **VANILLA_FT)
    return {name: predict_proba(model, texts) for name, texts in predict.items()}

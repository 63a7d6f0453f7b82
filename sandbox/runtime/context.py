"""The read-only context an idea receives, built from the task's public artifacts only."""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, Field

from sandbox.runtime.student_spec import LoraSpec, StudentSpec

if TYPE_CHECKING:
    from sandbox.runtime.students import Student

MAX_REPORT_INT_BITS = 128  # within the parent's bound on integer digits
MAX_DIAGNOSTICS = 64


def weak_teacher_dir(public_dir: Path, weak_seed: int) -> Path:
    """Where the public cache keeps one seed's weak-teacher files (the one definition of that
    layout: the cache writes there, the host copies from there, an idea's context reads there)."""
    return public_dir / "weak" / f"seed_{weak_seed}"


class TaskCard(BaseModel):
    """What an idea (and the proposer) may know about a task. Persisted as ``card.json``."""

    name: str = Field(description="Task name, e.g. 'wordnet-10'.")
    description: str = Field(description="One line on what is being classified.")
    classes: list[str] = Field(description="Class names; class id i is classes[i].")
    n_unlabeled: int = Field(description="Number of unlabeled (student training) inputs.")
    n_test: int = Field(description="Number of test inputs the idea must predict (dev + held-out).")
    weak_model: str = Field(description="The weak teacher's model.")
    strong_model: str = Field(description="The strong student's encoder.")
    layers: list[str] = Field(description="Cached strong-feature layers; 'final' is the last one.")
    feature_dim: int = Field(description="Width of the strong features.")
    weak_seeds: list[int] = Field(description="Seeds for which weak-teacher artifacts exist.")
    cache_key: str = Field(description="Content-derived key of this cache.")
    kind: Literal["features", "finetune"] = Field(
        "features", description="'features': heads on cached features; 'finetune': the strong "
        "model itself is trained (ctx.student()).")
    student: StudentSpec | None = Field(
        None, description="finetune tasks: how the strong model loads as a trainable student.")
    row_keys: list[str] = Field(
        default_factory=list, description="Split-file tasks: the rows' other keys (consistency_id, subset, "
        "...), read with ctx.row_extras(split).")
    pair_features: bool = Field(
        False, description="Preference feature tasks: each feature row is [side A, side B, A - B] (three "
        "blocks of feature_dim / 3), each side encoded apart as prompt + answer; swap_sides() in "
        "sandbox.runtime.pairs swaps them (and the A/B targets) for label symmetrisation.")


class JobSpec(BaseModel):
    """What the parent tells the idea process to do (written as ``job.json``)."""

    idea_path: str = Field(description="The idea file to import.")
    public_dir: str = Field(description="The task's public artifacts (read-only), without weak teachers.")
    weak_seed: int = Field(description="Which weak teacher's labels this run gets.")
    student_seed: int = Field(description="The seed the idea trains its student with (ctx.seed).")
    weak_dir: str = Field(description="This run's own weak teacher files (read-only); no other seed's.")
    time_budget_s: float = Field(description="Wall-clock seconds this run may take.")
    scratch_dir: str = Field(description="A private writable directory.")
    threads: int = Field(1, description="Threads torch / BLAS may use.")
    device: str = Field("cpu", description="Where students train: 'cpu' or 'cuda' (the GPUs passed in).")


def _readonly(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


@dataclass
class IdeaContext:
    """Everything an idea may read. Arrays are read-only; copy before modifying."""

    card: TaskCard
    seed: int  # the student seed
    time_budget_s: float
    scratch: Path
    public_dir: Path
    log: logging.Logger
    weak_dir: Path | None = None  # None: the public cache's own weak/seed_<weak_seed>
    weak_seed: int | None = None  # None: the student seed
    started_at: float = field(default_factory=time.monotonic)
    diagnostics: dict[str, Any] = field(default_factory=dict)
    device: str = "cpu"
    figures: list[tuple[str, bytes]] = field(default_factory=list)  # PNGs an analysis run sends back
    # An analysis run only: the researcher's earlier attempts' test-row predictions,
    # attempt id -> seed -> (n_test, n_classes) probabilities (sandbox/runtime/analysis.py)
    earlier_predictions: dict[str, dict[int, Any]] = field(default_factory=dict)
    _texts: dict[str, list[str]] | None = None

    @classmethod
    def from_job(cls, job: JobSpec) -> IdeaContext:
        public = Path(job.public_dir)
        card = TaskCard.model_validate_json((public / "card.json").read_text())
        if job.weak_seed not in card.weak_seeds:
            raise ValueError(f"seed {job.weak_seed} has no weak-teacher artifacts")
        return cls(
            card=card, seed=job.student_seed, time_budget_s=job.time_budget_s,
            scratch=Path(job.scratch_dir), public_dir=public, log=logging.getLogger("idea"),
            weak_dir=Path(job.weak_dir), weak_seed=job.weak_seed,
            device=job.device,
        )

    # --- data -------------------------------------------------------------------------
    @property
    def n_classes(self) -> int:
        return len(self.card.classes)

    def _load_texts(self) -> dict[str, list[str]]:
        if self._texts is None:
            self._texts = json.loads((self.public_dir / "texts.json").read_text())
        return self._texts

    @property
    def unlabeled_texts(self) -> list[str]:
        return list(self._load_texts()["unlabeled"])

    @property
    def test_texts(self) -> list[str]:
        return list(self._load_texts()["test"])

    def row_extras(self, split: str) -> list[dict[str, Any]]:
        """Each row's keys beyond its schema (card.row_keys; e.g. ``consistency_id``), in the order
        of ``unlabeled_texts`` or ``test_texts``; empty dicts where the task has none."""
        if split not in ("unlabeled", "test"):
            raise ValueError(f"split must be 'unlabeled' or 'test', not {split!r}")
        path = self.public_dir / "row_extras.json"
        if not path.is_file():
            n = self.card.n_unlabeled if split == "unlabeled" else self.card.n_test
            return [{} for _ in range(n)]
        return json.loads(path.read_text())[split]

    def _weak(self, name: str) -> np.ndarray:
        seed = self.seed if self.weak_seed is None else self.weak_seed
        path = (self.weak_dir or weak_teacher_dir(self.public_dir, seed)) / name
        return _readonly(np.load(path, allow_pickle=False))

    @property
    def weak_soft(self) -> np.ndarray:
        """The weak teacher's class probabilities on the unlabeled inputs, (n_unlabeled, C)."""
        return self._weak("unlabeled_soft.npy")

    @property
    def weak_test_probs(self) -> np.ndarray:
        """The weak teacher's class probabilities on the test inputs, (n_test, C)."""
        return self._weak("test_probs.npy")

    def features(self, split: str, layer: str = "final") -> np.ndarray:
        """Cached strong features, ``split`` in {'unlabeled', 'test'}, ``layer`` in card.layers."""
        if split not in ("unlabeled", "test"):
            raise ValueError(f"split must be 'unlabeled' or 'test', not {split!r}")
        if layer not in self.card.layers:
            raise ValueError(f"layer {layer!r} not cached; choose from {self.card.layers}")
        path = self.public_dir / "features" / f"{split}__{layer}.npy"
        return np.load(path, mmap_mode="r", allow_pickle=False)

    # --- fine-tune tasks ---------------------------------------------------------------
    def student(self, lora: LoraSpec | dict | None = None, seed: int | None = None) -> Student:
        """A fresh trainable copy of the strong model (finetune tasks only).

        ``lora=None`` trains all weights; ``lora={"rank": 8, "alpha": 16, "targets": None}``
        freezes them and adds a peft LoRA adapter (targets None = the model type's default)."""
        if self.card.kind != "finetune" or self.card.student is None:
            raise ValueError(f"task {self.card.name!r} is a features task: ctx.student() needs a "
                             "finetune task (e.g. wordnet-10-ft); use ctx.features() here")
        from sandbox.runtime.students import load_student  # torch + transformers: load lazily

        return load_student(self.card.student, self.n_classes, lora=lora,
                            seed=self.seed if seed is None else seed, device=self.device)

    # --- budget and reporting --------------------------------------------------------
    def elapsed(self) -> float:
        return time.monotonic() - self.started_at

    def time_left(self) -> float:
        return self.time_budget_s - self.elapsed()

    def figure_path(self, name: str) -> Path:
        """Where an analysis run saves a PNG figure (e.g. ``plt.savefig(ctx.figure_path("calib"))``)."""
        from sandbox.runtime.analysis import figure_path

        return figure_path(self, name)

    def save_png(self, name: str, pixels: Any) -> Path:
        """Save an image array, (H, W) gray or (H, W, 3) RGB, 0-255 or floats in [0, 1], as a
        PNG figure of an analysis run."""
        from sandbox.runtime.analysis import encode_png

        path = self.figure_path(name)
        path.write_bytes(encode_png(pixels))
        return path

    def report(self, name: str, value: float | int | str | bool) -> None:
        """Record a named diagnostic (a number or a short string) returned with the result."""
        if len(self.diagnostics) >= MAX_DIAGNOSTICS and name not in self.diagnostics:
            self.log.warning("diagnostic %r dropped: at most %d", name, MAX_DIAGNOSTICS)
            return
        if isinstance(value, float) and not math.isfinite(value):
            value = str(value)
        if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MAX_REPORT_INT_BITS:
            value = f"an integer of {value.bit_length()} bits"  # str() of it may raise; the parent refuses it
        if isinstance(value, str):
            value = value[:200]
        self.diagnostics[str(name)[:64]] = value

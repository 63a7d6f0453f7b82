"""The task types every task loader returns: split sizes, labelled data and the task spec."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from pydantic import BaseModel, Field

from sandbox.errors import HarnessError

# 'features': ideas fit heads on cached frozen features; 'finetune': the strong model itself is
# the student (trained end to end or with LoRA inside the sandbox).
TASK_KINDS = ("features", "finetune")


class SplitSizes(BaseModel):
    """How many examples go to each split (class-balanced where the data allows)."""

    weak_train: int = Field(1000, description="Gold-labeled examples the weak teacher trains on.")
    unlabeled: int = Field(4000, description="Inputs the student trains on; gold kept hidden.")
    dev: int = Field(1000, description="Test examples whose score is fed back to the proposer.")
    heldout: int = Field(1000, description="Test examples scored and stored, never shown.")

    @classmethod
    def parse(cls, text: str) -> SplitSizes:
        """Parse ``"1000,4000,1000,1000"`` (weak_train, unlabeled, dev, heldout)."""
        parts = [p.strip() for p in text.split(",")]
        if len(parts) != 4 or not all(p.isdigit() and int(p) > 0 for p in parts):
            raise ValueError(
                f"split sizes {text!r}: give four positive integers weak_train,unlabeled,dev,heldout"
            )
        wt, un, dev, ho = (int(p) for p in parts)
        return cls(weak_train=wt, unlabeled=un, dev=dev, heldout=ho)

    @property
    def total(self) -> int:
        return self.weak_train + self.unlabeled + self.dev + self.heldout

    def text(self) -> str:
        """The ``--split-sizes`` form of these sizes."""
        return f"{self.weak_train},{self.unlabeled},{self.dev},{self.heldout}"

    def scaled_to(self, n_rows: int, n_classes: int) -> SplitSizes:
        """These proportions shrunk to fit ``n_rows`` (never grown), or a HarnessError when even
        the smallest useful splits (``min_split`` rows each) do not fit."""
        least = min_split(n_classes)
        if self.total <= n_rows:
            return self
        scale = n_rows / self.total
        sizes = {k: int(v * scale) for k, v in self.model_dump().items()}
        if min(sizes.values()) < least:
            need = int(self.total * least / min(self.model_dump().values())) + 1
            raise HarnessError(
                f"the task has {n_rows} rows, too few for four splits of at least {least} rows each in "
                f"these proportions (about {need} rows needed): add rows or pass --split-sizes explicitly")
        return SplitSizes(**sizes)

    def fitting(self, n_rows: int, n_classes: int) -> SplitSizes:
        """Sizes near these proportions that fit ``n_rows`` with every split at least ``min_split``
        rows (what to suggest for sizes a user gave), or a HarnessError when no four splits fit."""
        least = min_split(n_classes)
        if n_rows < 4 * least:
            raise HarnessError(f"the task has {n_rows} rows, too few for four splits of at least {least} rows "
                               f"each ({4 * least} rows needed): add rows")
        wanted = self.model_dump()
        sizes = {k: max(least, min(v, v * n_rows // self.total)) for k, v in wanted.items()}
        while sum(sizes.values()) > n_rows:  # take the excess from the largest split
            largest = max(sizes, key=lambda k: sizes[k])
            sizes[largest] = max(least, sizes[largest] - (sum(sizes.values()) - n_rows))
        return SplitSizes(**sizes)


# The role each split file of a task directory plays (train_label.jsonl: weak_train, ...).
ROLES = ("weak_train", "unlabeled", "test")


def min_split(n_classes: int) -> int:
    """The smallest split worth scoring: two examples per class, and at least 10."""
    return max(10, 2 * n_classes)


@dataclass(frozen=True)
class LabeledData:
    """All labeled rows a task draws its splits from."""

    texts: list[str]
    labels: list[int]
    classes: list[str]
    # Split-file tasks only (None for pooled rows, so their content hash is what it always was):
    roles: list[str] | None = None  # each row's role (ROLES), from the file it came from
    groups: list[str] | None = None  # each row's consistency_id ("" for none): kept on one side of dev/held-out
    soft: list[list[float] | None] | None = None  # each row's given weak soft label (the teacher's output)
    extras: list[dict] | None = None  # each row's keys beyond its schema, offered to ideas (never a label)
    # Preference rows: (prompt, first, second) each; feature tasks encode the sides apart (pair-aware)
    pairs: list[tuple[str, str, str]] | None = None

    def content_hash(self) -> str:
        h = hashlib.sha256()
        h.update(json.dumps(self.classes).encode())
        for text, label in zip(self.texts, self.labels, strict=True):
            h.update(f"{label}\t{text}\n".encode())
        for name in ("roles", "groups", "soft", "extras", "pairs"):
            if getattr(self, name) is not None:
                h.update(name.encode() + json.dumps(getattr(self, name), sort_keys=True).encode())
        return h.hexdigest()

    def role_counts(self) -> dict[str, int]:
        """Rows per role (split-file tasks)."""
        counts = Counter(self.roles or [])
        return {role: counts[role] for role in ROLES}


@dataclass(frozen=True)
class TaskSpec:
    """A task: where its data comes from and which weak and strong models it pairs."""

    name: str
    description: str
    load: Callable[[], LabeledData]
    weak_model: str
    strong_model: str
    sizes: SplitSizes = field(default_factory=SplitSizes)
    split_seed: int = 0
    source: str = ""
    sizes_given: bool = False
    kind: str = "features"  # one of TASK_KINDS
    label_words: tuple[str, ...] | None = None  # finetune, causal LMs: one word per class
    cue: str = "\nAnswer:"  # finetune, causal LMs: appended to each input before scoring
    max_len: int = 128  # finetune: tokens per input
    lora: dict | None = None  # finetune: the vanilla recipe's adapter ({"rank", "alpha"}); None = all weights
    template: str = "cue"  # causal LMs: "cue" (text + cue) or "reference" (the reference benchmark's prompts)
    fixed_seeds: int | None = None  # weak teachers and ceilings the fixed baselines average (None: the default)
    chat_template: bool | None = None  # causal LMs: None = by model type under the reference template

    def __post_init__(self) -> None:
        if self.kind not in TASK_KINDS:
            raise HarnessError(f"task {self.name!r}: unknown kind {self.kind!r}; "
                               f"use one of {', '.join(TASK_KINDS)}")

    def with_sizes(self, sizes: SplitSizes | None) -> TaskSpec:
        if sizes is None:
            return self
        return replace(self, sizes=sizes, sizes_given=True)

    def fitted(self, data: LabeledData) -> TaskSpec:
        """This task with split sizes that fit its data: default sizes shrink in proportion for
        small tasks; sizes the user gave are kept, or refused with sizes that would fit."""
        if data.roles is not None:
            return self._fitted_to_files(data)
        n, n_classes = len(data.labels), len(data.classes)
        if self.sizes.total <= n:
            return self
        if self.sizes_given:
            fitting = self.sizes.fitting(n, n_classes)
            raise HarnessError(
                f"split sizes {self.sizes.text()} need {self.sizes.total} rows but task {self.name} has {n}: "
                f"pass --split-sizes {fitting.text()} (or smaller)")
        return replace(self, sizes=self.sizes.scaled_to(n, n_classes))

    def _fitted_to_files(self, data: LabeledData) -> TaskSpec:
        """Split-file tasks: every row of each file by default (test halved into dev and held-out);
        sizes the user gave take that many rows of each file, or are refused with sizes that fit."""
        counts = data.role_counts()
        n_test = counts["test"]
        whole = SplitSizes(weak_train=counts["weak_train"], unlabeled=counts["unlabeled"],
                           dev=n_test // 2, heldout=n_test - n_test // 2)
        if not self.sizes_given:
            return replace(self, sizes=whole)
        s = self.sizes
        if s.weak_train <= whole.weak_train and s.unlabeled <= whole.unlabeled and s.dev + s.heldout <= n_test:
            return self
        dev = min(s.dev, n_test * s.dev // (s.dev + s.heldout)) if s.dev + s.heldout > n_test else s.dev
        fit = SplitSizes(weak_train=min(s.weak_train, whole.weak_train), unlabeled=min(s.unlabeled, whole.unlabeled),
                         dev=max(1, dev), heldout=max(1, min(s.heldout, n_test - max(1, dev))))
        raise HarnessError(
            f"split sizes {s.text()} ask for more rows than task {self.name}'s split files hold (train_label "
            f"{counts['weak_train']}, train_unlabel {counts['unlabeled']}, test {n_test} for dev + held-out): "
            f"pass --split-sizes {fit.text()} (or smaller)")


TASK_KEY_SEPARATOR = "@"  # directory tasks are named "<readable name>@<content key>"


def readable_name(task: str) -> str:
    """The readable part of a task identity (``rows@1a2b3c4d`` -> ``rows``)."""
    return task.split(TASK_KEY_SEPARATOR, 1)[0]

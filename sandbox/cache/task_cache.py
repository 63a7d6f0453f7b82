"""Task caches, built once and keyed by content.

Two stores per task key, so the sandbox can mount the public one alone:

``<root>/public/<task>-<key>/``  card.json, texts.json, features/<split>__<layer>.npy,
                                 weak/seed_<s>/{unlabeled_soft,test_probs}.npy,
                                 row_extras.json (split-file tasks: each row's other keys)
``<root>/private/<task>-<key>/`` gold labels of every split, which test rows are dev or
                                 held-out, weak-train texts, weak features, baselines.json,
                                 split_secret (random bytes made with the cache: the test order
                                 and the dev/held-out roles follow from it, never from public
                                 constants), given_soft_{unlabeled,test}.npy (split-file tasks
                                 whose rows carry the teacher's soft_label: every weak seed's labels)
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sandbox.cache import finetune as ft_cache
from sandbox.cache.encoders import get_encoder
from sandbox.cache.progress import progress_bar
from sandbox.cache.splits import (
    CONFIRMATION,
    HELDOUT,
    SELECTION,
    confirmation_part,
    make_splits,
    role_splits,
    secret_group_layout,
    secret_test_layout,
)
from sandbox.cache.teachers import (
    WEAK_CONFIG,
    fit_feature_teacher,
    fit_pair_tfidf_teacher,
    fit_tfidf_teacher,
)
from sandbox.cache.threads import single_threaded
from sandbox.files import atomic_write, file_lock
from sandbox.paths import cache_root
from sandbox.results import FixedBaselines, Stat
from sandbox.runtime.context import TaskCard, weak_teacher_dir
from sandbox.tasks.spec import LabeledData, TaskSpec

CACHE_FORMAT = 4  # 2: secret test order and roles; 3: features, teachers, ceilings computed on one
# thread per piece (sandbox/cache/threads.py); 4: dev divided into a selection and a confirmation
# part (test role 2). Older caches rebuild.
DEFAULT_WEAK_SEEDS = 5
# A fine-tune ceiling is a training run per seed: its references rest on the one seed every
# fine-tune cache builds anyway (a task.json "fixed_seeds" asks for more).
FT_REFERENCE_SEEDS = 1
SECRET_NAME = "split_secret"
PAIR_SIDES = "pair_sides.json"  # private: preference rows' sides per split, for pair-aware weak teachers
CEILING_EPOCHS = 20
CEILING_RECIPE = "train_head defaults (linear, 20 epochs, lr 3e-3) on final layer, gold one-hot, seed s"


def stat(values: list[float]) -> Stat:
    arr = np.asarray(values, dtype=np.float64)
    sd = float(arr.std(ddof=1)) if len(arr) > 1 else 0.0
    return Stat(mean=float(arr.mean()), sd=sd, n=len(arr), values=[float(v) for v in arr])


def cache_key(spec: TaskSpec, data: LabeledData) -> str:
    if data.soft is not None:  # the teacher's output came with the rows (in the data hash)
        weak = "given soft_label"
    elif ft_cache.weak_is_lm(spec):
        weak = ft_cache.student_fingerprint(ft_cache.weak_spec(spec, data.classes))
    else:
        weak = "tfidf" if spec.weak_model == "tfidf" else get_encoder(spec.weak_model).fingerprint()
    parts = {
        "format": CACHE_FORMAT,
        "data": data.content_hash(),
        "weak": [spec.weak_model, weak, WEAK_CONFIG],
        "sizes": spec.sizes.model_dump(),
        "split_seed": spec.split_seed,
    }
    if spec.kind == "finetune":
        parts.update(ft_cache.key_parts(spec, data.classes))
    else:
        parts.update(strong=[spec.strong_model, get_encoder(spec.strong_model).fingerprint()],
                     ceiling=CEILING_RECIPE)
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class TaskCache:
    """A built cache for one task configuration."""

    spec: TaskSpec
    key: str
    root: Path

    @property
    def public_dir(self) -> Path:
        return self.root / "public" / f"{self.spec.name}-{self.key}"

    @property
    def private_dir(self) -> Path:
        return self.root / "private" / f"{self.spec.name}-{self.key}"

    def exists(self) -> bool:
        return (self.public_dir / "card.json").exists() and (self.private_dir / "baselines.json").exists()

    def card(self) -> TaskCard:
        return TaskCard.model_validate_json((self.public_dir / "card.json").read_text())

    def baselines(self) -> FixedBaselines:
        return FixedBaselines.model_validate_json((self.private_dir / "baselines.json").read_text())

    # Trusted-side accessors (never mounted into the sandbox).
    def gold_test(self) -> np.ndarray:
        return np.load(self.private_dir / "gold_test.npy")

    def test_roles(self) -> np.ndarray:
        """Per test row: 0 dev's selection part, 2 dev's confirmation part, 1 held-out."""
        return np.load(self.private_dir / "test_roles.npy")


def baseline_summary_name(seeds: list[int]) -> str:
    """File (in a cache's private store) holding the built-in baselines' PGR on these seeds."""
    return f"baseline_summary_{'-'.join(map(str, seeds))}.json"


def find_baseline_summary(cache_key: str, seeds: list[int], root: Path | None = None) -> Path | None:
    """That file for the cache with this key, wherever its task folder is named, or None."""
    for folder in sorted(((root or cache_root()) / "private").glob(f"*-{cache_key}")):
        if (folder / baseline_summary_name(seeds)).is_file():
            return folder / baseline_summary_name(seeds)
    return None


def reference_seeds(spec: TaskSpec) -> list[int]:
    """The seeds whose weak teachers and ceilings make the task's fixed references: a function
    of the task alone, so a run's PGR does not move when the cache gains teacher seeds."""
    n = spec.fixed_seeds or (DEFAULT_WEAK_SEEDS if spec.kind == "features" else FT_REFERENCE_SEEDS)
    return list(range(n))


def locate_cache(spec: TaskSpec, root: Path | None = None) -> tuple[TaskCache, LabeledData]:
    """Where the task's cache is (built or not) and its data; split sizes fitted to the data."""
    data = spec.load()
    spec = spec.fitted(data)
    return TaskCache(spec=spec, key=cache_key(spec, data), root=root or cache_root()), data


def open_cache(spec: TaskSpec, n_weak_seeds: int = DEFAULT_WEAK_SEEDS, show_progress: bool = True,
               root: Path | None = None, device: str = "auto") -> TaskCache:
    """The task's cache, building whatever is missing (safe against concurrent builders).

    ``device`` is where fine-tune tasks train their gold ceilings (not part of the key)."""
    cache, data = locate_cache(spec, root)
    root = cache.root
    # Fine-tune ceilings cost a training run per seed: build only the seeds asked for, unless the
    # task fixes how many its baselines average (split-file tasks: the reference's 16).
    n_weak_seeds = max(n_weak_seeds, len(reference_seeds(cache.spec)))
    if (cache.exists() and len(cache.card().weak_seeds) >= n_weak_seeds
            and cache.baselines().reference_seeds == reference_seeds(cache.spec)):
        return cache
    try:
        with file_lock(root / "locks" / f"{cache.key}.lock"):
            if not cache.exists():
                _build(cache, data, show_progress, device)
            if len(cache.card().weak_seeds) < n_weak_seeds:
                _add_weak_seeds(cache, data, n_weak_seeds, device, show_progress)
            if cache.baselines().reference_seeds != reference_seeds(cache.spec):
                # summarised before references were fixed (averaged over every seed it held): redo
                # from the per-seed figures it kept, without training anything again
                _write_summary(cache, _load_per_seed(cache))
    finally:
        if spec.kind == "finetune":  # the students it trained: their GPU memory goes before any seed
            from sandbox.runtime.students import release_models

            release_models()
    return cache


def _build(cache: TaskCache, data: LabeledData, show_progress: bool, device: str = "auto") -> None:
    spec, started = cache.spec, time.monotonic()
    labels = np.asarray(data.labels)
    secret = secrets.token_bytes(32)
    splits, test_idx, roles = _split(data, spec, secret)
    text_of = lambda idx: [data.texts[i] for i in idx]  # noqa: E731
    public, private = (_fresh_tmp(d) for d in (cache.public_dir, cache.private_dir))
    (private / SECRET_NAME).write_bytes(secret)
    (private / SECRET_NAME).chmod(0o600)
    _write_split_file_parts(data, splits["unlabeled"], test_idx, public, private)

    (private / "weak_train_texts.json").write_text(json.dumps(text_of(splits["weak_train"])))
    for name, idx in (("weak_train", splits["weak_train"]), ("unlabeled", splits["unlabeled"]), ("test", test_idx)):
        np.save(private / f"gold_{name}.npy", labels[idx])
    np.save(private / "test_roles.npy", roles)
    (public / "texts.json").write_text(json.dumps({"unlabeled": text_of(splits["unlabeled"]),
                                                   "test": text_of(test_idx)}))

    texts = text_of(splits["unlabeled"]) + text_of(test_idx)
    student = ft_cache.student_spec(spec, data.classes) if spec.kind == "finetune" else None
    pair_aware = data.pairs is not None and spec.kind == "features"
    if data.pairs is not None:  # the weak teacher sees the pair, side by side (any task kind)
        (private / PAIR_SIDES).write_text(json.dumps(
            {name: _sides(data, idx) for name, idx in (("weak_train", splits["weak_train"]),
                                                        ("unlabeled", splits["unlabeled"]), ("test", test_idx))}))
    if pair_aware:
        feats = _pair_features(spec, data, np.concatenate([splits["unlabeled"], test_idx]), show_progress)
    elif student is None or ft_cache.uses_encoder_features(spec):
        strong = get_encoder(spec.strong_model)
        with progress_bar(f"{spec.name}: strong features ({strong.name})", len(texts), show_progress) as advance:
            feats = strong.encode(texts, advance)
    else:  # a causal LM: features are its own hidden states at the label slot
        feats = ft_cache.student_features(student, len(data.classes), texts, device)
    (public / "features").mkdir()
    n_unl = len(splits["unlabeled"])
    for layer, array in feats.items():
        np.save(public / "features" / f"unlabeled__{layer}.npy", array[:n_unl])
        np.save(public / "features" / f"test__{layer}.npy", array[n_unl:])
    if data.soft is None and spec.weak_model != "tfidf" and not ft_cache.weak_is_lm(spec):
        if data.pairs is not None:
            rows = np.concatenate([splits["weak_train"], splits["unlabeled"], test_idx])
            weak_feats = _pair_features(spec, data, rows, show_progress, spec.weak_model)["final"]
        else:
            weak_enc = get_encoder(spec.weak_model)
            all_texts = text_of(splits["weak_train"]) + texts
            with progress_bar(f"{spec.name}: weak features ({weak_enc.name})", len(all_texts),
                              show_progress) as advance:
                weak_feats = weak_enc.encode(all_texts, advance)["final"]
        np.save(private / "weak_features.npy", weak_feats)
    card = TaskCard(
        name=spec.name, description=spec.description, classes=data.classes, n_unlabeled=n_unl,
        n_test=len(test_idx), weak_model=spec.weak_model, strong_model=spec.strong_model,
        layers=list(feats), feature_dim=int(feats["final"].shape[1]), weak_seeds=[], cache_key=cache.key,
        kind=spec.kind, student=student,
        row_keys=sorted({k for row in data.extras or [] for k in row}),
        pair_features=pair_aware,
    )
    (public / "card.json").write_text(card.model_dump_json(indent=2))
    (private / "build.json").write_text(json.dumps({
        "build_seconds": time.monotonic() - started, "source": spec.source, "sizes": spec.sizes.text(),
        "weak_labels": "given soft_label" if data.soft is not None else "trained teachers"}))
    for tmp, final in ((private, cache.private_dir), (public, cache.public_dir)):
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)


def _sides(data: LabeledData, idx: np.ndarray) -> list[tuple[str, str]]:
    """Each preference row's two sides as texts of their own: prompt + first, prompt + second."""
    pairs = data.pairs or []
    return [(f"{pairs[i][0]}\n{pairs[i][1]}", f"{pairs[i][0]}\n{pairs[i][2]}") for i in idx]


def _pair_features(spec: TaskSpec, data: LabeledData, idx: np.ndarray, show_progress: bool,
                   model: str | None = None) -> dict[str, np.ndarray]:
    """Pair-aware features of preference rows: each side encoded apart, per layer [A, B, A - B]."""
    from sandbox.runtime.pairs import pair_rows

    encoder = get_encoder(model or spec.strong_model)
    sides = _sides(data, idx)
    texts = [a for a, _ in sides] + [b for _, b in sides]
    with progress_bar(f"{spec.name}: pair features ({encoder.name})", len(texts), show_progress) as advance:
        both = encoder.encode(texts, advance)
    return {layer: pair_rows(arr[: len(sides)], arr[len(sides):]) for layer, arr in both.items()}


def _split(data: LabeledData, spec: TaskSpec, secret: bytes) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """(indices per split, test indices in the secret order, their roles: 0 dev selection part,
    2 dev confirmation part, 1 held-out). Split-file tasks keep each file's role and divide only
    test, by whole consistency_id groups."""
    splits, test_idx, roles = _dev_and_heldout(data, spec, secret)
    labels = np.asarray(data.labels)
    return splits, test_idx, confirmation_part(roles, labels[test_idx], _test_groups(data, test_idx), secret)


def _test_groups(data: LabeledData, test_idx: np.ndarray) -> list[str] | None:
    return [data.groups[i] for i in test_idx] if data.groups else None


def _dev_and_heldout(data: LabeledData, spec: TaskSpec,
                     secret: bytes) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    labels = np.asarray(data.labels)
    if data.roles is not None:
        groups = data.groups or [""] * len(labels)
        splits = role_splits(data.roles, groups, spec.sizes, spec.split_seed)
        if any(groups):
            return splits, *secret_group_layout(splits["test"], groups, spec.sizes.dev, secret)
        return splits, *secret_test_layout(splits["test"], labels, spec.sizes.dev, secret)  # class-balanced
    splits = make_splits(labels, len(data.classes), spec.sizes, spec.split_seed)
    return splits, *secret_test_layout(np.concatenate([splits["dev"], splits["heldout"]]), labels,
                                       len(splits["dev"]), secret)


def _write_split_file_parts(data: LabeledData, unlabeled: np.ndarray, test_idx: np.ndarray,
                            public: Path, private: Path) -> None:
    """Split-file tasks: the rows' other keys (public, for ideas; never a label) and the given
    soft labels (private; each weak seed's public labels are copied from them)."""
    if data.extras is not None:
        (public / "row_extras.json").write_text(json.dumps(
            {"unlabeled": [data.extras[i] for i in unlabeled], "test": [data.extras[i] for i in test_idx]}))
    if data.soft is not None:
        for name, idx in (("unlabeled", unlabeled), ("test", test_idx)):
            np.save(private / f"given_soft_{name}.npy", np.asarray([data.soft[i] for i in idx], np.float32))


def _fresh_tmp(final: Path) -> Path:
    tmp = final.with_name(f".{final.name}.building.{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    return tmp


def _teacher_probs(cache: TaskCache, seed: int, device: str = "auto") -> dict[str, np.ndarray]:
    private, public = cache.private_dir, cache.public_dir
    if (private / "given_soft_test.npy").is_file():  # the teacher's cached output, used as is
        return {name: np.load(private / f"given_soft_{name}.npy") for name in ("unlabeled", "test")}
    gold = np.load(private / "gold_weak_train.npy")
    n_classes = len(cache.card().classes)
    if cache.spec.weak_model == "tfidf" and (private / PAIR_SIDES).is_file():
        sides = json.loads((private / PAIR_SIDES).read_text())
        return fit_pair_tfidf_teacher([tuple(s) for s in sides["weak_train"]], gold,
                                      {name: [tuple(s) for s in sides[name]] for name in ("unlabeled", "test")}, seed)
    if cache.spec.weak_model == "tfidf" or ft_cache.weak_is_lm(cache.spec):
        texts = json.loads((public / "texts.json").read_text())
        train_texts = json.loads((private / "weak_train_texts.json").read_text())
        if cache.spec.weak_model != "tfidf":
            return ft_cache.weak_lm_probs(cache.spec, cache.card().classes, train_texts, gold, texts,
                                          seed, device)
        return fit_tfidf_teacher(train_texts, gold, n_classes, texts, seed)
    feats = np.load(private / "weak_features.npy")
    n_wt, n_unl = len(gold), cache.card().n_unlabeled
    predict = {"unlabeled": feats[n_wt : n_wt + n_unl], "test": feats[n_wt + n_unl :]}
    if (private / PAIR_SIDES).is_file():  # pair features: trained on each pair both ways round
        from sandbox.runtime.pairs import swap_sides

        x, y = feats[:n_wt], np.asarray(gold)
        return fit_feature_teacher(np.concatenate([x, swap_sides(x)]), np.concatenate([y, 1 - y]), n_classes,
                                   predict, seed)
    return fit_feature_teacher(feats[:n_wt], gold, n_classes, predict, seed)


def _ceiling(cache: TaskCache, seed: int, gold_unl: np.ndarray, device: str) -> np.ndarray:
    """Test probabilities of the strong model trained on gold labels (the task kind's recipe)."""
    card = cache.card()
    if card.kind == "finetune" and card.student is not None:
        texts = ft_cache.public_texts(cache.public_dir)
        return ft_cache.ceiling_probs(card.student, len(card.classes), texts["unlabeled"], gold_unl,
                                      texts["test"], seed, device)
    x_test = np.load(cache.public_dir / "features" / "test__final.npy")
    return features_ceiling(cache, seed, gold_unl).predict_proba(x_test)


def features_ceiling(cache: TaskCache, seed: int, gold_unl: np.ndarray, epochs: int = CEILING_EPOCHS) -> Any:
    """The features ceiling recipe's head (``epochs`` other than the recipe's: the ceiling check)."""
    from sandbox.runtime.train import train_head

    card = cache.card()
    x_unl = np.load(cache.public_dir / "features" / "unlabeled__final.npy")
    onehot = np.eye(len(card.classes), dtype=np.float32)[gold_unl]
    if card.pair_features:  # label symmetrisation: every gold pair both ways round
        from sandbox.runtime.pairs import symmetrised

        x_unl, onehot = symmetrised(x_unl, onehot)
    return train_head(x_unl, onehot, seed=seed, epochs=epochs)


def _add_weak_seeds(cache: TaskCache, data: LabeledData, n_seeds: int, device: str = "auto",
                    show_progress: bool = False) -> None:
    card = cache.card()
    gold_test, roles = cache.gold_test(), cache.test_roles()
    gold_unl = np.load(cache.private_dir / "gold_unlabeled.npy")
    per_seed = _load_per_seed(cache)
    todo = [seed for seed in range(n_seeds) if seed not in card.weak_seeds]
    with progress_bar(f"{cache.spec.name}: weak teachers and ceilings", len(todo), show_progress) as advance:
        for seed in todo:
            _add_weak_seed(cache, seed, per_seed, gold_test, roles, gold_unl, device)
            card.weak_seeds = sorted({*card.weak_seeds, seed})
            # saved per seed: a build killed later keeps the seeds it finished
            atomic_write(cache.private_dir / "per_seed_baselines.json", json.dumps(per_seed, indent=1))
            _write_summary(cache, per_seed)
            atomic_write(cache.public_dir / "card.json", card.model_dump_json(indent=2))
            advance(1)


def _add_weak_seed(cache: TaskCache, seed: int, per_seed: dict, gold_test: np.ndarray, roles: np.ndarray,
                   gold_unl: np.ndarray, device: str) -> None:
    """One seed's weak teacher (public) and its fixed baselines (private)."""
    # Logistic regressions and linear heads are small: one thread each (sandbox/cache/threads.py);
    # a language-model teacher or a fine-tune ceiling is real training and keeps every thread.
    given = (cache.private_dir / "given_soft_test.npy").is_file()
    with nullcontext() if not given and ft_cache.weak_is_lm(cache.spec) else single_threaded():
        probs = _teacher_probs(cache, seed, device)
    seed_dir = _fresh_tmp(weak_teacher_dir(cache.public_dir, seed))
    np.save(seed_dir / "unlabeled_soft.npy", probs["unlabeled"])
    np.save(seed_dir / "test_probs.npy", probs["test"])
    final = weak_teacher_dir(cache.public_dir, seed)
    if final.exists():  # left by a build killed before this seed was on the card: nothing reads it
        shutil.rmtree(final)
    seed_dir.rename(final)
    with single_threaded() if cache.card().kind == "features" else nullcontext():
        ceiling = _ceiling(cache, seed, gold_unl, device)
    per_seed[str(seed)] = {
        part: {
            "weak": float((probs["test"].argmax(1) == gold_test)[roles == r].mean()),
            "ceiling": float((ceiling.argmax(1) == gold_test)[roles == r].mean()),
        }
        for part, r in (("dev", SELECTION), ("heldout", HELDOUT), ("confirm", CONFIRMATION))
        if (roles == r).any()
    }


def _load_per_seed(cache: TaskCache) -> dict:
    path = cache.private_dir / "per_seed_baselines.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _write_summary(cache: TaskCache, per_seed: dict) -> None:
    recipe = ft_cache.CEILING_RECIPE_FT if cache.spec.kind == "finetune" else CEILING_RECIPE
    summary = summarise(per_seed, reference_seeds(cache.spec), recipe)
    atomic_write(cache.private_dir / "baselines.json", summary.model_dump_json(indent=2))


def summarise(per_seed: dict, references: list[int], recipe: str = CEILING_RECIPE) -> FixedBaselines:
    """The fixed references: the mean over the ``references`` seeds only (other seeds' teachers
    serve ideas, never the references). While a build has not reached every reference seed yet,
    the ones it has (its summary is marked incomplete by ``reference_seeds``)."""
    seeds = [str(s) for s in references if str(s) in per_seed]
    pick = lambda part, who: stat([per_seed[s][part][who] for s in seeds])  # noqa: E731
    confirm = all("confirm" in per_seed[s] for s in seeds)
    return FixedBaselines(
        weak_dev=pick("dev", "weak"), weak_heldout=pick("heldout", "weak"),
        ceiling_dev=pick("dev", "ceiling"), ceiling_heldout=pick("heldout", "ceiling"),
        weak_confirm=pick("confirm", "weak") if confirm else None,
        ceiling_confirm=pick("confirm", "ceiling") if confirm else None,
        ceiling_recipe=recipe, reference_seeds=[int(s) for s in seeds],
    )


@dataclass
class CachedTask:
    """One built task cache found on disk (what `aar tasks` lists for directory tasks)."""

    name: str
    key: str
    source: str
    sizes: str
    baselines: FixedBaselines | None


def cached_tasks(root: Path | None = None) -> list[CachedTask]:
    """Every built cache under ``root``, newest card first."""
    root = root or cache_root()
    out = []
    cards = sorted((root / "public").glob("*/card.json"), key=lambda p: -p.stat().st_mtime)
    for card_path in cards:
        try:
            card = TaskCard.model_validate_json(card_path.read_text())
        except (OSError, ValueError):
            continue  # a half-written or foreign folder is not a task cache
        private = root / "private" / card_path.parent.name
        build = json.loads((private / "build.json").read_text()) if (private / "build.json").is_file() else {}
        base = private / "baselines.json"
        baselines = FixedBaselines.model_validate_json(base.read_text()) if base.is_file() else None
        sizes = build.get("sizes") or f"?,{card.n_unlabeled},?,? (test {card.n_test})"
        out.append(CachedTask(name=card.name, key=card.cache_key, source=build.get("source", ""),
                              sizes=sizes, baselines=baselines))
    return out

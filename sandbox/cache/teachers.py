"""Weak teachers: trained on (a seeded subsample of) the gold weak-train split only."""

from __future__ import annotations

from typing import Any

import numpy as np

WEAK_SUBSAMPLE = 0.8  # each weak seed sees a different 80% of weak-train: distinct teachers
WEAK_CONFIG = "logreg(C=30 tfidf, C=1 features)+subsample0.8+tfidf(1-2gram,sublinear)"
# TF-IDF teachers at C=1 are badly under-confident (median top probability 0.17 on 10
# classes); C=30 is both more accurate and better calibrated on wordnet-10.
TFIDF_C = 30.0


def subsample(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(10_000 + seed)
    return np.sort(rng.permutation(n)[: max(2, int(n * WEAK_SUBSAMPLE))])


def fit_tfidf_teacher(train_texts: list[str], train_labels: np.ndarray, n_classes: int,
                      predict: dict[str, list[str]], seed: int) -> dict[str, np.ndarray]:
    from sklearn.feature_extraction.text import TfidfVectorizer

    keep = subsample(len(train_texts), seed)
    vec = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=1)
    x_train = vec.fit_transform([train_texts[i] for i in keep])
    feats = {name: vec.transform(texts) for name, texts in predict.items()}
    return _fit_logreg(x_train, np.asarray(train_labels)[keep], n_classes, feats, seed, TFIDF_C)


def fit_pair_tfidf_teacher(train_sides: list[tuple[str, str]], train_labels: np.ndarray,
                           predict: dict[str, list[tuple[str, str]]], seed: int) -> dict[str, np.ndarray]:
    """A TF-IDF teacher that sees the pair: features [A, B, A - B] of the two sides (each prompt +
    answer), trained on every weak-train pair as given and with its sides swapped (label flipped),
    so it cannot prefer a position and tells which side carries the words it learned."""
    from scipy import sparse
    from sklearn.feature_extraction.text import TfidfVectorizer

    from sandbox.runtime.pairs import pair_rows

    keep = subsample(len(train_sides), seed)
    vec = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=1)
    vec.fit([side for i in keep for side in train_sides[i]])
    encode = lambda sides, swap=False: pair_rows(  # noqa: E731
        *(vec.transform([s[j] for s in sides]) for j in ((1, 0) if swap else (0, 1))))
    kept = [train_sides[i] for i in keep]
    x_train = sparse.vstack([encode(kept), encode(kept, swap=True)], format="csr")
    y = np.asarray(train_labels)[keep]
    feats = {name: encode(sides) for name, sides in predict.items()}
    return _fit_logreg(x_train, np.concatenate([y, 1 - y]), 2, feats, seed, TFIDF_C)


def fit_feature_teacher(train_x: np.ndarray, train_labels: np.ndarray, n_classes: int,
                        predict: dict[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
    keep = subsample(len(train_x), seed)
    return _fit_logreg(train_x[keep], np.asarray(train_labels)[keep], n_classes, predict, seed, 1.0)


def _fit_logreg(x_train: Any, y_train: np.ndarray, n_classes: int,
                predict: dict[str, Any], seed: int, c: float) -> dict[str, np.ndarray]:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=c, max_iter=2000, random_state=seed)
    model.fit(x_train, y_train)
    out = {}
    for name, x in predict.items():
        probs = np.zeros((x.shape[0], n_classes), np.float32)
        probs[:, model.classes_] = model.predict_proba(x)
        out[name] = probs
    return out

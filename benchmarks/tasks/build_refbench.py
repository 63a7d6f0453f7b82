"""Build the CPU-sized stand-ins of the reference benchmark's task directories, in exactly its
layout (``train_label.jsonl`` gold for the weak teacher, ``train_unlabel.jsonl`` the student's
inputs, ``test.jsonl`` scored), from offline WordNet 3.0 nouns (Debian's wordnet-base):

- ``refbench-pref``: preference rows ``{prompt, first, second, label: "A"|"B"}``: is the noun
  synset in the prompt a person (A) or an artifact (B); the answer pair is fixed, so a frozen
  encoder's joint embedding can separate the classes (the stand-in checks the layout and the
  protocol, not preference modelling). No soft labels: aar trains the weak teachers.
- ``refbench-binary``: binary rows ``{question, choice, label: bool}``: is the noun an animal
  (true) or a plant (false). A synset with several lemmas gives one row per lemma (at most
  two) sharing a ``consistency_id``; ``train_unlabel`` and ``test`` rows carry the weak teacher's
  ``soft_label`` [P(false), P(true)] (TF-IDF logistic regression fit on ``train_label``), as the
  reference caches them.

Both carry ``subset`` and ``difficulty`` keys, as the reference rows do. Usage:
``python benchmarks/tasks/build_refbench.py [--out benchmarks/tasks]``; the jsonl is committed.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np

from sandbox.cache.teachers import fit_tfidf_teacher
from sandbox.tasks.wordnet import NOUN_LEXNAMES, wordnet_dir

SIZES = {"train_label": 100, "train_unlabel": 400, "test": 300}  # synsets per file
LEX = {name: num for num, name in NOUN_LEXNAMES.items()}


def noun_synsets() -> dict[str, list[tuple[str, list[str], str]]]:
    """(offset, lemmas, definition) of every noun synset, by supersense name."""
    out: dict[str, list[tuple[str, list[str], str]]] = {}
    for line in (wordnet_dir() / "data.noun").read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("  ") or " | " not in line:
            continue
        head, gloss = line.split(" | ", 1)
        fields = head.split()
        lemmas = [fields[4 + 2 * i].replace("_", " ") for i in range(int(fields[3], 16))]
        definition = gloss.split('; "', 1)[0].strip().rstrip(";").strip()
        out.setdefault(NOUN_LEXNAMES[int(fields[1])], []).append((fields[0], lemmas, definition))
    return out


def _files(pairs: list[tuple[tuple[str, list[str], str], bool]], rng: random.Random) -> dict[str, list]:
    """Labelled synsets shuffled and cut into the three files' shares."""
    rng.shuffle(pairs)
    out, start = {}, 0
    for name, n in SIZES.items():
        out[name] = pairs[start:start + n]
        start += n
    return out


def _difficulty(definition: str) -> str:
    return "short" if len(definition.split()) <= 8 else "long"


def preference_rows(synsets: dict, rng: random.Random) -> dict[str, list[dict]]:
    pairs = [(s, True) for s in synsets["person"]] + [(s, False) for s in synsets["artifact"]]
    rows = {}
    for name, part in _files(pairs, rng).items():
        rows[name] = [{"prompt": f"Is this a person or an artifact? {lemmas[0]}: {definition}",
                       "first": "a person", "second": "an artifact", "label": "A" if person else "B",
                       "subset": "person-artifact", "difficulty": _difficulty(definition)}
                      for (_, lemmas, definition), person in part]
    return rows


def binary_rows(synsets: dict, rng: random.Random) -> dict[str, list[dict]]:
    pairs = [(s, True) for s in synsets["animal"]] + [(s, False) for s in synsets["plant"]]
    rows = {}
    for name, part in _files(pairs, rng).items():
        rows[name] = [{"question": f"Is this an animal? {lemma}: {definition}", "choice": "yes, an animal",
                       "label": animal, "consistency_id": f"noun-{offset}",
                       "subset": "animal-plant", "difficulty": _difficulty(definition)}
                      for (offset, lemmas, definition), animal in part for lemma in lemmas[:2]]
    _add_soft_labels(rows)
    return rows


def _add_soft_labels(rows: dict[str, list[dict]]) -> None:
    """The weak teacher's soft labels on train_unlabel and test, fit on train_label gold only."""
    text = lambda r: f"Question: {r['question']}\nAnswer: {r['choice']}"  # noqa: E731 - the reference prompt
    gold = np.asarray([int(r["label"]) for r in rows["train_label"]])
    probs = fit_tfidf_teacher([text(r) for r in rows["train_label"]], gold, 2,
                              {name: [text(r) for r in rows[name]] for name in ("train_unlabel", "test")}, seed=0)
    for name, p in probs.items():
        for row, soft in zip(rows[name], p.tolist(), strict=True):
            row["soft_label"] = [round(v, 4) for v in soft]


def write(folder: Path, rows: dict[str, list[dict]], task: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, part in rows.items():
        with open(folder / f"{name}.jsonl", "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in part)
    (folder / "task.json").write_text(json.dumps(task, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    args = parser.parse_args()
    synsets = noun_synsets()
    models = {"weak_model": "tfidf", "strong_model": "minilm-l6"}
    write(args.out / "refbench-pref", preference_rows(synsets, random.Random(0)), {
        "name": "refbench-pref", **models,
        "description": "reference-layout stand-in (preference rows): a WordNet noun, person (A) or artifact (B)"})
    write(args.out / "refbench-binary", binary_rows(synsets, random.Random(1)), {
        "name": "refbench-binary", **models,
        "description": "reference-layout stand-in (binary rows, cached soft labels): a WordNet noun, animal or not"})


if __name__ == "__main__":
    main()

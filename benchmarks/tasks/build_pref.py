"""Build ``wordnet-pref``, a preference task directory whose label depends on which side is which,
from offline WordNet 3.0 nouns (Debian's wordnet-base):

rows ``{prompt, first, second, label: "A"|"B"}``: the prompt asks which of two nouns
("lemmas: definition") is a kind of idea or knowledge (WordNet's noun.cognition); one answer is,
the other comes from a neighbouring abstract supersense (communication, attribute, state, act),
at a random position. Joined into one text, a bag of words or a mean-pooled encoder cannot tell
which side the cognition noun is on (that was the schema's failure on feature tasks); the
pair-aware encoding can. Each cognition synset appears in two pairs with different distractors.

Usage: ``python benchmarks/tasks/build_pref.py [--out benchmarks/tasks]``; the jsonl is committed.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_refbench import noun_synsets  # noqa: E402 - a sibling script, not a package
from build_tasks import write  # noqa: E402

POSITIVE = "cognition"
DISTRACTORS = ("communication", "attribute", "state", "act")
PAIRS_PER_POSITIVE = 2
PROMPT = "Which of these is a kind of idea, belief or knowledge (a cognition)?"


def _answer(synset: tuple[str, list[str], str]) -> str:
    _, lemmas, definition = synset
    return f"{', '.join(lemmas[:3])}: {definition}"


def wordnet_pref(seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    nouns = noun_synsets()
    negatives = [s for name in DISTRACTORS for s in nouns[name]]
    rng.shuffle(negatives)
    rows, n = [], 0
    for positive in nouns[POSITIVE]:
        for _ in range(PAIRS_PER_POSITIVE):
            negative = negatives[n % len(negatives)]
            n += 1
            a_first = rng.random() < 0.5
            first, second = (positive, negative) if a_first else (negative, positive)
            rows.append({"prompt": PROMPT, "first": _answer(first), "second": _answer(second),
                         "label": "A" if a_first else "B"})
    rng.shuffle(rows)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    args = parser.parse_args()
    write(args.out / "wordnet-pref", wordnet_pref(), {
        "name": "wordnet-pref", "weak_model": "tfidf", "strong_model": "minilm-l6",
        "description": "preference pairs of WordNet nouns: which side is a cognition noun (A or B)"})


if __name__ == "__main__":
    main()

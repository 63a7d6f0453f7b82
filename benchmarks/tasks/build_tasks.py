"""Build the benchmark's own task directories from offline data no built-in task uses.

- ``wordnet-verbs``: WordNet 3.0 *verb* synsets ("lemmas: definition") labelled by their 8
  largest supersenses (lexicographer files), from Debian's wordnet-base (/usr/share/wordnet).
- ``debian-sections``: Debian package short descriptions labelled by archive section (8 topical
  sections, at most 1,200 descriptions each; a description listed under two sections is dropped),
  from the apt lists of a Debian bookworm machine (``apt-get update`` once).

Usage: ``python benchmarks/tasks/build_tasks.py [--out benchmarks/tasks]``. The generated jsonl
is committed next to this script, so the benchmark does not depend on the apt lists of the day.
"""

from __future__ import annotations

import argparse
import glob
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


if __name__ == "__main__":
    main()

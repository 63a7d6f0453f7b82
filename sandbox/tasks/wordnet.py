"""WordNet 3.0 noun supersenses, read from Debian's ``wordnet-base`` files."""

from __future__ import annotations

import functools
import os
from collections import Counter
from pathlib import Path

from sandbox.errors import AssetMissingError
from sandbox.tasks.spec import LabeledData

# The standard WordNet 3.0 lexicographer file names for nouns (lex_filenum 3..28).
NOUN_LEXNAMES = {
    3: "Tops", 4: "act", 5: "animal", 6: "artifact", 7: "attribute", 8: "body",
    9: "cognition", 10: "communication", 11: "event", 12: "feeling", 13: "food",
    14: "group", 15: "location", 16: "motive", 17: "object", 18: "person",
    19: "phenomenon", 20: "plant", 21: "possession", 22: "process", 23: "quantity",
    24: "relation", 25: "shape", 26: "state", 27: "substance", 28: "time",
}


def wordnet_dir() -> Path:
    return Path(os.environ.get("AAR_WORDNET_DIR", "/usr/share/wordnet"))


def parse_noun_line(line: str) -> tuple[int, str] | None:
    """(supersense id, "lemmas: definition") for one ``data.noun`` line, or None for headers."""
    if line.startswith("  ") or "|" not in line:
        return None
    head, gloss = line.split(" | ", 1)
    fields = head.split()
    lex_filenum = int(fields[1])
    word_count = int(fields[3], 16)
    lemmas = [fields[4 + 2 * i].replace("_", " ") for i in range(word_count)]
    definition = gloss.split('; "', 1)[0].strip().rstrip(";").strip()
    return lex_filenum, f"{', '.join(lemmas)}: {definition}"


@functools.lru_cache(maxsize=2)
def _noun_rows(path: Path, size: int, mtime_ns: int) -> tuple[tuple[int, str], ...]:
    """The parsed noun file, once per process and file version (the size and mtime are part of
    the key): ``aar tasks`` keys both WordNet tasks from it, and parsing takes about 2 s."""
    rows = []
    with path.open(encoding="utf-8", errors="replace") as fh:
        for line in fh:
            parsed = parse_noun_line(line)
            if parsed is not None:
                rows.append(parsed)
    return tuple(rows)


def load_wordnet_supersenses(n_classes: int = 10) -> LabeledData:
    path = wordnet_dir() / "data.noun"
    if not path.exists():
        raise AssetMissingError(
            f"{path} not found: install WordNet with `apt-get install wordnet-base` "
            "(or set AAR_WORDNET_DIR)"
        )
    stat = path.stat()
    rows = _noun_rows(path, stat.st_size, stat.st_mtime_ns)
    counts = Counter(lex for lex, _ in rows)
    # Largest classes first; ties broken by id so the class list is stable.
    top = sorted(counts, key=lambda lex: (-counts[lex], lex))[:n_classes]
    top.sort()
    index = {lex: i for i, lex in enumerate(top)}
    texts = [text for lex, text in rows if lex in index]
    labels = [index[lex] for lex, _ in rows if lex in index]
    return LabeledData(texts=texts, labels=labels, classes=[f"noun.{NOUN_LEXNAMES[x]}" for x in top])

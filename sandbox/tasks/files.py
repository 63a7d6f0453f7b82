"""Custom tasks from a directory of jsonl files.

Three row schemas are understood (one per file):
- plain ``{"text": ..., "label": ...}``
- preference ``{"prompt", "first", "second", "label": "A" | "B"}`` (the reference system's)
- binary ``{"question", "choice", "label": bool}`` (the reference system's)

An optional ``task.json`` names the models and the kind: ``{"name", "kind", "weak_model",
"strong_model", "description"}``; ``kind`` is ``features`` (default: heads on cached features) or
``finetune`` (the strong model is trained; a causal LM is scored on label tokens, optionally
``"label_words"``, ``"cue"``, ``"max_len"``, ``"lora"`` for the vanilla recipe's adapter;
``"preset": "qwen-reference"`` fills in the reference benchmark's models). Models are registered
names, ``tfidf`` (weak only), a local model directory, or ``hf:<id>`` (downloaded beforehand).
All rows are pooled and split anew, unless the directory holds the reference benchmark's split
files (``train_label.jsonl``, ``train_unlabel.jsonl``, ``test.jsonl``): then each file keeps its
role, ``soft_label`` rows (or a ``<file>.weak_labels.jsonl`` beside a file, one line per row) are
the weak teacher's output, and other keys (``consistency_id``, ``subset``, ...) are kept for ideas.
``"template"`` picks how causal-LM students read rows (``"cue"``: text + cue; ``"reference"``: the
reference benchmark's prompts, the default for split files); ``"fixed_seeds"`` how many weak teachers
and ceilings the fixed baselines average (16 for split files, as the reference).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

from sandbox.errors import HarnessError
from sandbox.tasks.hf_data import checked_lines, directory_rows, file_rows, hub_rows
from sandbox.tasks.models import apply_preset
from sandbox.tasks.spec import TASK_KEY_SEPARATOR, TASK_KINDS, LabeledData, SplitSizes, TaskSpec

# The reference benchmark's split files and the role each keeps.
SPLIT_FILES = {"train_label.jsonl": "weak_train", "train_unlabel.jsonl": "unlabeled", "test.jsonl": "test"}
SCHEMA_KEYS = {"text": ("text",), "preference": ("prompt", "first", "second"), "binary": ("question", "choice")}
TEMPLATES = ("cue", "reference")
REFERENCE_CUE = "\nLabel:"  # the reference prompts end so; the label word is the next token
REFERENCE_SEEDS = 16  # weak teachers and ceilings the reference averages its fixed baselines over


def _schema(row: dict, where: str) -> str:
    """Which of the three row schemas ``row`` is (preference and binary before plain text)."""
    for name in ("preference", "binary", "text"):
        if set(SCHEMA_KEYS[name]) <= row.keys():
            if "label" not in row:
                raise HarnessError(f"{where}: {name} row without a label; every row needs one (train_unlabel "
                                   "and test rows too: the gold scores the student and trains the ceiling)")
            return name
    raise HarnessError(
        f"{where}: row has keys {sorted(row)}; expected text/label, "
        "prompt/first/second/label or question/choice/label"
    )


def _render(row: dict, schema: str, template: str) -> str:
    """The input text of a row. ``reference``: the reference benchmark's prompt up to (not
    including) its ``\nLabel:`` cue; ``cue``: aar's own joined form."""
    if schema == "text":
        return str(row["text"])
    if template == "reference":
        if schema == "preference":
            return f"Question: {row['prompt']}\nAnswer A: {row['first']}\nAnswer B: {row['second']}"
        return f"Question: {row['question']}\nAnswer: {row['choice']}"
    if schema == "preference":
        return f"{row['prompt']}\n[A] {row['first']}\n[B] {row['second']}"
    return f"{row['question']}\n{row['choice']}"


def _label_kind(value: object) -> tuple[str, str]:
    """(type, canonical name) of a plain-text label: ``1``, ``"1"`` and ``1.0`` are the number
    ``1``; ``true`` and ``"True"`` the boolean ``true``; anything else a string of its own."""
    if isinstance(value, bool):
        return "boolean", "true" if value else "false"
    if isinstance(value, int | float):
        return "number", str(int(value)) if float(value).is_integer() else repr(float(value))
    if isinstance(value, str):
        text = value.strip()
        try:
            return _label_kind(float(text)) if text.lower() not in ("nan", "inf", "-inf", "infinity") else \
                ("string", text)
        except ValueError:
            pass
        if text.lower() in ("true", "false"):
            return "boolean", text.lower()
        return "string", text
    return type(value).__name__, ""


def _label(row: dict, schema: str, where: str) -> tuple[str, str]:
    """(label type, class name) of a row, refused with a one-line error when its schema forbids it."""
    value = row["label"]
    if schema == "preference":
        if value not in ("A", "B"):
            raise HarnessError(f"{where}: preference label must be 'A' or 'B', got {value!r}")
        return "A/B", value
    kind, name = _label_kind(value)
    if schema == "binary":
        if kind != "boolean":
            raise HarnessError(f"{where}: binary label must be true or false, got {value!r}")
        return kind, name
    if kind not in ("number", "string", "boolean"):
        raise HarnessError(f"{where}: label must be a string, number or boolean, got {value!r}")
    return kind, name


def _soft_label(row: dict, n_classes: int, where: str) -> list[float]:
    """A row's given weak soft label as class probabilities (a bare number is P(class 1))."""
    value = row["soft_label"]
    probs = [1.0 - float(value), float(value)] if isinstance(value, int | float) and n_classes == 2 else value
    if (not isinstance(probs, list) or len(probs) != n_classes
            or not all(isinstance(p, int | float) and 0 <= p <= 1 for p in probs)):
        raise HarnessError(f"{where}: soft_label must be {n_classes} probabilities (one per class, in the order "
                           f"of the sorted class names), got {value!r}")
    total = sum(probs)
    if total <= 0:
        raise HarnessError(f"{where}: soft_label {value!r} sums to 0; give the teacher's class probabilities")
    return [float(p) / total for p in probs]


class _Rows:
    """Rows read one by one and checked against each other: one schema and one label type per
    task, each refused with the file and line where the other one was first seen."""

    def __init__(self, what: str, template: str) -> None:
        self.what, self.template = what, template
        self.texts: list[str] = []
        self.names: list[str] = []
        self.rows: list[dict] = []
        self.wheres: list[str] = []
        self.first_schema: tuple[str, str] | None = None  # (schema, where)
        self.label_types: dict[str, tuple[str, object]] = {}  # type -> (where, value) first seen

    def add(self, where: str, row: dict) -> None:
        schema = _schema(row, where)
        if self.first_schema is None:
            self.first_schema = (schema, where)
        elif schema != self.first_schema[0]:
            raise HarnessError(f"{where}: a {schema} row, but {self.first_schema[1]} is a {self.first_schema[0]} "
                               "row; one schema per task: move the rows of each schema to a task of their own")
        kind, name = _label(row, schema, where)
        self.label_types.setdefault(kind, (where, row["label"]))
        if len(self.label_types) > 1:
            found = "; ".join(f"{k} (e.g. {v!r} at {w})" for k, (w, v) in self.label_types.items())
            raise HarnessError(f"{self.what}: labels of more than one type: {found}; use one label type per "
                               "task (e.g. all strings, or all numbers)")
        self.texts.append(_render(row, schema, self.template))
        self.names.append(name)
        self.rows.append(row)
        self.wheres.append(where)

    def pairs(self) -> list[tuple[str, str, str]] | None:
        """Preference rows: (prompt, first, second) each, so the cache can encode the sides apart."""
        if self.first_schema is None or self.first_schema[0] != "preference":
            return None
        return [(str(r["prompt"]), str(r["first"]), str(r["second"])) for r in self.rows]

    def classes(self) -> list[str]:
        classes = sorted(set(self.names))
        if len(classes) < 2:
            raise HarnessError(f"{self.what}: found a single label {classes}; a task needs two or more")
        return classes


def labeled_rows(rows: Iterable[tuple[str, dict]], what: str, template: str = "cue") -> LabeledData:
    """Rows of any of the three schemas as a task's labeled data (classes sorted by name)."""
    seen = _Rows(what, template)
    for where, row in rows:
        seen.add(where, row)
    classes = seen.classes()
    index = {c: i for i, c in enumerate(classes)}
    return LabeledData(texts=seen.texts, labels=[index[c] for c in seen.names], classes=classes,
                       pairs=seen.pairs())


def is_split_directory(directory: Path) -> bool:
    """Whether a task directory holds the reference benchmark's three split files."""
    return all((directory / name).is_file() for name in SPLIT_FILES)


def split_file_rows(directory: Path, template: str = "reference") -> LabeledData:
    """The three split files as one task's data: each row keeps its file's role, its
    ``consistency_id`` group, its given ``soft_label`` and its other keys (for ideas)."""
    seen = _Rows(str(directory), template)
    roles: list[str] = []
    for name, role in SPLIT_FILES.items():
        rows = list(file_rows(directory / name))
        for (where, row), soft in zip(rows, _weak_labels_file(directory / name, len(rows)), strict=True):
            if soft is not None:
                if "soft_label" in row:
                    beside = weak_labels_path(directory / name).name
                    raise HarnessError(f"{where}: a soft_label in the row and in {beside}; "
                                       "give each row's weak label in one place")
                row["soft_label"] = soft
            seen.add(where, row)
            roles.append(role)
    classes = seen.classes()
    index = {c: i for i, c in enumerate(classes)}
    schema = seen.first_schema[0] if seen.first_schema else "text"
    hidden = {*SCHEMA_KEYS[schema], "label", "soft_label"}
    return LabeledData(
        texts=seen.texts, labels=[index[c] for c in seen.names], classes=classes, roles=roles,
        groups=[str(row.get("consistency_id", "")) for row in seen.rows],
        soft=_given_soft_labels(seen, roles, len(classes)),
        extras=[{k: v for k, v in row.items() if k not in hidden} for row in seen.rows],
        pairs=seen.pairs(),
    )


def weak_labels_path(rows_file: Path) -> Path:
    """The weak-labels file beside a split file: ``test.jsonl`` -> ``test.weak_labels.jsonl``."""
    return rows_file.with_name(f"{rows_file.stem}.weak_labels.jsonl")


def _weak_labels_file(rows_file: Path, n_rows: int) -> list[object]:
    """The teacher's soft labels of a split file's rows from the weak-labels file beside it, one
    line per row in the same order (``{"soft_label": [...]}`` or a bare list), or Nones."""
    path = weak_labels_path(rows_file)
    if not path.is_file():
        return [None] * n_rows
    lines = checked_lines(path, objects_only=False)
    if len(lines) != n_rows:
        raise HarnessError(f"{path.name}: {len(lines)} weak labels for the {n_rows} rows of {rows_file.name}; "
                           "give one line per row, in the same order")
    return [row.get("soft_label") if isinstance(row, dict) else row for _, row in lines]


def _given_soft_labels(seen: _Rows, roles: list[str], n_classes: int) -> list[list[float] | None] | None:
    """Each row's given soft label, or None when no row has one. The teacher's output is used as
    is, so it must cover every train_unlabel and test row (the weak accuracy is scored from it)."""
    has = [("soft_label" in row) for row in seen.rows]
    if not any(has):
        return None
    for role in ("unlabeled", "test"):
        missing = [w for w, r, h in zip(seen.wheres, roles, has, strict=True) if r == role and not h]
        if missing:
            raise HarnessError(f"{missing[0]}: no soft_label, but other rows carry one; give every train_unlabel "
                               f"and test row the teacher's soft_label ({len(missing)} {role} rows lack it), or none")
    return [_soft_label(row, n_classes, w) if h and r != "weak_train" else None
            for row, w, r, h in zip(seen.rows, seen.wheres, roles, has, strict=True)]


def load_jsonl_directory(directory: Path, template: str = "cue") -> LabeledData:
    """A task directory's rows: the split files with their roles, or every jsonl file pooled."""
    if is_split_directory(directory):
        return split_file_rows(directory, template)
    return labeled_rows(directory_rows(directory), str(directory), template)


def task_from_hub_dataset(ref: str) -> TaskSpec:
    """``hf:<dataset>``: a hub dataset (from the local cache) with the default models."""
    dataset_id = ref[3:]
    return TaskSpec(
        name=dataset_id.replace("/", "-").replace(TASK_KEY_SEPARATOR, "-"),
        description=f"Hugging Face dataset {dataset_id}",
        load=lambda: labeled_rows(hub_rows(dataset_id), ref),
        weak_model="tfidf", strong_model="minilm-l6", source=ref,
    )


def directory_key(directory: Path) -> str:
    """A content key of a task directory: its jsonl files and task.json, not where it lives,
    so two folders with the same name but other rows are two tasks, and a moved copy is one."""
    h = hashlib.sha256()
    for path in sorted(directory.glob("*.jsonl")) + [directory / "task.json"]:
        if path.is_file():
            h.update(path.name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()[:8]


def _task_config(directory: Path) -> dict:
    path = directory / "task.json"
    if not path.exists():
        return {}
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise HarnessError(f"{path}: not valid JSON ({exc.msg}); fix it or remove it") from exc
    if not isinstance(config, dict):
        raise HarnessError(f"{path}: must be a JSON object like {{\"name\": ..., \"kind\": \"features\"}}")
    config = apply_preset(config, str(path))
    kind = config.get("kind", "features")
    if kind not in TASK_KINDS:
        raise HarnessError(f"{path}: unknown kind {kind!r}; use one of {', '.join(TASK_KINDS)}")
    if config.get("template", "cue") not in TEMPLATES:
        raise HarnessError(f"{path}: unknown template {config['template']!r}; use one of {', '.join(TEMPLATES)}")
    if "split_sizes" in config:  # parsed once, here: the task reads the SplitSizes
        try:
            config["split_sizes"] = SplitSizes.parse(str(config["split_sizes"]))
        except ValueError as exc:
            raise HarnessError(f"{path}: {exc}") from exc
    if "kind" not in config and _names_causal_lm(config.get("strong_model", "")):
        raise HarnessError(f"{path}: missing kind; a causal LM student needs \"kind\": \"finetune\" "
                           f"(allowed: {', '.join(TASK_KINDS)})")
    return config


def _names_causal_lm(ref: str) -> bool:
    if ref == "smollm2-135m":
        return True
    path = Path(ref).expanduser()
    config = path / "config.json"
    return (path.is_dir() and any(path.glob("*.gguf"))) or (
        config.is_file() and "ForCausalLM" in config.read_text())


def task_from_directory(directory: Path) -> TaskSpec:
    """A task from a directory; its name is the readable name joined to the content key
    (``name@key``), the one identity sessions, results, caches and leaderboards use."""
    config = _task_config(directory)
    directory = directory.resolve()
    readable = str(config.get("name", directory.name)).replace(TASK_KEY_SEPARATOR, "-")
    words = config.get("label_words")
    split_files = is_split_directory(directory)
    template = config.get("template", "reference" if split_files else "cue")
    return TaskSpec(
        name=f"{readable}{TASK_KEY_SEPARATOR}{directory_key(directory)}",
        description=config.get("description", f"custom task from {directory}"),
        load=lambda: load_jsonl_directory(directory, template),
        weak_model=config.get("weak_model", "tfidf"),
        strong_model=config.get("strong_model", "minilm-l6"),
        source=str(directory),
        kind=config.get("kind", "features"),
        label_words=tuple(words) if words else None,
        cue=config.get("cue", REFERENCE_CUE if template == "reference" else "\nAnswer:"),
        max_len=int(config.get("max_len", 128)),
        lora=config.get("lora"),
        template=template,
        chat_template=config.get("chat_template"),
        fixed_seeds=int(config["fixed_seeds"]) if "fixed_seeds" in config else
        (REFERENCE_SEEDS if split_files else None),
        # the task's own sizes count as given (refused when they do not fit); --split-sizes replaces them
        sizes=config.get("split_sizes") or SplitSizes(),
        sizes_given="split_sizes" in config,
    )

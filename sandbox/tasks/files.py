"""Custom tasks from a directory of jsonl files.

Three row schemas are understood (one per file):
- plain ``{"text": ..., "label": ...}``
- preference ``{"prompt", "first", "second", "label": "A" | "B"}`` (the reference system's)
- binary ``{"question", "choice", "label": bool}`` (the reference system's)

An optional ``task.json`` names the models and the kind: ``{"name", "kind", "weak_model",
"strong_model", "description"}``; ``kind`` is ``features`` (default: heads on cached features) or
``finetune`` (the strong model is trained; a causal LM is scored on label tokens, optionally
``"label_words"``, ``"cue"``, ``"max_len"``, ``"lora"`` for the vanilla recipe's adapter;
``"preset": "qwen-reference"`` fills in the reference benchmark's models). Models are registered names, ``tfidf`` (weak only),
a local model directory, or ``hf:<id>`` (downloaded beforehand). All rows are pooled and split anew.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

from sandbox.errors import HarnessError
from sandbox.tasks.hf_data import directory_rows, hub_rows
from sandbox.tasks.models import apply_preset
from sandbox.tasks.spec import TASK_KEY_SEPARATOR, TASK_KINDS, LabeledData, TaskSpec


def _row_to_example(row: dict, where: str) -> tuple[str, str]:
    if "text" in row and "label" in row:
        return str(row["text"]), str(row["label"])
    if {"prompt", "first", "second", "label"} <= row.keys():
        if row["label"] not in ("A", "B"):
            raise HarnessError(f"{where}: preference label must be 'A' or 'B', got {row['label']!r}")
        return f"{row['prompt']}\n[A] {row['first']}\n[B] {row['second']}", row["label"]
    if {"question", "choice", "label"} <= row.keys():
        if not isinstance(row["label"], bool):
            raise HarnessError(f"{where}: binary label must be true or false, got {row['label']!r}")
        return f"{row['question']}\n{row['choice']}", "true" if row["label"] else "false"
    raise HarnessError(
        f"{where}: row has keys {sorted(row)}; expected text/label, "
        "prompt/first/second/label or question/choice/label"
    )


def labeled_rows(rows: Iterable[tuple[str, dict]], what: str) -> LabeledData:
    """Rows of any of the three schemas as a task's labeled data (classes sorted by name)."""
    texts: list[str] = []
    names: list[str] = []
    for where, row in rows:
        text, label = _row_to_example(row, where)
        texts.append(text)
        names.append(label)
    classes = sorted(set(names))
    if len(classes) < 2:
        raise HarnessError(f"{what}: found a single label {classes}; a task needs two or more")
    index = {c: i for i, c in enumerate(classes)}
    return LabeledData(texts=texts, labels=[index[c] for c in names], classes=classes)


def load_jsonl_directory(directory: Path) -> LabeledData:
    return labeled_rows(directory_rows(directory), str(directory))


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
    return TaskSpec(
        name=f"{readable}{TASK_KEY_SEPARATOR}{directory_key(directory)}",
        description=config.get("description", f"custom task from {directory}"),
        load=lambda: load_jsonl_directory(directory),
        weak_model=config.get("weak_model", "tfidf"),
        strong_model=config.get("strong_model", "minilm-l6"),
        source=str(directory),
        kind=config.get("kind", "features"),
        label_words=tuple(words) if words else None,
        cue=config.get("cue", "\nAnswer:"),
        max_len=int(config.get("max_len", 128)),
        lora=config.get("lora"),
    )

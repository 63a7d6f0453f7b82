"""The one loader of task rows: task directories (every ``*.jsonl``) and Hugging Face dataset
ids (``hf:<dataset>``), both read through ``datasets`` and its Arrow cache (for directories under
the aar cache root; hub datasets in datasets' own cache, where an earlier download left them).
Nothing is downloaded at run time."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from sandbox.errors import AssetMissingError, HarnessError
from sandbox.paths import cache_root


def _datasets():  # noqa: ANN202 - the datasets module, imported lazily (seconds of import)
    import datasets

    datasets.utils.logging.disable_progress_bar()
    datasets.utils.logging.set_verbosity_error()
    return datasets


def _check_lines(path: Path) -> None:
    """Raise a one-line error naming the file and line of the first malformed row."""
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise HarnessError(f"{path.name}:{n}: not valid JSON ({exc.msg}); fix or remove the line") from exc
        if not isinstance(row, dict):
            raise HarnessError(f"{path.name}:{n}: each line must be a JSON object")


def _file_rows(path: Path) -> Iterator[tuple[str, dict]]:
    datasets = _datasets()
    try:
        table = datasets.load_dataset("json", data_files=str(path), split="train",
                                      cache_dir=str(cache_root() / "datasets"))
    except (datasets.exceptions.DatasetGenerationError, ValueError, TypeError) as exc:
        _check_lines(path)  # the precise reason, when it is a bad line
        raise HarnessError(f"{path.name}: cannot read it as JSON lines ({exc}); one JSON object per line") from exc
    if "__index_level_0__" in table.column_names:
        table = table.remove_columns("__index_level_0__")
    for n, row in enumerate(table, 1):
        yield f"{path.name}:{n}", {k: v for k, v in row.items() if v is not None}


def directory_rows(directory: Path) -> Iterator[tuple[str, dict]]:
    files = sorted(directory.glob("*.jsonl"))
    if not files:
        raise HarnessError(f"{directory}: no .jsonl files; put rows like {{\"text\", \"label\"}} there")
    for path in files:
        yield from _file_rows(path)


def hub_rows(dataset_id: str) -> Iterator[tuple[str, dict]]:
    """Every split of a hub dataset already in the local cache."""
    datasets = _datasets()
    try:
        splits = datasets.load_dataset(dataset_id, download_mode="reuse_cache_if_exists")
    except (ConnectionError, FileNotFoundError, OSError, ValueError) as exc:
        raise AssetMissingError(
            f"dataset {dataset_id} is not in the local Hugging Face cache: load it once where there is "
            f"network (datasets.load_dataset({dataset_id!r})), or export it as a task directory") from exc
    for split in sorted(splits):
        for n, row in enumerate(splits[split], 1):
            yield f"{dataset_id}[{split}]:{n}", dict(row)

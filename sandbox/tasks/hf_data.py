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


MAX_ROW_BYTES = 1 << 20  # 1 MiB a line: inputs past max_len tokens are never read, and a 50 MB row
# once took a 6-minute, 11 GB build before anything said so


def checked_lines(path: Path, objects_only: bool = True) -> list[tuple[int, dict]]:
    """(line number, row) of every non-blank line, read as written (Arrow would coerce a mixed-type
    column: ``1`` and ``"1"`` become one JSON type, ints become floats); a one-line HarnessError
    naming the file and line of the first row that is too long, not UTF-8, not JSON or not an
    object, and for a file without rows."""
    rows: list[tuple[int, dict]] = []
    with path.open("rb") as fh:
        for n, raw in enumerate(fh, 1):
            if len(raw) > MAX_ROW_BYTES:
                raise HarnessError(
                    f"{path.name}:{n}: row of {len(raw) / 1e6:.1f} MB, over the {MAX_ROW_BYTES >> 20} MiB limit "
                    "per row; shorten the row (inputs are truncated to max_len tokens anyway) or drop it")
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise HarnessError(f"{path.name}:{n}: not UTF-8 (byte 0x{raw[exc.start]:02x} at column "
                                   f"{exc.start + 1}); save the file as UTF-8") from exc
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise HarnessError(f"{path.name}:{n}: not valid JSON ({exc.msg}); fix or remove the line") from exc
            if objects_only and not isinstance(row, dict):
                raise HarnessError(f"{path.name}:{n}: each line must be a JSON object")
            rows.append((n, row))
    if not rows:
        raise HarnessError(f"{path.name}:1: the file has no rows; put one JSON object per line in it or remove it")
    return rows


# Row values taken from the line as written rather than from Arrow, where types matter.
RAW_KEYS = ("label", "soft_label", "consistency_id")


def file_rows(path: Path) -> Iterator[tuple[str, dict]]:
    checked = checked_lines(path)  # before datasets: its errors name no line
    datasets = _datasets()
    try:
        table = datasets.load_dataset("json", data_files=str(path), split="train",
                                      cache_dir=str(cache_root() / "datasets"))
    except (datasets.exceptions.DatasetGenerationError, ValueError, TypeError) as exc:
        raise HarnessError(f"{path.name}: cannot read it as JSON lines ({exc}); one JSON object per line") from exc
    if "__index_level_0__" in table.column_names:
        table = table.remove_columns("__index_level_0__")
    for (n, raw), row in zip(checked, table, strict=True):
        row = {k: v for k, v in row.items() if v is not None}
        row.update({k: raw[k] for k in RAW_KEYS if k in raw})
        yield f"{path.name}:{n}", row


def directory_rows(directory: Path) -> Iterator[tuple[str, dict]]:
    files = sorted(directory.glob("*.jsonl"))
    if not files:
        raise HarnessError(f"{directory}: no .jsonl files; put rows like {{\"text\", \"label\"}} there")
    for path in files:
        yield from file_rows(path)


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

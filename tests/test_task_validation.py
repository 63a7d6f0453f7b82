"""Task loading validates before any work: one label type per task, one schema per task, a cap
on row size, empty and non-UTF-8 files named with file and line, split-size errors with the
right numbers and sizes that fit. Each message is one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sandbox.errors import HarnessError
from sandbox.results import FixedBaselines
from sandbox.tasks import SplitSizes, get_task
from sandbox.tasks.files import load_jsonl_directory
from tests.test_custom_tasks import write_task


def _write(path: Path, rows: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path.parent


def _error(folder: Path) -> str:
    with pytest.raises(HarnessError) as exc:
        load_jsonl_directory(folder)
    assert "\n" not in str(exc.value)
    return str(exc.value)


def test_numbers_written_three_ways_are_one_class(tmp_path):
    folder = _write(tmp_path / "t" / "rows.jsonl", [{"text": "a", "label": 1}, {"text": "b", "label": "1"},
                                                    {"text": "c", "label": 1.0}, {"text": "d", "label": 2}])
    data = load_jsonl_directory(folder)
    assert data.classes == ["1", "2"] and data.labels == [0, 0, 0, 1]


def test_labels_of_two_types_name_file_line_and_types(tmp_path):
    folder = _write(tmp_path / "t" / "rows.jsonl", [{"text": "a", "label": 1}, {"text": "b", "label": "one"}])
    assert _error(folder) == (
        f"{folder}: labels of more than one type: number (e.g. 1 at rows.jsonl:1); string (e.g. 'one' at "
        "rows.jsonl:2); use one label type per task (e.g. all strings, or all numbers)")


def test_binary_labels_as_strings_are_booleans_in_every_file(tmp_path):
    rows = [{"question": "q", "choice": "c", "label": v} for v in ("true", "False", True, "TRUE")]
    data = load_jsonl_directory(_write(tmp_path / "t" / "rows.jsonl", rows))
    assert data.classes == ["false", "true"] and data.labels == [1, 0, 1, 1]
    only_strings = _write(tmp_path / "s" / "rows.jsonl", [{"question": "q", "choice": "c", "label": v}
                                                           for v in ("true", "false")])
    assert load_jsonl_directory(only_strings).classes == ["false", "true"]
    bad = _write(tmp_path / "b" / "rows.jsonl", [{"question": "q", "choice": "c", "label": "yes"}])
    assert _error(bad) == "rows.jsonl:1: binary label must be true or false, got 'yes'"


def test_two_schemas_in_one_file_are_refused(tmp_path):
    folder = _write(tmp_path / "t" / "rows.jsonl", [{"text": "a", "label": "x"},
                                                    {"question": "q", "choice": "c", "label": True}])
    assert _error(folder) == ("rows.jsonl:2: a binary row, but rows.jsonl:1 is a text row; one schema per task: "
                              "move the rows of each schema to a task of their own")


def test_an_empty_file_is_named_with_its_line(tmp_path):
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "rows.jsonl").write_text("\n\n")
    assert _error(tmp_path / "t") == ("rows.jsonl:1: the file has no rows; "
                                      "put one JSON object per line in it or remove it")


def test_a_non_utf8_file_is_named_with_its_line(tmp_path):
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "rows.jsonl").write_bytes(b'{"text": "a", "label": "x"}\n{"text": "caf\xe9", "label": "y"}\n')
    assert _error(tmp_path / "t") == "rows.jsonl:2: not UTF-8 (byte 0xe9 at column 14); save the file as UTF-8"


def test_a_huge_row_is_refused_before_the_build(tmp_path):
    folder = _write(tmp_path / "t" / "rows.jsonl", [{"text": "a", "label": "x"}, {"text": "b", "label": "y"},
                                                    {"text": "z" * 2_100_000, "label": "x"}])
    assert _error(folder) == ("rows.jsonl:3: row of 2.1 MB, over the 1 MiB limit per row; shorten the row "
                              "(inputs are truncated to max_len tokens anyway) or drop it")


def test_lopsided_given_sizes_get_sizes_that_fit(tmp_path):
    spec = get_task(str(write_task(tmp_path / "small", 700)), SplitSizes.parse("100000,1,1,1"))
    with pytest.raises(HarnessError) as exc:
        spec.fitted(spec.load())
    message = str(exc.value)
    assert "explicitly" not in message and "need 100003 rows but task small@" in message
    suggested = message.split("--split-sizes ")[1].split()[0]
    assert suggested == "670,10,10,10"
    again = get_task(spec.source, SplitSizes.parse(suggested))
    assert again.fitted(again.load()).sizes.text() == suggested


def test_no_gap_message_prints_the_split_it_checked(tmp_path):
    from sandbox.cache.task_cache import open_cache
    from sandbox.scoring.evaluator import Evaluator

    cache = open_cache(get_task(str(write_task(tmp_path / "t", 140))), show_progress=False, root=tmp_path / "c")
    b = cache.baselines()
    stat = lambda mean: b.weak_dev.model_copy(update={"mean": mean})  # noqa: E731
    gapless = FixedBaselines(weak_dev=stat(0.40), ceiling_dev=stat(0.56), weak_heldout=stat(0.61),
                             ceiling_heldout=stat(0.58), ceiling_recipe=b.ceiling_recipe)
    (cache.private_dir / "baselines.json").write_text(gapless.model_dump_json())
    with pytest.raises(HarnessError, match=r"the weak teacher \(0\.610 held-out\) already matches or beats the "
                                           r"strong ceiling \(0\.580 held-out\)"):
        Evaluator(cache, isolation="process")

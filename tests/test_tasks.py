import json

import pytest

from sandbox.errors import HarnessError, UnknownTaskError
from sandbox.tasks import get_task, list_tasks
from sandbox.tasks.files import load_jsonl_directory
from sandbox.tasks.wordnet import parse_noun_line


def test_registry_lists_builtin_tasks():
    assert {"wordnet-10", "rt-mpnet"} <= set(list_tasks())


def test_unknown_task_is_one_clear_line():
    with pytest.raises(UnknownTaskError, match="unknown task 'nope'.*wordnet-10") as exc:
        get_task("nope")
    assert "\n" not in str(exc.value)


def test_wordnet_line_parsing():
    line = ("02084071 05 n 02 dog 0 domestic_dog 0 001 @ 02083346 n 0000 | a member of the genus "
            'Canis; "the dog barked all night"\n')
    assert parse_noun_line(line) == (5, "dog, domestic dog: a member of the genus Canis")
    assert parse_noun_line("  1 This software and database is being provided\n") is None


def test_wordnet_10_has_ten_large_classes():
    data = get_task("wordnet-10").load()
    assert len(data.classes) == 10 and "noun.person" in data.classes
    assert len(data.texts) == len(data.labels) > 60_000


def test_rotten_tomatoes_loads_fresh_and_rotten():
    data = get_task("rt-mpnet").load()
    assert data.classes == ["rotten", "fresh"]
    assert len(set(data.texts)) == len(data.texts) > 12_000


def _write(path, rows):
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")


def test_custom_task_reads_all_three_schemas(tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    _write(plain / "a.jsonl", [{"text": "good", "label": "pos"}, {"text": "bad", "label": "neg"}])
    assert load_jsonl_directory(plain).classes == ["neg", "pos"]

    pref = tmp_path / "pref"
    pref.mkdir()
    _write(pref / "train_label.jsonl", [{"prompt": "q", "first": "x", "second": "y", "label": "A"},
                                        {"prompt": "q", "first": "y", "second": "x", "label": "B"}])
    data = load_jsonl_directory(pref)
    assert data.classes == ["A", "B"] and "[A] x" in data.texts[0]

    binary = tmp_path / "binary"
    binary.mkdir()
    _write(binary / "test.jsonl", [{"question": "2+2", "choice": "4", "label": True},
                                   {"question": "2+2", "choice": "5", "label": False}])
    assert load_jsonl_directory(binary).classes == ["false", "true"]

    (binary / "task.json").write_text(json.dumps({"name": "arith", "strong_model": "minilm-l6"}))
    spec = get_task(str(binary))
    assert spec.name.startswith("arith@") and spec.weak_model == "tfidf"


def test_custom_task_bad_rows_name_file_and_line(tmp_path):
    _write(tmp_path / "x.jsonl", [{"text": "a", "label": 1}])
    (tmp_path / "x.jsonl").write_text((tmp_path / "x.jsonl").read_text() + "{not json\n")
    with pytest.raises(HarnessError, match=r"x.jsonl:2: not valid JSON"):
        load_jsonl_directory(tmp_path)
    (tmp_path / "x.jsonl").write_text(json.dumps({"foo": 1}) + "\n")
    with pytest.raises(HarnessError, match="x.jsonl:1: row has keys"):
        load_jsonl_directory(tmp_path)

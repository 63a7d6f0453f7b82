"""Task data through Hugging Face datasets (directories and hf: ids), the fine-tune task kinds of
task directories, the reference preset, and one-line errors for models that are not there."""

from __future__ import annotations

import json

import pytest

from sandbox.errors import AssetMissingError, HarnessError
from sandbox.tasks import get_task
from sandbox.tasks.models import resolve_student


def _rows(path, rows):
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")


def test_hf_dataset_ids_load_through_datasets_with_all_splits(tmp_path, monkeypatch):
    monkeypatch.setenv("AAR_CACHE_DIR", str(tmp_path / "cache"))
    repo = tmp_path / "repo"
    repo.mkdir()  # a dataset repository as the hub cache would hold it: split files
    _rows(repo / "train.jsonl", [{"prompt": "p", "first": "x", "second": "y", "label": "A"}] * 3)
    _rows(repo / "test.jsonl", [{"prompt": "p", "first": "y", "second": "x", "label": "B"}] * 2)
    data = get_task(f"hf:{repo}").load()
    assert data.classes == ["A", "B"] and sorted(data.labels) == [0, 0, 0, 1, 1]
    get_task(str(repo)).load()  # the same rows as a task directory: Arrow cache under aar's root
    assert list((tmp_path / "cache" / "datasets").iterdir())


def test_missing_hub_dataset_is_one_line(monkeypatch):
    import datasets

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    with pytest.raises(AssetMissingError, match="not in the local Hugging Face cache") as exc:
        get_task("hf:nobody-here/no-such-dataset").load()
    assert "\n" not in str(exc.value)


def test_finetune_task_dir_with_preset_and_causal_model(tmp_path):
    _rows(tmp_path / "rows.jsonl", [{"question": "q", "choice": "c", "label": b} for b in (True, False)])
    (tmp_path / "task.json").write_text(json.dumps({"preset": "qwen-reference"}))
    spec = get_task(str(tmp_path))
    assert (spec.kind, spec.weak_model, spec.strong_model) == (
        "finetune", "hf:Qwen/Qwen1.5-0.5B-Chat", "hf:Qwen/Qwen3-4B-Base")
    assert spec.lora == {"rank": 32, "alpha": 64, "targets": ["q_proj", "v_proj"]}, "targets stated"
    mine = {"rank": 16, "alpha": 32, "targets": ["q_proj", "k_proj", "v_proj", "o_proj"]}
    (tmp_path / "task.json").write_text(json.dumps({"preset": "qwen-reference", "lora": mine}))
    assert get_task(str(tmp_path)).lora == mine, "a task.json's own adapter replaces the preset's"
    (tmp_path / "task.json").write_text(json.dumps({"preset": "nope"}))
    with pytest.raises(HarnessError, match="unknown preset 'nope'; use one of qwen-reference"):
        get_task(str(tmp_path))


def test_model_not_on_this_machine_names_what_to_download(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(AssetMissingError, match=r"huggingface-cli download Qwen/Qwen3-4B-Base") as exc:
        resolve_student("hf:Qwen/Qwen3-4B-Base", ["false", "true"])
    assert "\n" not in str(exc.value)
    with pytest.raises(AssetMissingError, match="not found: use minilm-l6, smollm2-135m"):
        resolve_student("/no/such/model", ["a", "b"])


def test_smollm2_resolves_to_a_causal_gguf_student():
    pytest.importorskip("gguf")
    spec = resolve_student("smollm2-135m", ["A", "B"])
    assert spec.family == "causal" and spec.gguf_file.endswith(".gguf") and spec.label_words == ["A", "B"]

"""The reference benchmark's layout: split files keep their roles, consistency_id groups stay on
one side of the dev/held-out line, given soft labels are the weak teacher, extra keys reach
ideas, the reference prompt templates (with the chat template for chat models), and the
CPU-sized stand-ins in benchmarks/tasks/refbench-*."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from sandbox.cache import finetune as ft_cache
from sandbox.cache.task_cache import open_cache
from sandbox.errors import HarnessError
from sandbox.runtime.context import IdeaContext, weak_teacher_dir
from sandbox.runtime.student_spec import StudentSpec
from sandbox.runtime.templates import is_chat_model, label_prefix, student_input
from sandbox.tasks import SplitSizes, get_task
from sandbox.tasks.files import load_jsonl_directory

ROOT = Path(__file__).resolve().parents[1]
BINARY = ROOT / "benchmarks" / "tasks" / "refbench-binary"  # soft_label rows, consistency_id groups
PREF = ROOT / "benchmarks" / "tasks" / "refbench-pref"


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _binary_text(row: dict) -> str:
    return f"Question: {row['question']}\nAnswer: {row['choice']}"


def test_split_files_keep_their_roles_groups_and_given_soft_labels(tmp_path):
    spec = get_task(str(BINARY), SplitSizes.parse("60,200,80,80"))  # a sample of each file
    cache = open_cache(spec, show_progress=False, root=tmp_path)
    public, private = cache.public_dir, cache.private_dir
    texts = json.loads((public / "texts.json").read_text())
    weak_train = json.loads((private / "weak_train_texts.json").read_text())
    by_file = {name: Counter(_binary_text(r) for r in _rows(BINARY / f"{name}.jsonl"))
               for name in ("train_label", "train_unlabel", "test")}
    # each split drawn from its own file only: no test row reaches teacher or student, no gold row the student
    assert (len(weak_train), len(texts["unlabeled"])) == (60, 200) and 80 <= len(texts["test"]) <= 161
    assert not Counter(weak_train) - by_file["train_label"]
    assert not Counter(texts["unlabeled"]) - by_file["train_unlabel"]
    assert not Counter(texts["test"]) - by_file["test"]
    # consistency_id groups: whole in the test sample, and on one side of the secret dev/held-out line
    extras, roles = json.loads((public / "row_extras.json").read_text()), cache.test_roles()
    test_group_sizes = Counter(r["consistency_id"] for r in _rows(BINARY / "test.jsonl"))
    side: dict[str, set[int]] = {}
    for extra, role in zip(extras["test"], roles, strict=True):
        side.setdefault(extra["consistency_id"], set()).add(int(role))
    assert all(len(s) == 1 for s in side.values())
    assert Counter(e["consistency_id"] for e in extras["test"]) == {g: test_group_sizes[g] for g in side}
    assert {0, 1, 2} == {int(r) for r in roles} and max(test_group_sizes.values()) > 1  # 2: confirmation part
    # the given soft labels are every weak seed's labels, and the weak accuracy is scored from them
    soft_of = {_binary_text(r): r["soft_label"] for name in ("train_unlabel", "test")
               for r in _rows(BINARY / f"{name}.jsonl")}
    card = cache.card()
    assert len(card.weak_seeds) == 16  # the reference's count of fixed-baseline seeds
    for seed in (0, 15):
        weak = weak_teacher_dir(public, seed)
        np.testing.assert_allclose(np.load(weak / "unlabeled_soft.npy"),
                                   [soft_of[t] for t in texts["unlabeled"]], atol=1e-4)
        np.testing.assert_allclose(np.load(weak / "test_probs.npy"), [soft_of[t] for t in texts["test"]], atol=1e-4)
    given_test = np.asarray([soft_of[t] for t in texts["test"]]).argmax(1)
    weak_dev = float((given_test == cache.gold_test())[roles == 0].mean())
    baselines = cache.baselines()
    assert baselines.weak_dev.mean == pytest.approx(weak_dev) and baselines.weak_dev.sd == 0
    # extra keys reach ideas, never a label
    ctx = IdeaContext(card=card, seed=0, time_budget_s=60, scratch=tmp_path, public_dir=public,
                      log=__import__("logging").getLogger("t"))
    assert card.row_keys == ["consistency_id", "difficulty", "subset"]
    assert ctx.row_extras("test") == extras["test"] and len(ctx.row_extras("unlabeled")) == 200
    assert not {"label", "soft_label"} & {k for e in extras["test"] + extras["unlabeled"] for k in e}


def test_pooled_directories_are_split_anew_as_before(tmp_path):
    """Without all three split files the rows are pooled (a directory of test.jsonl only too)."""
    folder = tmp_path / "two"
    folder.mkdir()
    for name in ("train_label.jsonl", "test.jsonl"):
        shutil.copy(PREF / name, folder / name)
    data = load_jsonl_directory(folder)
    assert data.roles is None and data.extras is None and len(data.texts) == 400
    assert data.texts[0].startswith("Is this a person") and "\n[A] a person" in data.texts[0]
    assert get_task(str(folder)).cue == "\nAnswer:" and get_task(str(folder)).fixed_seeds is None


def test_split_sizes_beyond_the_files_suggest_sizes_that_fit():
    spec = get_task(str(PREF), SplitSizes.parse("500,400,100,100"))
    with pytest.raises(HarnessError, match=r"train_label 100, train_unlabel 400, test 300 .*"
                                           r"pass --split-sizes 100,400,100,100 \(or smaller\)"):
        spec.fitted(spec.load())
    whole = get_task(str(PREF))
    assert whole.fitted(whole.load()).sizes.text() == "100,400,150,150"  # every row by default


def test_partial_soft_labels_are_refused_with_file_and_line(tmp_path):
    folder = tmp_path / "partial"
    shutil.copytree(BINARY, folder)
    rows = _rows(folder / "test.jsonl")
    del rows[3]["soft_label"]
    (folder / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(HarnessError, match=r"^test.jsonl:4: no soft_label, but other rows carry one"):
        load_jsonl_directory(folder)
    rows[3]["soft_label"] = [0.2, 0.3, 0.5]
    (folder / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(HarnessError, match=r"^test.jsonl:4: soft_label must be 2 probabilities"):
        load_jsonl_directory(folder)


def _spec(chat: bool | None, cue: str = "\nLabel:") -> StudentSpec:
    return StudentSpec(family="causal", name="m", model_dir="/nowhere", cue=cue, chat_template=chat)


def test_student_inputs_are_the_reference_templates_for_both_schemas():
    pref, binary = load_jsonl_directory(PREF, "reference"), load_jsonl_directory(BINARY, "reference")
    p, b = _rows(PREF / "train_label.jsonl")[0], _rows(BINARY / "train_label.jsonl")[0]
    spec = get_task(str(PREF))
    assert (spec.template, spec.cue) == ("reference", "\nLabel:")
    base = _spec(None, spec.cue)
    assert student_input(pref.texts[0], base, None) == (
        f"Question: {p['prompt']}\nAnswer A: {p['first']}\nAnswer B: {p['second']}\nLabel:")
    assert student_input(binary.texts[0], base, None) == f"Question: {b['question']}\nAnswer: {b['choice']}\nLabel:"
    assert (pref.classes, binary.classes) == (["A", "B"], ["false", "true"])
    assert label_prefix(base) == " "  # the label word follows "Label:" after a space


def test_chat_template_by_model_type_as_the_reference():
    assert is_chat_model("hf:Qwen/Qwen1.5-0.5B-Chat") and not is_chat_model("hf:Qwen/Qwen3-4B-Base")
    reference = get_task(str(PREF))
    assert ft_cache.uses_chat_template(reference, "hf:Qwen/Qwen1.5-0.5B-Chat") is True
    assert ft_cache.uses_chat_template(reference, "hf:Qwen/Qwen3-4B-Base") is None
    cue_task = get_task(str(ROOT / "benchmarks" / "tasks" / "wordnet-verbs"))
    assert ft_cache.uses_chat_template(cue_task, "hf:Qwen/Qwen1.5-0.5B-Chat") is None  # existing tasks unchanged


def test_chat_models_read_the_reference_prompt_as_a_user_turn():
    from transformers import AutoTokenizer

    from sandbox.tasks.models import model_dir

    path, gguf = model_dir("smollm2-135m")
    tokenizer = AutoTokenizer.from_pretrained(path, gguf_file=gguf, local_files_only=True)
    b = _rows(BINARY / "train_label.jsonl")[0]
    text = load_jsonl_directory(BINARY, "reference").texts[0]
    rendered = student_input(text, _spec(True), tokenizer)
    prompt = f"Question: {b['question']}\nAnswer: {b['choice']}\nLabel:"
    assert rendered == tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                                     add_generation_prompt=True)
    assert rendered.endswith(f"<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n")
    assert label_prefix(_spec(True)) == ""  # the answer turn starts with the label word itself


def test_the_qwen_reference_preset_reads_this_layout(tmp_path):
    folder = tmp_path / "chat"
    shutil.copytree(PREF, folder)
    (folder / "task.json").write_text(json.dumps({"preset": "qwen-reference"}))
    spec = get_task(str(folder))
    assert (spec.kind, spec.template, spec.cue, spec.fixed_seeds) == ("finetune", "reference", "\nLabel:", 16)
    assert ft_cache.uses_chat_template(spec, spec.weak_model) is True
    assert ft_cache.uses_chat_template(spec, spec.strong_model) is None
    data = spec.load()
    assert data.role_counts() == {"weak_train": 100, "unlabeled": 400, "test": 300}
    assert data.texts[0].startswith("Question: Is this a person")


def test_a_weak_labels_file_beside_the_rows_is_the_teacher(tmp_path):
    folder = tmp_path / "sidecar"
    shutil.copytree(BINARY, folder)
    for name in ("train_unlabel", "test"):
        rows = _rows(folder / f"{name}.jsonl")
        (folder / f"{name}.weak_labels.jsonl").write_text("".join(json.dumps({"soft_label": r.pop("soft_label")}) + "\n"
                                                                  for r in rows))
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert load_jsonl_directory(folder).soft == load_jsonl_directory(BINARY).soft
    lines = (folder / "test.weak_labels.jsonl").read_text().splitlines()
    (folder / "test.weak_labels.jsonl").write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(HarnessError, match=rf"^test.weak_labels.jsonl: {len(lines) - 1} weak labels for the "
                                           rf"{len(lines)} rows of test.jsonl; give one line per row"):
        load_jsonl_directory(folder)

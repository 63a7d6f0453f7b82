"""Custom task directories that just work: fitted split sizes, one task identity, `aar tasks`
listing, leaderboards by path, replay hints, CI-respecting report verdicts, no torch warnings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import agent.cli.harness  # noqa: F401 - registers the commands on the app
import agent.cli.history  # noqa: F401
from agent.cli import app
from agent.cli.common import run_app
from experiments.report import gain_verdict
from experiments.store import LabStore
from sandbox.errors import HarnessError
from sandbox.tasks import SplitSizes, get_task
from tests.test_history_support import attempt, manifest

ROOT = Path(__file__).resolve().parents[1]


def write_task(folder: Path, n_rows: int, flavour: str = "a") -> Path:
    """A two-class jsonl task: words about animals vs words about tools."""
    folder.mkdir(parents=True, exist_ok=True)
    words = [("cat dog horse cow sheep lion tiger wolf", "animal"), ("hammer saw drill wrench pliers file", "tool")]
    with open(folder / "rows.jsonl", "w") as fh:
        for i in range(n_rows):
            text, label = words[i % 2]
            fh.write(json.dumps({"text": f"{flavour} {i} {text.split()[i % 6]} {text}", "label": label}) + "\n")
    return folder


def aar(capsys, monkeypatch, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["aar", *args])
    code = run_app(app)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_default_sizes_shrink_to_a_small_task(tmp_path):
    spec = get_task(str(write_task(tmp_path / "small", 700)))
    fitted = spec.fitted(spec.load())
    s = fitted.sizes
    assert s.total <= 700 and (s.weak_train, s.unlabeled, s.dev, s.heldout) == (100, 400, 100, 100)


def test_task_json_split_sizes_are_the_tasks_own_and_the_command_line_replaces_them(tmp_path):
    folder = write_task(tmp_path / "sized", 1200)
    (folder / "task.json").write_text(json.dumps({"split_sizes": "100,300,100,100"}))
    spec = get_task(str(folder))
    assert spec.fitted(spec.load()).sizes.text() == "100,300,100,100"
    assert get_task(str(folder), SplitSizes.parse("200,400,100,100")).sizes.text() == "200,400,100,100"
    (folder / "task.json").write_text(json.dumps({"split_sizes": "100,300,100"}))
    with pytest.raises(HarnessError, match=r"task.json: split sizes '100,300,100': give four positive integers"):
        get_task(str(folder))


def test_given_sizes_that_do_not_fit_are_refused_with_sizes_that_do(tmp_path):
    spec = get_task(str(write_task(tmp_path / "small", 700)), SplitSizes.parse("300,1000,300,300"))
    with pytest.raises(HarnessError, match=r"need 1900 rows but task small@\w+ has 700: pass --split-sizes"):
        spec.fitted(spec.load())
    # the suggested sizes are accepted as they are
    text = str(pytest.raises(HarnessError, spec.fitted, spec.load()).value).split("--split-sizes ")[1].split()[0]
    again = get_task(spec.source, SplitSizes.parse(text))
    assert again.fitted(again.load()).sizes.text() == text


def test_too_few_rows_say_how_many_are_needed(tmp_path):
    spec = get_task(str(write_task(tmp_path / "tiny", 30)))
    with pytest.raises(HarnessError, match="30 rows, too few .* rows needed"):
        spec.fitted(spec.load())


def test_task_identity_is_name_and_content_key(tmp_path):
    a = get_task(str(write_task(tmp_path / "x" / "same", 50, "a"))).name
    b = get_task(str(write_task(tmp_path / "y" / "same", 50, "b"))).name
    copy = get_task(str(write_task(tmp_path / "z" / "same", 50, "a"))).name
    assert a.startswith("same@") and b.startswith("same@") and a != b
    assert copy == a  # the same rows elsewhere are the same task


def test_a_bad_task_leaves_no_lab_behind(tmp_path):
    from agent.session_setup import ResearchConfig, open_session
    from experiments.schemas import RunConfig

    lab = tmp_path / "lab"
    config = ResearchConfig(task=str(write_task(tmp_path / "small", 100)), lab=lab,
                            run=RunConfig(split_sizes="100,400,100,100", isolation="process"))
    with pytest.raises(HarnessError, match="pass --split-sizes"):
        open_session(config, show_progress=False)
    assert not lab.exists()


def test_leaderboard_by_path_keeps_same_named_folders_apart(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    first, second = write_task(tmp_path / "a" / "rows", 50, "a"), write_task(tmp_path / "b" / "rows", 50, "b")
    ids = [get_task(str(first)).name, get_task(str(second)).name]
    store = LabStore.open(tmp_path / "lab")
    for n, (task, pgr) in enumerate(zip(ids, (0.4, 0.7), strict=True)):
        sid = f"2025010{n + 1}-rows-{n}"
        store.create_session(manifest(sid, task=task))
        store.record_attempt(attempt(sid, 1, f"idea{n}", pgr=pgr, attempt_id=f"cccc0000000{n}", task=task))
    replay = "20250103-rows-replay"
    store.create_session(manifest(replay, task=ids[0], proposer="replay"))
    store.record_attempt(attempt(replay, 1, "idea0", pgr=0.41, attempt_id="dddd00000001", task=ids[0]))
    lab = ["--lab", str(store.path)]
    code, out, _ = aar(capsys, monkeypatch, "leaderboard", "--task", str(first), "--json", *lab)
    assert code == 0 and [r["name"] for r in json.loads(out)] == ["idea0"]
    code, out, _ = aar(capsys, monkeypatch, "leaderboard", "--task", str(first), *lab)
    assert "1 replayed run(s)" in out and "--include-replays" in out
    code, _, err = aar(capsys, monkeypatch, "leaderboard", "--task", "rows", *lab)
    assert code == 2 and "ambiguous" in err and ids[0] in err and ids[1] in err
    code, _, err = aar(capsys, monkeypatch, "leaderboard", "--task", "wordnet-10", *lab)
    assert code == 2 and "no scored attempts" in err


def test_aar_tasks_lists_cached_directories(tmp_path, capsys, monkeypatch, cache_dir):
    from sandbox.cache.task_cache import open_cache

    folder = write_task(tmp_path / "listed", 140)
    cache = open_cache(get_task(str(folder)), show_progress=False)
    code, out, _ = aar(capsys, monkeypatch, "tasks", "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    row = rows[cache.spec.name]
    assert code == 0 and row["cached"] and Path(row["source"]).name == "listed"  # the folder that built it
    assert row["sizes"] == "20,80,20,20" and row["baselines"]["weak_dev"]["n"] == 5


@pytest.mark.parametrize(("gain", "half", "word"), [(0.02, 0.11, "not shown"), (0.2, 0.05, "holds"),
                                                    (-0.2, 0.05, "reversed"), (0.2, None, "untested")])
def test_report_verdict_respects_the_interval(gain, half, word):
    assert gain_verdict(gain, half, paired=True).startswith(word)


def test_runtime_raises_no_torch_warning_on_read_only_arrays():
    script = (
        "import warnings, numpy as np\nwarnings.simplefilter('error')\n"
        "from sandbox.runtime import train_head, knn_probe, label_propagation\n"
        "x = np.random.rand(40, 8).astype(np.float32); x.flags.writeable = False\n"
        "y = np.eye(2, dtype=np.float32)[np.arange(40) % 2]; y.flags.writeable = False\n"
        "train_head(x, y, epochs=1, val=(x, y)).predict_proba(x)\n"
        "knn_probe(x, y, x, k=3); label_propagation(x, y, k=3)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "not writable" not in done.stderr


def test_a_task_without_a_weak_to_strong_gap_is_refused_clearly(tmp_path, cache_dir):
    from sandbox.cache.task_cache import open_cache
    from sandbox.scoring.evaluator import Evaluator

    cache = open_cache(get_task(str(write_task(tmp_path / "easy", 140))), show_progress=False)
    with pytest.raises(HarnessError, match="already matches or beats the strong ceiling"):
        Evaluator(cache, isolation="process")

"""The harness commands as a user runs them: real `aar` processes."""

import json
import os
import subprocess
import sys

from tests.conftest import SMALL

AAR = [sys.executable, "-m", "agent.cli"]


def aar(*args, env=None):
    return subprocess.run([*AAR, *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, **(env or {})})


def _one_line_error(proc):
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error:")
    return lines[0]


def test_wrong_task_name(cache_dir):
    proc = aar("eval", "sandbox/baselines/vanilla_soft.py", "--task", "wordnet-11")
    assert proc.returncode == 2
    assert "unknown task 'wordnet-11'" in _one_line_error(proc)


def test_missing_and_unreadable_idea_files(cache_dir, tmp_path):
    proc = aar("eval", str(tmp_path / "nope.py"))
    assert proc.returncode == 2 and "no such idea file" in _one_line_error(proc)
    binary = tmp_path / "bin.py"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    proc = aar("eval", str(binary))
    assert proc.returncode == 2 and "cannot read" in _one_line_error(proc)


def test_bad_split_sizes(cache_dir):
    proc = aar("eval", "sandbox/baselines/vanilla_soft.py", "--split-sizes", "1,2")
    assert proc.returncode == 2 and "four positive integers" in _one_line_error(proc)


def test_eval_ok_json_and_crashing_idea(small_cache, tmp_path):
    proc = aar("eval", "sandbox/baselines/vanilla_soft.py", "--split-sizes", SMALL, "--seeds", "2", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["status"] == "ok" and len(result["seeds"]) == 2 and result["pgr"]["n"] == 2
    crash = tmp_path / "crash.py"
    crash.write_text("def run(ctx):\n    return 1 / 0\n")
    proc = aar("eval", str(crash), "--split-sizes", SMALL, "--seeds", "1")
    assert proc.returncode == 1
    assert "error on seed 0: ZeroDivisionError" in _one_line_error(proc)
    # the cache is intact: the next normal run still works
    proc = aar("eval", "sandbox/baselines/vanilla_soft.py", "--split-sizes", SMALL, "--seeds", "1", "--json")
    assert proc.returncode == 0


def test_tasks_lists_cached_baselines(small_cache):
    proc = aar("tasks", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {r["name"]: r for r in json.loads(proc.stdout)}
    assert {"wordnet-10", "rt-mpnet"} <= set(rows)


def test_usage_errors_are_messages_not_tracebacks():
    for args in (["nosuchcmd"], ["eval", "x.py", "--seeds", "0"]):
        proc = aar(*args)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        assert "Error:" in proc.stderr


def test_a_session_reuses_what_aar_baselines_measured(small_cache, monkeypatch):
    """`aar baselines` keeps its results as the summary a session reads, so a session started
    after it does not rerun every built-in baseline (minutes per baseline on fine-tune tasks)."""
    from agent.session_setup import baseline_summary
    from sandbox.cache.task_cache import baseline_summary_name
    from sandbox.scoring.evaluator import Evaluator

    (small_cache.private_dir / baseline_summary_name([0])).unlink(missing_ok=True)
    proc = aar("baselines", "--split-sizes", SMALL, "--seeds", "1", "--json")
    assert proc.returncode == 0, proc.stderr
    measured = {b["idea"]: b["pgr"]["mean"] for b in json.loads(proc.stdout)["baselines"]}
    evaluator = Evaluator(small_cache)
    monkeypatch.setattr(evaluator, "evaluate", lambda *a, **k: (_ for _ in ()).throw(AssertionError("re-ran")))
    rows = baseline_summary(evaluator, [0])
    assert {r["name"]: r["pgr"] for r in rows} == measured

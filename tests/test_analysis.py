"""Analysis runs: the researcher's code in the same sandbox as an idea's seed, with the idea's
gold-free context, never scored. What it prints, reports and draws comes back checked; hostile
analyses (gold, network, huge or malformed PNGs, terminal escapes, running past the limit) each
get a declared outcome."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest

from sandbox.execution.analysis import check_png, run_analysis, write_wrapper
from sandbox.isolation.base import Limits
from sandbox.runtime.analysis import encode_png

LOOK = '''
import numpy as np
soft = ctx.weak_soft
prior = soft.mean(axis=0)
print("n_unlabeled", soft.shape[0], "classes", ctx.n_classes)
ctx.report("weak_prior_max", float(prior.max()))
ctx.report("first_text", ctx.unlabeled_texts[0][:40])
conf = soft.max(axis=1)
hist = np.histogram(conf, bins=20, range=(0, 1))[0]
img = np.zeros((40, 20), np.uint8)
for k, h in enumerate(hist):
    img[40 - int(40 * h / hist.max()):, k] = 255
ctx.save_png("confidence_hist", img)
'''


def analyse(evaluator, code: str, tmp_path: Path, limits: Limits | None = None):
    """One analysis run on the evaluator's own executor and sandbox (no scoring call)."""
    request = evaluator.request(write_wrapper(code, "analysis.py", tmp_path), evaluator.card.weak_seeds[0])
    if limits is not None:
        request = type(request)(**{**request.__dict__, "limits": limits})
    return run_analysis(evaluator.executor, request)


def test_an_analysis_looks_at_the_weak_labels_and_draws(evaluator, tmp_path):
    used = evaluator.budget.used
    out = analyse(evaluator, LOOK, tmp_path)
    assert out.status == "ok", out
    assert f"n_unlabeled {evaluator.card.n_unlabeled} classes {len(evaluator.card.classes)}" in out.output
    assert 1 / len(evaluator.card.classes) <= out.reports["weak_prior_max"] <= 1
    assert out.reports["first_text"]
    (fig,) = out.figures
    assert (fig.name, fig.width, fig.height) == ("confidence_hist.png", 20, 40) and not out.dropped
    assert check_png(fig.png) == (None, (20, 40))
    assert evaluator.budget.used == used  # not a scoring call


def test_an_analysis_error_comes_back_with_its_traceback(evaluator, tmp_path):
    out = analyse(evaluator, "def f(x):\n    return x / 0\n\nf(1)\n", tmp_path)
    assert out.status == "error" and "ZeroDivisionError" in out.error and "analysis.py" in out.traceback


# --- hostile analyses, each with its declared outcome ----------------------------------------
GOLD = '''
from pathlib import Path
found = []
for guess in (ctx.public_dir / ".." / "private", ctx.public_dir.parent, Path("/aar")):
    for p in guess.rglob("*"):
        if "gold" in p.name or "roles" in p.name:
            found.append(str(p))
print("FOUND", found)
'''
NETWORK = '''
import socket
socket.create_connection(("127.0.0.1", 80), timeout=2)
'''
ESCAPES = 'print("\\x1b[2J\\x1b]0;pwned\\x07[red]markup[/red] done")\n'
HUGE_PNG = '''
import numpy as np
rng = np.random.default_rng(0)
ctx.save_png("noise", rng.integers(0, 256, size=(1000, 1000, 3)))
'''
MALFORMED_PNG = '''
ctx.figure_path("bad").write_bytes(b"\\x89PNG\\r\\n\\x1a\\n" + b"garbage" * 100)
'''
WRITE_WORKSPACE = '''
from pathlib import Path
import sandbox.runtime.analysis as a
print("FILE", a.__file__)
Path(a.__file__).write_text("poisoned")
'''
FOREVER = "while True:\n    pass\n"


@pytest.mark.skipif("not __import__('sandbox.isolation.registry', fromlist=['x'])"
                    ".get_isolation('bwrap').available()[0]")
@pytest.mark.parametrize(("code", "expect"), [
    (GOLD, lambda o: o.status == "ok" and "FOUND []" in o.output),  # no gold or test roles in view
    (NETWORK, lambda o: o.status == "denied" and "PermissionError" in o.error),  # seccomp: no sockets
    (ESCAPES, lambda o: o.status == "ok" and "\x1b" not in o.output and "\x07" not in o.output
     and "[red]markup[/red] done" in o.output),  # escapes dropped, markup kept as text
    (HUGE_PNG, lambda o: o.status == "ok" and not o.figures and "larger than" in o.dropped[0]),
    (MALFORMED_PNG, lambda o: o.status == "ok" and not o.figures and "bad.png: truncated" in o.dropped[0]),
    (WRITE_WORKSPACE, lambda o: o.status in ("error", "denied") and "Read-only file system" in o.error),
], ids=["read-gold", "network", "terminal-escapes", "huge-png", "malformed-png", "write-runtime"])
def test_hostile_analyses_get_their_declared_outcome(evaluator, tmp_path, code, expect):
    out = analyse(evaluator, code, tmp_path)
    assert expect(out), out.model_dump(exclude={"figures"})


def test_an_analysis_past_its_wall_limit_is_stopped(evaluator, tmp_path):
    limits = evaluator.request(Path(__file__), evaluator.card.weak_seeds[0]).limits
    out = analyse(evaluator, FOREVER, tmp_path, Limits(**{**limits.__dict__, "time_s": 3.0}))
    assert out.status == "timeout" and 2.5 < out.runtime_s < 30


# --- the PNG check on its own -----------------------------------------------------------------
def _chunk(kind: bytes, data: bytes, crc: int | None = None) -> bytes:
    check = zlib.crc32(kind + data) if crc is None else crc
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", check)


@pytest.mark.parametrize(("data", "says"), [
    (b"GIF89a", "no PNG signature"),
    (encode_png([[1, 2], [3, 4]])[:-6], "truncated"),
    (encode_png([[1, 2], [3, 4]])[:-12], "does not end with IEND"),
    (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", 5000, 10, 8, 0, 0, 0, 0))
     + _chunk(b"IDAT", zlib.compress(b"")) + _chunk(b"IEND", b""), "5000x10 pixels"),
    (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", 100, 100, 8, 0, 0, 0, 0))
     + _chunk(b"IDAT", zlib.compress(b"\x00" * 10**6)) + _chunk(b"IEND", b""), "does not match its header"),
    (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 0, 0, 0, 0), crc=7)
     + _chunk(b"IEND", b""), "bad CRC"),
])
def test_malformed_pngs_are_refused_with_a_reason(data, says):
    problem, _ = check_png(data)
    assert problem is not None and says in problem


def test_encoded_pngs_pass_the_check():
    assert check_png(encode_png([[0.0, 0.5], [1.0, 0.25]])) == (None, (2, 2))
    assert check_png(encode_png([[[255, 0, 0]] * 3] * 2)) == (None, (3, 2))


# --- the offline proposer takes its kNN cleaning strength from an analysis run ------------------
def test_the_agreement_picks_the_cleaning_strength():
    from agent.proposers.offline import choose_next, cleaning_blend

    assert cleaning_blend(0.95, [0.25, 0.5, 0.75, 1.0]) == 0.25  # the teacher and the structure agree
    assert cleaning_blend(0.70, [0.25, 0.5, 0.75, 1.0]) == 0.5
    assert cleaning_blend(0.40, [0.25, 0.5, 0.75, 1.0]) == 1.0
    assert cleaning_blend(None, [0.25, 0.5]) is None
    card = {"key": "k", "classes": list("abcdefghij"), "n_unlabeled": 600, "layers": ["layer_2", "final"]}
    base = {"seed": 0, "step": 0, "direction": None, "card": card, "baselines": []}

    def knn_start(agreement):
        tried, request = [], {**base, "analysis": {"knn_teacher_agreement": agreement}}
        for step in range(8):
            choice = choose_next({**request, "step": step, "results": tried})
            if choice["genome"]["cleaning"] == "knn" and choice["move"] == "start":
                return choice["genome"]["blend"]
            tried.append({"key": str(step), "genome": choice["genome"], "pgr": 0.1, "ci95": 0.05})
            from agent.proposers.search_space import genome_key
            tried[-1]["key"] = genome_key(choice["genome"])
        raise AssertionError("no kNN-cleaning start")

    assert knn_start(0.95) == 0.25 and knn_start(0.6) == 0.75


def test_the_default_offline_session_runs_the_analysis_first(small_cache, tmp_path):
    from agent.budget import Budgets
    from agent.progress import Reporter
    from agent.research import run_research
    from agent.session_setup import ResearchConfig
    from experiments.schemas import RunConfig
    from experiments.store import LabStore
    from tests.conftest import SMALL

    lines: list[str] = []

    class Lines(Reporter):
        def line(self, text: str) -> None:
            lines.append(text)

    run = RunConfig(split_sizes=SMALL, budgets=Budgets(max_attempts=1))
    out = run_research(ResearchConfig(task="wordnet-10", seeds=2, lab=tmp_path, run=run), Lines())
    store = LabStore.open(tmp_path)
    (folder, meta), = store.analysis_runs(out.session_id).items()
    assert folder == "0001-teacher-kNN-agreement" and meta["status"] == "ok"
    agreement = meta["reports"]["knn_teacher_agreement"]
    assert 0 < agreement <= 1 and any("analysis 1 teacher-kNN agreement: ok" in ln for ln in lines)
    (first,) = store.attempts(out.session_id)
    request = first.transcript[0]["request"]
    assert request["analysis"] == {"knn_teacher_agreement": agreement}  # the decision's input, recorded

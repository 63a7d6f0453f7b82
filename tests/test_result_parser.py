"""The result parser cannot be crashed: bounded JSON frames, a declared ``invalid`` for every
malformed one, an evaluator that keeps working after each kind of bad frame, and nothing
scored that arrives after the runtime's end frame."""

from __future__ import annotations

import io
import os
import re
import threading

import numpy as np
import pytest

from sandbox.execution.run_output import (
    MAX_INT_DIGITS,
    MAX_JSON_DEPTH,
    NO_END,
    ResultCapture,
    ResultProblem,
    bounded_json,
    collect,
)
from sandbox.isolation.registry import get_isolation
from sandbox.scoring.evaluator import Evaluator

BWRAP_OK, BWRAP_WHY = get_isolation("bwrap").available()


def _frames(*pairs: tuple[str, bytes]) -> bytes:
    return b"".join(f"{name} {len(data)}\n".encode() + data for name, data in pairs)


@pytest.mark.parametrize("doc, why", [
    (b'{"n": ' + b"9" * 5000 + b"}", "integer of 5000 digits"),
    (b'{"n": -' + b"9" * (MAX_INT_DIGITS + 1) + b"}", "digits"),
    (b'{"n": 1.' + b"5" * 5000 + b"}", "number of"),
    (b"[" * 100_000 + b"]" * 100_000, f"deeper than {MAX_JSON_DEPTH}"),
    (b'{"' + b"k" * 300 + b'": 1}', "a key of 300"),
    (b'{"a": "' + b"x" * 20_000 + b'"}', "a string of 20000"),
    (b'{"a": ', "not valid JSON"),
])
def test_bounded_json_refuses_each_oversize_with_one_line(doc, why):
    with pytest.raises(ResultProblem) as info:
        bounded_json(doc, "diagnostics.json")
    assert why in str(info.value) and "\n" not in str(info.value)


def test_bounded_json_keeps_ordinary_documents():
    assert bounded_json(b'{"a": [1, 2.5, "x", {"b": -3}], "s": "[{not nesting"}') == {
        "a": [1, 2.5, "x", {"b": -3}], "s": "[{not nesting"}
    deep_ok = b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH
    assert bounded_json(deep_ok) is not None


def test_a_huge_integer_in_any_frame_is_the_seeds_invalid_status():
    huge = b'{"kind": "error", "message": ' + b"7" * 5000 + b"}"
    out = collect({"error.json": huge, "end": b""}, 2)
    assert out.status == "invalid" and "error.json" in out.error and "digits" in out.error
    buf = io.BytesIO()
    np.save(buf, np.zeros((3, 2)))
    huge = b'{"x": ' + b"1" * 5000 + b"}"
    out = collect({"predictions.npy": buf.getvalue(), "diagnostics.json": huge, "end": b""}, 0)
    assert out.status == "invalid" and "diagnostics.json" in out.error


def test_frames_after_the_end_frame_are_not_read_and_no_end_is_not_scored():
    read, write = os.pipe()
    capture = ResultCapture(read, cap=10_000)
    capture.start()
    os.write(write, _frames(("error.json", b"{}"), ("end", b""), ("predictions.npy", b"late")))
    capture.stop()
    os.close(write)
    files, problem = capture.frames()
    assert problem is None and files == {"error.json": b"{}", "end": b""}
    out = collect({"predictions.npy": b"\x93NUMPY"}, 0)  # no end frame: nothing the main process finished
    assert out.status == "invalid" and out.error == NO_END


# The idea sends frames itself (fd 3), as the runtime would, then ends without the runtime.
FORGE = """import io, os, time
import numpy as np

def frame(name, body):
    os.write(3, f"{name} {len(body)}\\n".encode() + body)

def predictions(ctx):
    buf = io.BytesIO()
    np.save(buf, np.asarray(ctx.weak_test_probs))
    return buf.getvalue()

def run(ctx):
"""
HUGE_REPORT = FORGE + "    ctx.report('n', 10 ** 5000)\n    return ctx.weak_test_probs\n"
FORGED_DIAGNOSTIC = FORGE + ("    frame('predictions.npy', predictions(ctx))\n"
                             "    frame('diagnostics.json', b'{\"n\": ' + b'9' * 5000 + b'}')\n"
                             "    frame('end', b'')\n    os._exit(0)\n")
FORGED_ERROR = FORGE + ("    frame('error.json', b'{\"kind\": \"error\", \"message\": ' + b'9' * 5000 + b'}')\n"
                        "    frame('end', b'')\n    os._exit(2)\n")
DEEP = FORGE + ("    frame('predictions.npy', predictions(ctx))\n"
                "    frame('diagnostics.json', b'[' * 30000 + b']' * 30000)\n    frame('end', b'')\n    os._exit(0)\n")
LATE = FORGE + ("    data = predictions(ctx)\n    if os.fork() == 0:\n        os.setsid()\n        time.sleep(0.3)\n"
                "        frame('predictions.npy', data)\n        frame('end', b'')\n        os._exit(0)\n"
                "    os._exit(0)\n")
NORMAL = "def run(ctx):\n    return ctx.weak_test_probs\n"


@pytest.mark.skipif(not BWRAP_OK, reason=f"bwrap unavailable: {BWRAP_WHY}")
def test_an_evaluator_reused_after_each_kind_of_bad_frame_keeps_working(small_cache, idea_file):
    """One evaluator (one warm worker, one slot) runs every bad frame, then a normal idea: a
    lost permit or slot would hang the next evaluation (a thread with a deadline tells)."""
    evaluator = Evaluator(small_cache, isolation="bwrap", time_budget_s=30, parallel=1)
    cases = [(HUGE_REPORT, "ok", ""), (FORGED_DIAGNOSTIC, "invalid", "digits"), (FORGED_ERROR, "invalid", "digits"),
             (DEEP, "invalid", "deeper than"), (LATE, "invalid", "no end frame"), (NORMAL, "ok", "")]
    for i, (code, status, why) in enumerate(cases):
        path = idea_file(code, f"case{i}.py")
        box: dict = {}
        thread = threading.Thread(target=lambda p=path, b=box: b.update(
            r=evaluator.evaluate(p, [0, 1], compare_vanilla=False, charge=False)), daemon=True)
        thread.start()
        thread.join(120)
        assert not thread.is_alive(), f"case {i} hung: a slot or permit was not returned"
        seeds = box["r"].seeds
        if i == 0:  # the runtime keeps a report it could not send as JSON, as a short string
            assert all("bits" in str(seed.diagnostics.get("n")) for seed in seeds), seeds[0].diagnostics
        for seed in seeds:
            assert seed.status == status, (i, seed.status, seed.error)
            assert re.search(why, seed.error or ""), (i, seed.error)

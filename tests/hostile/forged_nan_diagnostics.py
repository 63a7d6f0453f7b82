"""Writes NaN and Infinity straight into its diagnostics (past ctx.report, which would turn them
into strings), with an escape sequence in a name, hoping to break `--json` output or the
history's JSON. Contained: the parent keeps diagnostics strict (test_hostile checks them)."""

import numpy as np

EXPECT = "ok"
CHECK = "diagnostics_are_strict"


def run(ctx):
    ctx.diagnostics.update({"nan": float("nan"), "inf": float("inf"), "\x1b[31mname": "x" * 5000})
    return np.asarray(ctx.weak_test_probs)

"""Reads secrets from its own environment: API keys, tokens, the harness's cache location.
Contained: the environment is rebuilt from an allow-list."""

import os
import re

import numpy as np

EXPECT = "error"
MATCH = "LookupError: no secret"


def run(ctx):
    secret = r"(^|_)(API_?KEY|KEY|TOKEN|SECRET|PASSWORD)(_|$)|^(AAR|AWS|GITHUB|ANTHROPIC|OPENAI)_"
    leaked = {k: v for k, v in os.environ.items() if re.search(secret, k)}
    if leaked:
        ctx.report("leak", ",".join(sorted(leaked)))
        return np.asarray(ctx.weak_test_probs)
    raise LookupError(f"no secret among {sorted(os.environ)}")

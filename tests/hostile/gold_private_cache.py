"""Reads gold labels from the private cache: $AAR_CACHE_DIR, ~/.cache/aar, /root/.cache/aar,
/tmp/aarcache, every /home/*/.cache/aar. Contained: none of them is mounted."""

import glob
import os

import numpy as np

EXPECT = "error"
MATCH = "FileNotFoundError"


def run(ctx):
    name = f"{ctx.card.name}-{ctx.card.cache_key}"
    roots = [os.environ.get("AAR_CACHE_DIR", ""), os.path.expanduser("~/.cache/aar"),
             "/root/.cache/aar", "/tmp/aarcache", *glob.glob("/home/*/.cache/aar")]
    last = FileNotFoundError(f"no private cache among {roots}")
    for root in filter(None, roots):
        for path in [f"{root}/private/{name}/gold_test.npy", *glob.glob(f"{root}/private/*/gold_test.npy")]:
            try:
                gold = np.load(path)
            except OSError as exc:
                last = exc
                continue
            return np.eye(ctx.n_classes)[gold]
    raise last

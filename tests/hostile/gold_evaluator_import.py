"""Imports the trusted evaluator and the cache module to read gold labels through them.
Contained: only sandbox.runtime is mounted; sandbox.scoring.evaluator and sandbox.cache.task_cache do not exist."""

import numpy as np

EXPECT = "denied"
MATCH = "No module named 'sandbox.(cache|evaluator)'"


def run(ctx):
    from sandbox.cache.task_cache import TaskCache  # noqa: F401
    from sandbox.scoring.evaluator import Evaluator

    evaluator = Evaluator.__new__(Evaluator)
    return np.eye(ctx.n_classes)[evaluator._gold]

"""Tries to poison the warm worker, so that every later seed (of this attempt or the next) runs
a tampered runtime: rewrites the runtime's source in place, writes into the worker's memory
through /proc/<worker>/mem, and signals the worker. Contained: the runtime is a read-only bind,
the seed has another uid than the worker and no capabilities, and its own patches live only in
its own forked process."""

import os
import signal

import numpy as np

import sandbox.runtime.optim as optim

EXPECT = "denied"
MATCH = "no way into the warm worker"


def run(ctx):
    worker, failures = os.getppid(), []
    attempts = {
        "source": lambda: open(optim.__file__, "a").write("\nLeanAdamW = None\n"),
        "memory": lambda: open(f"/proc/{worker}/mem", "r+b").write(b"\0"),
        "signal": lambda: os.kill(worker, signal.SIGSTOP),
    }
    for name, attack in attempts.items():
        try:
            attack()
        except OSError as exc:
            failures.append(f"{name}: {type(exc).__name__}")
            continue
        ctx.report("poisoned", name)
        return np.asarray(ctx.weak_test_probs)  # success shows: a scored run
    raise PermissionError("no way into the warm worker: " + ", ".join(failures))

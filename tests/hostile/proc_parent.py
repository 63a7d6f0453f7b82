"""Uses /proc of its parent and of pid 1: environ, cmdline (to learn host paths), mem, and the
cwd / root links to reach the host file system. Contained: a private PID namespace whose only
other process is bwrap's init, no private path mounted, root links lead back to the sandbox."""

import os
import re

import numpy as np

EXPECT = "error|denied"
MATCH = "FileNotFoundError|PermissionError"


def _read(path, n=1 << 20):
    with open(path, "rb") as fh:
        return fh.read(n)


def run(ctx):
    ppid = os.getppid()
    text = b""
    for pid in dict.fromkeys([ppid, 1]):
        for name in ("environ", "cmdline"):
            try:
                text += _read(f"/proc/{pid}/{name}") + b"\0"
            except OSError:
                pass
    try:
        _read(f"/proc/{ppid}/mem", 4096)
    except OSError:
        pass
    hosts = {m.decode() for m in re.findall(rb"(/[^\0 ]*)/public/[^\0/ ]+", text)}
    name = f"{ctx.card.name}-{ctx.card.cache_key}"
    candidates = [f"/proc/{ppid}/root{h}/private/{name}/gold_test.npy" for h in hosts]
    candidates += [f"{h}/private/{name}/gold_test.npy" for h in hosts]
    candidates += [f"/proc/{ppid}/cwd/../private/{name}/gold_test.npy",
                   f"/proc/1/root/tmp/aarcache/private/{name}/gold_test.npy"]
    last = FileNotFoundError(f"no gold via /proc: {candidates}")
    for path in candidates:
        try:
            return np.eye(ctx.n_classes)[np.load(path)]
        except OSError as exc:
            last = exc
    raise last

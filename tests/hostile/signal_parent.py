"""Signals its parent, its process group and pid 1 (SIGSTOP, SIGKILL), hoping to kill or freeze
the harness. Contained: its parent is bwrap's init inside a private PID namespace (signals from
inside are refused as root, ignored in a user namespace); the harness is not visible."""

import os
import signal

EXPECT = "denied|error"
MATCH = r"PermissionError|parent survived"


def run(ctx):
    ppid = os.getppid()
    targets = [(ppid, signal.SIGSTOP), (ppid, signal.SIGKILL), (1, signal.SIGKILL)]
    for pid, sig in targets:
        os.kill(pid, sig)
    os.killpg(os.getpgid(ppid), signal.SIGKILL)
    os.kill(ppid, 0)
    raise RuntimeError(f"parent survived: pid {ppid} is alive after SIGKILL")

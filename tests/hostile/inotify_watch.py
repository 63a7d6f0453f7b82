"""Watches the shared public files with inotify (another run opening or reading them is a
signal), then tries fanotify and a directory F_NOTIFY. Contained: the seccomp filter refuses
them all."""

import ctypes
import os

import numpy as np

EXPECT = "denied"
MATCH = "PermissionError"


def run(ctx):
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.inotify_init1(0)
    if fd < 0:
        err = ctypes.get_errno()
        raise PermissionError(err, f"inotify_init1: {os.strerror(err)}")
    libc.inotify_add_watch(fd, str(ctx.public_dir / "card.json").encode(), 0xFFF)
    return np.asarray(ctx.weak_test_probs)

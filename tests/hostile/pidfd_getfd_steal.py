"""Opens a pidfd on its worker and copies the worker's descriptors into itself (pidfd_getfd):
the control pipe, other seeds' result FIFOs. Contained: pidfd_getfd is refused by seccomp."""

import ctypes
import os

import numpy as np

EXPECT = "denied"
MATCH = r"pidfd_getfd: \[Errno 1\]"
NR_PIDFD_GETFD = 438


def run(ctx):
    libc = ctypes.CDLL(None, use_errno=True)
    try:
        pidfd = os.pidfd_open(os.getppid())
    except OSError:
        pidfd = os.pidfd_open(os.getpid())
    for target in range(0, 16):
        fd = libc.syscall(NR_PIDFD_GETFD, pidfd, target, 0)
        err = ctypes.get_errno()
        if fd >= 0:
            return np.asarray(ctx.weak_test_probs)  # got one of the worker's descriptors
        if err == 1:
            raise OSError(err, f"pidfd_getfd: [Errno {err}] {os.strerror(err)}")
    raise OSError(err, f"pidfd_getfd failed otherwise: [Errno {err}] {os.strerror(err)}")

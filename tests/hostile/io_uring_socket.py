"""Sets up an io_uring (socket() is refused by seccomp, but IORING_OP_SOCKET makes sockets in
the kernel, past the filter) to serve its weak teacher to the other seeds of its worker over an
abstract unix socket. Contained: io_uring_setup, _enter and _register are refused whole."""

import ctypes
import os

import numpy as np

EXPECT = "error"
MATCH = r"io_uring_setup: \[Errno 38\]"
NR_IO_URING_SETUP = 425  # the same number on x86_64 and aarch64


def run(ctx):
    libc = ctypes.CDLL(None, use_errno=True)
    params = ctypes.create_string_buffer(120)  # struct io_uring_params, zeroed
    fd = libc.syscall(NR_IO_URING_SETUP, 8, params)
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"io_uring_setup: [Errno {err}] {os.strerror(err)}")
    return np.asarray(ctx.weak_test_probs)  # a ring: the channel is open

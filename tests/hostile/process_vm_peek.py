"""Reads another process's memory with process_vm_readv (the worker that holds every seed's
plan, or a concurrent seed with its teacher loaded), the way a debugger would. Contained: the
call is refused by the seccomp filter (and ptrace rules would refuse it across uids)."""

import ctypes
import os

import numpy as np

EXPECT = "denied"
MATCH = r"process_vm_readv: \[Errno 1\]"
NR = {"x86_64": 310, "aarch64": 270}


class IoVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


def run(ctx):
    libc = ctypes.CDLL(None, use_errno=True)
    buf = ctypes.create_string_buffer(64)
    local = IoVec(ctypes.cast(buf, ctypes.c_void_p), 64)
    remote = IoVec(0x400000, 64)
    got = libc.syscall(NR[os.uname().machine], os.getppid(), ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
    err = ctypes.get_errno()
    if got < 0 and err in (1, 13, 38):  # refused (EFAULT would mean the call itself went through)
        raise OSError(err, f"process_vm_readv: [Errno {err}] {os.strerror(err)}")
    return np.asarray(ctx.weak_test_probs)

"""A seccomp filter for idea processes: no covert channels through the kernel's shared objects.

Concurrent runs see the same read-only public files; a lock on one (flock, fcntl record locks,
leases) or a watch on it (inotify, fanotify, F_NOTIFY) would let runs signal each other, and so
would System V / POSIX IPC or sockets where seeds share a namespace. The filter makes those
calls fail with an errno (never kills: libraries that merely try keep working), refuses new
namespaces (root mode has no user namespace of its own for bwrap's --disable-userns, so this
is the same guarantee there), and a few kernel surfaces an idea has no use for. io_uring (which
would do all of the above in the kernel, unfiltered), reaching into other processes (ptrace,
process_vm_*, pidfd_getfd, kcmp) and the page-cache residency probes and evictions (mincore,
cachestat, preadv2 with RWF_NOWAIT, fadvise DONTNEED, madvise COLD/PAGEOUT) are refused too.

Built by hand as classic BPF (struct sock_filter) for x86_64 and aarch64; bwrap loads it from
a file descriptor (``--seccomp FD``). Elsewhere ``program()`` returns None and the runner says
the filter is not enforced.
"""

from __future__ import annotations

import errno
import os
import platform
import struct

# seccomp_data: nr (u32 @0), arch (u32 @4), ip (u64 @8), args[6] (u64 @16 + 8 i)
_LD_ABS, _JEQ, _JGE, _JSET, _RET = 0x20, 0x15, 0x35, 0x45, 0x06
RET_ALLOW = 0x7FFF0000
RET_KILL_PROCESS = 0x80000000
X32_BIT = 0x40000000


def _ret_errno(code: int) -> int:
    return 0x00050000 | code


ARCHES = {  # machine -> (AUDIT_ARCH, syscall numbers)
    "x86_64": (0xC000003E, {
        "flock": 73, "fcntl": 72, "inotify_init": 253, "inotify_init1": 294, "fanotify_init": 300,
        "socket": 41, "shmget": 29, "msgget": 68, "semget": 64, "mq_open": 240, "unshare": 272,
        "clone": 56, "clone3": 435, "setns": 308, "perf_event_open": 298, "userfaultfd": 323,
        "bpf": 321, "add_key": 248, "request_key": 249, "keyctl": 250,
        "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
        "process_vm_readv": 310, "process_vm_writev": 311, "pidfd_getfd": 438, "kcmp": 312,
        "ptrace": 101, "mincore": 27, "cachestat": 451,
        "preadv2": 327, "pwritev2": 328, "fadvise64": 221, "madvise": 28,
    }),
    "aarch64": (0xC00000B7, {
        "flock": 32, "fcntl": 25, "inotify_init1": 26, "fanotify_init": 262, "socket": 198,
        "shmget": 194, "msgget": 186, "semget": 190, "mq_open": 180, "unshare": 97, "clone": 220,
        "clone3": 435, "setns": 268, "perf_event_open": 241, "userfaultfd": 282, "bpf": 280,
        "add_key": 217, "request_key": 218, "keyctl": 219,
        "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
        "process_vm_readv": 270, "process_vm_writev": 271, "pidfd_getfd": 438, "kcmp": 272,
        "ptrace": 117, "mincore": 232, "cachestat": 451,
        "preadv2": 286, "pwritev2": 287, "fadvise64": 223, "madvise": 233,
    }),
}
# Whole calls refused, with the errno the caller sees.
DENY = {
    "flock": errno.ENOLCK, "inotify_init": errno.EPERM, "inotify_init1": errno.EPERM,
    "fanotify_init": errno.EPERM, "socket": errno.EACCES, "shmget": errno.EPERM, "msgget": errno.EPERM,
    "semget": errno.EPERM, "mq_open": errno.EPERM, "unshare": errno.EPERM, "setns": errno.EPERM,
    "clone3": errno.ENOSYS,  # its flags live in memory a filter cannot read: libc falls back to clone
    "perf_event_open": errno.EPERM, "userfaultfd": errno.EPERM, "bpf": errno.EPERM,
    "add_key": errno.EPERM, "request_key": errno.EPERM, "keyctl": errno.EPERM,
    # io_uring does in the kernel what the filter refuses as calls (IORING_OP_SOCKET, OPENAT,
    # FADVISE, ...), out of the filter's sight: refused whole, so ENOSYS-style fallbacks run.
    "io_uring_setup": errno.ENOSYS, "io_uring_enter": errno.ENOSYS, "io_uring_register": errno.ENOSYS,
    # Reaching into another process's memory or descriptors (the same objects a socket would).
    "process_vm_readv": errno.EPERM, "process_vm_writev": errno.EPERM, "pidfd_getfd": errno.EPERM,
    "kcmp": errno.EPERM, "ptrace": errno.EPERM,
    # Page-cache residency of shared read-only files is a channel between runs: no probing it.
    "mincore": errno.EPERM, "cachestat": errno.ENOSYS,
}
# fcntl commands refused: record and open-file-description locks, leases, directory notices.
FCNTL_DENY = (5, 6, 7, 36, 37, 38, 1024, 1026)  # F_GETLK F_SETLK F_SETLKW F_OFD_* F_SETLEASE F_NOTIFY
CLONE_NEWNS_FLAGS = 0x7E020000  # NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET
RWF_NOWAIT = 0x8  # preadv2 flag: fail instead of reading from disk, i.e. a residency probe
FADV_DONTNEED = 4  # evicts a shared file's pages: the sending half of the page-cache channel
MADV_COLD, MADV_PAGEOUT = 20, 21  # the same through a mapping


def _ins(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("<HBBI", code, jt, jf, k)


# Calls refused only for some argument values: call -> (argument index, test, values, errno);
# test "eq" refuses an argument equal to a value, "set" one with any of the value's bits set.
ARG_RULES = {
    "fcntl": (1, "eq", FCNTL_DENY, errno.ENOLCK),
    "clone": (0, "set", (CLONE_NEWNS_FLAGS,), errno.EPERM),
    "preadv2": (5, "set", (RWF_NOWAIT,), errno.EOPNOTSUPP),
    "pwritev2": (5, "set", (RWF_NOWAIT,), errno.EOPNOTSUPP),
    "fadvise64": (3, "eq", (FADV_DONTNEED,), errno.EPERM),
    "madvise": (2, "eq", (MADV_COLD, MADV_PAGEOUT), errno.EPERM),
}


def _arg_block(index: int, test: str, values: tuple[int, ...], code: int) -> list[bytes]:
    """Load argument ``index`` (low 32 bits), refuse on a match, else allow (the accumulator
    no longer holds the call number, so the block always ends in a return)."""
    block = [_ins(_LD_ABS, 16 + 8 * index)]
    for value in values:
        block += [_ins(_JSET if test == "set" else _JEQ, value, 0, 1), _ins(_RET, _ret_errno(code))]
    return [*block, _ins(_RET, RET_ALLOW)]


def program(machine: str | None = None) -> bytes | None:
    """The filter for this machine's architecture, or None where it is not known."""
    arch = ARCHES.get(machine or platform.machine())
    if arch is None:
        return None
    audit_arch, numbers = arch
    denied = [(numbers[name], code) for name, code in DENY.items() if name in numbers]
    # Layout: header, one test+return pair per denied call, then per argument rule a test
    # that skips its block unless the call matches, then allow.
    head = [_ins(_LD_ABS, 4), _ins(_JEQ, audit_arch, 1, 0), _ins(_RET, RET_KILL_PROCESS),
            _ins(_LD_ABS, 0), _ins(_JGE, X32_BIT, 0, 1), _ins(_RET, _ret_errno(errno.ENOSYS))]
    body: list[bytes] = []
    for nr, code in denied:
        body += [_ins(_JEQ, nr, 0, 1), _ins(_RET, _ret_errno(code))]
    for name, rule in ARG_RULES.items():
        if name in numbers:
            block = _arg_block(*rule)
            body += [_ins(_JEQ, numbers[name], 0, len(block)), *block]
    return b"".join([*head, *body, _ins(_RET, RET_ALLOW)])


def sealed_fd(data: bytes) -> int:
    """A read-only file descriptor holding ``data`` (bwrap reads the filter from it)."""
    fd = os.memfd_create("aar-seccomp", os.MFD_CLOEXEC)
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd

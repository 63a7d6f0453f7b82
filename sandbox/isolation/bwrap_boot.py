"""First code run inside the bubblewrap sandbox, before the warm worker (stdlib only).

``python -s -S -P /aar/boot.py PATHS`` where PATHS is the ``os.pathsep``-joined ``sys.path``
to use. As root (one sandbox holds several seeds, each slot under a uid of its own) it first
remounts the sandbox's /proc with ``hidepid=invisible``, so a seed sees only its own uid's
processes (no other seed's thread names, command lines or status), then gives up the two
capabilities that took (CAP_SYS_ADMIN, CAP_SETPCAP) for good: out of the bounding set and out
of every set it holds. Then hands over to ``sandbox.runtime.worker``, which drops every seed's
child to its own unprivileged uid before any idea code runs.
"""

from __future__ import annotations

import ctypes
import os
import struct
import sys

EXIT_BOOT = 70
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 0x2, 0x4, 0x8, 0x20  # bwrap's flags for its /proc
PR_CAPBSET_DROP = 24
CAP_SETPCAP, CAP_SYS_ADMIN = 8, 21
CAPS_V3 = 0x20080522  # _LINUX_CAPABILITY_VERSION_3: two 32-bit words per set
HIDEPID = "hidepid=invisible"


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _fail(what: str) -> None:
    err = ctypes.get_errno()
    raise OSError(err, f"boot: {what}: {os.strerror(err)}")


def hide_other_processes(libc: ctypes.CDLL) -> None:
    """Remount /proc (this sandbox's own instance) so only a process's own uid's pids show."""
    flags = MS_REMOUNT | MS_NOSUID | MS_NODEV | MS_NOEXEC
    if libc.mount(b"proc", b"/proc", b"proc", ctypes.c_ulong(flags), HIDEPID.encode()) != 0:
        _fail("remounting /proc with hidepid")
    with open("/proc/self/mountinfo") as fh:
        options = [
            line.split(" - ", 1)[1] for line in fh if line.split()[4] == "/proc" and " - " in line
        ]
    if not options or not any(HIDEPID in o or "hidepid=2" in o for o in options[-1:]):
        raise OSError(f"boot: /proc is not hidepid=invisible after the remount ({options[-1:]})")


def drop_mount_capabilities(libc: ctypes.CDLL) -> None:
    """CAP_SYS_ADMIN and CAP_SETPCAP leave the bounding set (no exec brings them back) and the
    effective, permitted and inheritable sets; the worker keeps only what bwrap gave it besides."""
    for cap in (CAP_SYS_ADMIN, CAP_SETPCAP):  # SETPCAP last: dropping needs it
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            _fail(f"dropping capability {cap} from the bounding set")
    header = ctypes.create_string_buffer(struct.pack("<Ii", CAPS_V3, 0))
    data = ctypes.create_string_buffer(24)
    if libc.capget(header, data) != 0:
        _fail("capget")
    words = list(struct.unpack("<6I", data.raw))  # (effective, permitted, inheritable) x 2 words
    mask = ~((1 << CAP_SYS_ADMIN) | (1 << CAP_SETPCAP)) & 0xFFFFFFFF
    for i in (0, 1, 2):
        words[i] &= mask
    words[2] = words[5] = 0  # nothing inheritable across exec
    ctypes.memmove(data, struct.pack("<6I", *words), 24)
    if libc.capset(header, data) != 0:
        _fail("capset")


def private_process_view() -> None:
    """Root sandboxes only: a user-namespace sandbox holds one seed and its pid view is its own."""
    if os.geteuid() != 0:
        return
    libc = _libc()
    hide_other_processes(libc)
    drop_mount_capabilities(libc)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: boot.py PATHS", file=sys.stderr)
        return EXIT_BOOT
    try:
        private_process_view()
    except OSError as exc:  # fail closed: seeds of this sandbox would see each other
        print(f"{exc}; the sandbox refuses to start", file=sys.stderr)
        return EXIT_BOOT
    sys.path[:] = argv[1].split(os.pathsep)
    from sandbox.runtime.worker import main as worker_main

    return worker_main()


if __name__ == "__main__":
    sys.exit(main(sys.argv))

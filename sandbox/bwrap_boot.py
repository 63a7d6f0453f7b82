"""First code run inside the bubblewrap sandbox, before the idea runtime (stdlib only).

``python -s -S -P /aar/boot.py NPROC DROP PATHS JOB`` where DROP is ``UID:GID`` (root hosts:
switch to that unprivileged uid, so RLIMIT_NPROC applies) or ``-`` (already unprivileged in a
user namespace), and PATHS is the ``os.pathsep``-joined ``sys.path`` to use. Refuses to run
idea code as root. Then hands over to ``sandbox.runtime.entry``.
"""

from __future__ import annotations

import os
import resource
import sys

EXIT_BOOT = 70


def _drop_to(uid: int, gid: int) -> None:
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    try:
        os.setresuid(0, 0, 0)
    except PermissionError:
        return
    raise SystemExit("sandbox boot: could regain root after dropping it; refusing to run the idea")


def main(argv: list[str]) -> int:
    if len(argv) != 5:
        print("usage: boot.py NPROC UID:GID|- PATHS JOB", file=sys.stderr)
        return EXIT_BOOT
    nproc, drop, paths, job = int(argv[1]), argv[2], argv[3], argv[4]
    if drop != "-":
        uid, gid = (int(x) for x in drop.split(":"))
        _drop_to(uid, gid)
    if 0 in os.getresuid() or 0 in os.getresgid():
        print("sandbox boot: refusing to run idea code as root", file=sys.stderr)
        return EXIT_BOOT
    resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
    sys.path[:] = paths.split(os.pathsep)
    from sandbox.runtime.entry import main as entry_main

    return entry_main(["entry", job])


if __name__ == "__main__":
    sys.exit(main(sys.argv))

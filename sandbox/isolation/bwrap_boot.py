"""First code run inside the bubblewrap sandbox, before the warm worker (stdlib only).

``python -s -S -P /aar/boot.py PATHS`` where PATHS is the ``os.pathsep``-joined ``sys.path``
to use. Then hands over to ``sandbox.runtime.worker``,
which drops every seed's child to its own unprivileged uid before any idea code runs.
"""

from __future__ import annotations

import os
import sys

EXIT_BOOT = 70


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: boot.py PATHS", file=sys.stderr)
        return EXIT_BOOT
    sys.path[:] = argv[1].split(os.pathsep)
    from sandbox.runtime.worker import main as worker_main

    return worker_main()


if __name__ == "__main__":
    sys.exit(main(sys.argv))

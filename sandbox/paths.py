"""Where the harness keeps its caches (overridable by ``AAR_CACHE_DIR``)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    root = os.environ.get("AAR_CACHE_DIR") or Path.home() / ".cache" / "aar"
    return Path(root).expanduser()

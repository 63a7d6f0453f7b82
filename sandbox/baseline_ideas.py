"""The built-in baseline ideas: plain idea files written against the public contract."""

from __future__ import annotations

from pathlib import Path

BASELINES_DIR = Path(__file__).parent / "baselines"
# Order shown in tables: vanilla first, then the rest by name.
VANILLA_NAME = "vanilla_soft"


def baseline_files() -> list[Path]:
    files = sorted(BASELINES_DIR.glob("*.py"), key=lambda p: (p.stem != VANILLA_NAME, p.stem))
    return [p for p in files if not p.name.startswith("_")]


def baseline_path(name: str) -> Path:
    path = BASELINES_DIR / f"{name}.py"
    if not path.exists():
        names = ", ".join(p.stem for p in baseline_files())
        raise ValueError(f"unknown baseline {name!r}: use one of {names}")
    return path

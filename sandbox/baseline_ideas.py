"""The built-in baseline ideas: plain idea files written against the public contract.

Feature tasks use the plain files of ``baselines/``; fine-tune tasks the ``ft_*`` files."""

from __future__ import annotations

from pathlib import Path

BASELINES_DIR = Path(__file__).parent / "baselines"
FT_PREFIX = "ft_"
# The vanilla baseline of each task kind; shown first in tables, the rest by name.
VANILLA_NAMES = {"features": "vanilla_soft", "finetune": "ft_vanilla"}
VANILLA_NAME = VANILLA_NAMES["features"]


def vanilla_name(kind: str = "features") -> str:
    return VANILLA_NAMES[kind]


def baseline_files(kind: str = "features") -> list[Path]:
    """The baseline ideas of one task kind, vanilla first."""
    vanilla = vanilla_name(kind)
    files = sorted(BASELINES_DIR.glob("*.py"), key=lambda p: (p.stem != vanilla, p.stem))
    wanted = (kind == "finetune")
    return [p for p in files if not p.name.startswith("_") and p.stem.startswith(FT_PREFIX) == wanted]


def baseline_path(name: str) -> Path:
    path = BASELINES_DIR / f"{name}.py"
    if not path.exists():
        names = ", ".join(p.stem for kind in VANILLA_NAMES for p in baseline_files(kind))
        raise ValueError(f"unknown baseline {name!r}: use one of {names}")
    return path

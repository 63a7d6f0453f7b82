"""The isolations by name: ``bwrap`` (the default everywhere user-facing) and ``process``
(a plain child with resource limits only: unsafe, opt-in)."""

from __future__ import annotations

from collections.abc import Callable

from sandbox.isolation.base import Isolation
from sandbox.isolation.bwrap import BwrapIsolation

_ISOLATIONS: dict[str, Callable[[], Isolation]] = {"process": Isolation, "bwrap": BwrapIsolation}


def register_isolation(name: str, factory: Callable[[], Isolation]) -> None:
    _ISOLATIONS[name] = factory


def get_isolation(name: str) -> Isolation:
    if name not in _ISOLATIONS:
        raise ValueError(f"unknown isolation {name!r}: use one of {', '.join(sorted(_ISOLATIONS))}")
    return _ISOLATIONS[name]()


def isolation_names() -> list[str]:
    return sorted(_ISOLATIONS)

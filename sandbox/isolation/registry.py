"""The isolations by name: ``bwrap`` (the default everywhere user-facing) and ``process``
(a plain child with resource limits only: unsafe, opt-in)."""

from __future__ import annotations

from collections.abc import Callable

from sandbox.isolation.base import Isolation
from sandbox.isolation.bwrap import BwrapIsolation
from sandbox.registry import Registry

ISOLATIONS: Registry[Callable[[], Isolation]] = Registry("isolation")
ISOLATIONS.add("process", Isolation)
ISOLATIONS.add("bwrap", BwrapIsolation)
register_isolation = ISOLATIONS.register


def get_isolation(name: str) -> Isolation:
    """A new isolation by name; ``UnknownNameError`` (one line) if unknown."""
    return ISOLATIONS.get(name)()


def list_isolations() -> list[str]:
    return ISOLATIONS.names()

"""One registry shape for every pluggable concept (tasks, encoders, isolations, executors,
proposers): ``register`` / ``get`` / ``names``, and one error for a name nobody registered."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from sandbox.errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """Named entries of one kind (``kind`` is the word error messages use, e.g. "executor")."""

    def __init__(self, kind: str, hint: str = "") -> None:
        self.kind = kind
        self.hint = hint  # what else a name may be, appended to the error (e.g. "a local model directory")
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: ``@registry.register("name")`` over a factory or class."""

        def deco(entry: T) -> T:
            self._entries[name] = entry
            return entry

        return deco

    def add(self, name: str, entry: T) -> None:
        self._entries[name] = entry

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def names(self) -> list[str]:
        return sorted(self._entries)

    def get(self, name: str) -> T:
        """The entry registered as ``name``; ``UnknownNameError`` (one line, the known names) if none."""
        if name not in self._entries:
            raise self.unknown(name)
        return self._entries[name]

    def unknown(self, name: str) -> UnknownNameError:
        extra = f", {self.hint}" if self.hint else ""
        return UnknownNameError(f"unknown {self.kind} {name!r}: use one of {', '.join(self.names())}{extra}")

"""The researcher's workspace on a run's import path, read-only: its files travel inside the
run's entry file and are served to ``import`` from memory, so an idea or an analysis can use the
researcher's helper modules and nothing it does can change them (there is no file to write).

``helpers.py`` imports as ``helpers``, ``lib/plots.py`` as ``lib.plots`` (a folder is a package,
with or without ``__init__.py``). The finder sits after Python's own, so a workspace file named
like an installed module (``numpy.py``) does not replace it. Tracebacks name ``workspace/<path>``
and show its lines.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import linecache
import sys
from types import ModuleType

PREFIX = "workspace/"


class WorkspaceFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds and loads modules from ``{relative path: source}``."""

    def __init__(self, files: dict[str, str]) -> None:
        self.files = files
        self.modules: dict[str, tuple[str | None, bool]] = {}  # name -> (path or None: a bare folder, package?)
        for rel in files:
            if not rel.endswith(".py"):
                continue
            parts = rel[:-3].split("/")
            if not all(p.isidentifier() for p in parts):
                continue
            for k in range(1, len(parts)):
                self.modules.setdefault(".".join(parts[:k]), (None, True))
            if parts[-1] == "__init__" and len(parts) > 1:
                self.modules[".".join(parts[:-1])] = (rel, True)
            elif parts[-1] != "__init__":
                self.modules[".".join(parts)] = (rel, False)

    def find_spec(self, fullname: str, path: object = None,
                  target: object = None) -> importlib.machinery.ModuleSpec | None:
        found = self.modules.get(fullname)
        if found is None:
            return None
        rel, package = found
        spec = importlib.machinery.ModuleSpec(fullname, self, origin=PREFIX + (rel or fullname.replace(".", "/")),
                                              is_package=package)
        if package:
            spec.submodule_search_locations = []
        spec.has_location = rel is not None
        return spec

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        rel, _ = self.modules[module.__name__]
        if rel is None:
            return
        source = self.files[rel]
        filename = PREFIX + rel
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        module.__file__ = filename
        exec(compile(source, filename, "exec"), module.__dict__)  # noqa: S102 - the researcher's code, sandboxed


def install(files: dict[str, str]) -> None:
    """Put the workspace's modules on the import path (once per process)."""
    if files and not any(isinstance(f, WorkspaceFinder) for f in sys.meta_path):
        sys.meta_path.append(WorkspaceFinder(files))


def load_entry(source: str, filename: str) -> ModuleType:
    """The idea's entry file as the module ``idea`` (its tracebacks name ``filename``)."""
    module = ModuleType("idea")
    module.__file__ = filename
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    sys.modules["idea"] = module
    exec(compile(source, filename, "exec"), module.__dict__)  # noqa: S102 - the researcher's code, sandboxed
    return module


__all__ = ["WorkspaceFinder", "install", "load_entry"]

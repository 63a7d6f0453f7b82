"""The researcher's workspace: a small, size-capped tree of files that belongs to one session
branch (one researcher), edited through the file tools and committed to the lab as a git tree
with every attempt and every saved state.

It lives in memory as ``relative path -> bytes`` and in git as a tree: content-addressed, so a
file nobody changed costs nothing in a new commit. Paths are confined by construction: only
relative names of plain characters, no ``..``, no absolute paths, and the tree read back from git
may hold plain files only (a symlink or submodule entry is refused), so nothing in it can point
outside. Every refusal is a one-line ``WorkspaceError`` the model reads and can act on.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, Field

from experiments.gitobjects import BLOB_MODE, TREE_MODE, GitObjects
from experiments.layout import WORKSPACE_DIR, StoreError

EXEC_MODE = 0o100755
_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,99}$")


class WorkspaceError(StoreError):
    """A file-tool call that cannot be done; the message says what to do instead."""


class WorkspaceLimits(BaseModel):
    """Caps of one researcher's workspace (the file tools refuse what would pass them)."""

    max_file_bytes: int = Field(256 * 1024, ge=1, description="Largest single file.")
    max_total_bytes: int = Field(4 * 1024 * 1024, ge=1, description="All files together.")
    max_files: int = Field(200, ge=1, description="Number of files.")
    max_depth: int = Field(6, ge=1, description="Folders a path may nest.")
    max_view_chars: int = Field(60_000, ge=100, description="Characters one view returns before it is cut.")


def _kib(n: int) -> str:
    return f"{n / 1024:.1f} KiB" if n < 1024 * 1024 else f"{n / 1024 / 1024:.1f} MiB"


class Workspace:
    """One researcher's files; every edit is checked against the path rules and the caps."""

    def __init__(self, files: dict[str, bytes] | None = None, limits: WorkspaceLimits | None = None) -> None:
        self.limits = limits or WorkspaceLimits()
        self.files: dict[str, bytes] = dict(files or {})
        self._tree: bytes | None = None  # the git tree of the current files, once written

    # --- paths --------------------------------------------------------------------------
    def check_path(self, path: str, *, allow_root: bool = False) -> str:
        """The normalised relative path, or a WorkspaceError saying how to name it."""
        if not isinstance(path, str):
            raise WorkspaceError("path must be a string relative to the workspace, e.g. 'helpers.py'")
        text = path.strip()
        if text.startswith(("/", "~")) or re.match(r"^[A-Za-z]:[\\/]", text):
            raise WorkspaceError(f"path {_shown(path)} is absolute: give a path relative to the workspace, "
                                 "e.g. 'helpers.py' or 'lib/plots.py'")
        parts = [p for p in text.replace("\\", "/").split("/") if p not in ("", ".")]
        if ".." in parts:
            raise WorkspaceError(f"path {_shown(path)} leaves the workspace ('..'): paths stay inside it")
        if not parts:
            if allow_root:
                return ""
            raise WorkspaceError("give a file path relative to the workspace, e.g. 'helpers.py'")
        bad = next((p for p in parts if not _PART.match(p)), None)
        if bad is not None:
            raise WorkspaceError(f"path part {_shown(bad)} is not allowed: use letters, digits, '_', '-' and "
                                 "'.' (not first), at most 100 characters a part")
        if len(parts) > self.limits.max_depth:
            raise WorkspaceError(f"path {_shown(path)} nests {len(parts)} deep; the limit is {self.limits.max_depth}")
        return "/".join(parts)

    def is_dir(self, rel: str) -> bool:
        return rel == "" or any(name.startswith(rel + "/") for name in self.files)

    def _existing_file(self, path: str) -> str:
        rel = self.check_path(path)
        if rel not in self.files:
            hint = "it is a folder: view it to list its files" if self.is_dir(rel) else \
                "create it first, or view '.' to list the workspace"
            raise WorkspaceError(f"no file {rel!r} in the workspace: {hint}")
        return rel

    # --- reading ------------------------------------------------------------------------
    def text(self, path: str) -> str:
        rel = self._existing_file(path)
        try:
            return self.files[rel].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise WorkspaceError(f"{rel!r} is not UTF-8 text ({len(self.files[rel])} bytes); the file "
                                 "tools edit text files only") from exc

    def view(self, path: str, view_range: list[int] | None = None) -> str:
        """A file with line numbers (optionally lines ``[start, end]``, end -1: to the end), or a
        folder's listing."""
        rel = self.check_path(path, allow_root=True)
        if rel not in self.files and self.is_dir(rel):
            return self.listing(rel)
        lines = self.text(rel).split("\n")
        start, end = 1, len(lines)
        if view_range is not None:
            if len(view_range) != 2:
                raise WorkspaceError("view_range takes two numbers: [first line, last line] (-1: to the end)")
            start, end = view_range[0], len(lines) if view_range[1] == -1 else view_range[1]
            if not 1 <= start <= len(lines) or end < start or end > len(lines):
                raise WorkspaceError(f"view_range {view_range} does not fit {rel!r}, which has {len(lines)} "
                                     "lines: give [first, last] with 1 <= first <= last <= lines, or last -1")
        shown = "\n".join(f"{k:6d}\t{line}" for k, line in enumerate(lines[start - 1:end], start))
        if len(shown) > self.limits.max_view_chars:
            shown = shown[:self.limits.max_view_chars] + (
                f"\n[cut at {self.limits.max_view_chars:,} characters: view a smaller view_range]")
        return shown

    def listing(self, rel: str = "") -> str:
        prefix = f"{rel}/" if rel else ""
        names = sorted(n for n in self.files if n.startswith(prefix))
        where = rel or "the workspace"
        if not names:
            return f"{where} is empty ({self.usage_line()})"
        rows = [f"{n}  ({len(self.files[n]):,} bytes)" for n in names]
        return f"{where}: {len(names)} file(s)\n" + "\n".join(rows) + f"\n({self.usage_line()})"

    def text_files(self) -> dict[str, str]:
        """The files that are UTF-8 text (what a run can import), by path."""
        out = {}
        for rel, data in self.files.items():
            try:
                out[rel] = data.decode("utf-8")
            except UnicodeDecodeError:
                continue
        return out

    def identity(self) -> str:
        """The Python files' text, in path order: what makes a multi-file idea this idea."""
        return "\n".join(f"# {rel}\n{text}" for rel, text in sorted(self.text_files().items()) if rel.endswith(".py"))

    def usage_line(self) -> str:
        return (f"workspace: {len(self.files)}/{self.limits.max_files} files, "
                f"{_kib(self.total_bytes())} of {_kib(self.limits.max_total_bytes)}")

    def total_bytes(self) -> int:
        return sum(len(v) for v in self.files.values())

    # --- writing ------------------------------------------------------------------------
    def _put(self, rel: str, data: bytes) -> None:
        """Store one file after checking the caps and that no file and folder share a name."""
        lim = self.limits
        if len(data) > lim.max_file_bytes:
            raise WorkspaceError(f"{rel!r} would be {len(data):,} bytes; one file may hold {lim.max_file_bytes:,}: "
                                 "split it or keep less in it (nothing was written)")
        total = self.total_bytes() - len(self.files.get(rel, b"")) + len(data)
        if total > lim.max_total_bytes:
            raise WorkspaceError(f"the workspace would hold {total:,} bytes; its cap is {lim.max_total_bytes:,}: "
                                 "shorten or overwrite files you no longer need (nothing was written)")
        if rel not in self.files and len(self.files) >= lim.max_files:
            raise WorkspaceError(f"the workspace already has {len(self.files)} files, its cap: reuse a file "
                                 "(nothing was written)")
        if rel not in self.files and self.is_dir(rel):
            raise WorkspaceError(f"{rel!r} is a folder: pick another file name")
        parts = rel.split("/")
        clash = next(("/".join(parts[:k]) for k in range(1, len(parts)) if "/".join(parts[:k]) in self.files), None)
        if clash is not None:
            raise WorkspaceError(f"{clash!r} is a file, so {rel!r} cannot be below it: pick another path")
        self.files[rel] = data
        self._tree = None

    def create(self, path: str, text: str) -> str:
        rel = self.check_path(path)
        existed = rel in self.files
        self._put(rel, text.encode("utf-8"))
        verb = "overwrote" if existed else "created"
        return f"{verb} {rel} ({text.count(chr(10)) + 1} lines, {len(text.encode()):,} bytes; {self.usage_line()})"

    def str_replace(self, path: str, old: str, new: str) -> str:
        rel = self._existing_file(path)
        text = self.text(rel)
        if not old:
            raise WorkspaceError("old_str is empty: give the exact text to replace (it must occur once)")
        count = text.count(old)
        if count == 0:
            raise WorkspaceError(f"old_str does not occur in {rel!r}: view the file and copy the text exactly, "
                                 "whitespace included")
        if count > 1:
            raise WorkspaceError(f"old_str occurs {count} times in {rel!r}: include more surrounding lines so "
                                 "it occurs once")
        self._put(rel, text.replace(old, new, 1).encode("utf-8"))
        line = text[:text.index(old)].count("\n") + 1
        return f"edited {rel} at line {line} ({self.usage_line()})"

    def insert(self, path: str, line: int, new_text: str) -> str:
        """Insert ``new_text`` after line ``line`` (0: at the top)."""
        rel = self._existing_file(path)
        lines = self.text(rel).split("\n")
        if not 0 <= line <= len(lines):
            raise WorkspaceError(f"insert_line {line} is outside {rel!r}, which has {len(lines)} lines: "
                                 f"give 0 (the top) to {len(lines)}")
        lines[line:line] = new_text.split("\n")
        self._put(rel, "\n".join(lines).encode("utf-8"))
        return f"inserted {new_text.count(chr(10)) + 1} line(s) after line {line} of {rel} ({self.usage_line()})"

    def add_files(self, folder: str, files: dict[str, bytes]) -> list[str]:
        """Copy ``files`` below ``folder``, all or nothing (a cap that one file would pass leaves
        the workspace as it was); returns the paths written."""
        base = self.check_path(folder)
        trial = Workspace(self.files, self.limits)
        written = []
        for rel, data in sorted(files.items()):
            path = self.check_path(f"{base}/{rel}")
            trial._put(path, data)
            written.append(path)
        self.files, self._tree = trial.files, None
        return written

    # --- git ----------------------------------------------------------------------------
    def to_tree(self, objects: GitObjects) -> bytes | None:
        """The git tree of the files (None when empty); written once per change."""
        if not self.files:
            return None
        if self._tree is None:
            self._tree = _write_tree(objects, {k: v for k, v in self.files.items()})
        return self._tree

    @classmethod
    def from_tree(cls, objects: GitObjects, tree: bytes | None, limits: WorkspaceLimits | None = None) -> Workspace:
        """The workspace a committed tree holds; a symlink, submodule or bad name is refused."""
        files: dict[str, bytes] = {}
        if tree is not None:
            _read_tree(objects, tree, "", files)
        ws = cls(limits=limits)
        for rel in files:
            ws.check_path(rel)
        ws.files = files
        ws._tree = tree
        return ws

    def materialize(self, dest: Path) -> None:
        """Write the files below ``dest`` read-only (a copy the sandbox may read, not change)."""
        dest.mkdir(parents=True, exist_ok=True)
        for rel, data in sorted(self.files.items()):
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            target.chmod(0o444)
        for folder in sorted({p for p in dest.rglob("*") if p.is_dir()}, reverse=True):
            folder.chmod(0o555)
        dest.chmod(0o555)


def _write_tree(objects: GitObjects, files: dict[str, bytes]) -> bytes:
    here: dict[str, tuple[bytes, int]] = {}
    below: dict[str, dict[str, bytes]] = {}
    for rel, data in files.items():
        head, _, rest = rel.partition("/")
        if rest:
            below.setdefault(head, {})[rest] = data
        else:
            here[head] = (objects.blob(data), BLOB_MODE)
    for name, sub in below.items():
        here[name] = (_write_tree(objects, sub), TREE_MODE)
    return objects.tree(here)


def _read_tree(objects: GitObjects, tree: bytes, prefix: str, out: dict[str, bytes]) -> None:
    for name, (sha, mode) in objects.read_tree(tree).items():
        rel = f"{prefix}{name}"
        if mode == TREE_MODE:
            _read_tree(objects, sha, f"{rel}/", out)
        elif mode in (BLOB_MODE, EXEC_MODE):
            out[rel] = objects.read(sha, "blob")
        else:
            kind = "a symlink" if mode == 0o120000 else f"an entry of mode {mode:o}"
            raise WorkspaceError(f"the committed workspace holds {kind} at {rel!r}; workspaces hold plain "
                                 "files only: remove it from the lab branch or start a new session")


def _shown(text: str, limit: int = 80) -> str:
    """A name as the model may read it back: quoted, control characters escaped, cut."""
    quoted = repr(text)
    return quoted if len(quoted) <= limit else quoted[:limit] + "...'"


__all__ = ["WORKSPACE_DIR", "Workspace", "WorkspaceError", "WorkspaceLimits"]

"""Git plumbing for the lab: objects through GitPython's object database, refs by compare-and-swap.

Nothing here touches a working tree or the git index file. A writer stores blobs, trees and the
commit first and moves the branch ref last with ``git update-ref <ref> <new> <old>``, so a process
killed at any instant leaves at worst unreferenced objects behind.
"""

from __future__ import annotations

import errno
import getpass
import os
import re
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from io import BytesIO
from pathlib import Path
from typing import TypeVar

import git
from git.objects.fun import tree_entries_from_data, tree_to_stream
from gitdb.base import IStream
from gitdb.db import LooseObjectDB
from gitdb.exc import ODBError

from sandbox.errors import HarnessError

ZERO_SHA = "0" * 40
TREE_MODE = 0o040000
BLOB_MODE = 0o100644

READ_ERRORS = (ValueError, KeyError, git.GitError, ODBError)  # what a damaged object or ref raises
# ... and what reading a whole lab can raise besides: a damaged JSON file (pydantic's
# ValidationError is a ValueError), an unreadable file or index, text that is not UTF-8.
LAB_READ_ERRORS = (*READ_ERRORS, OSError, sqlite3.Error, UnicodeDecodeError)
STALE_LOCK_S = 5.0
LOCK_WAIT_S = 10.0
_LOCK_FILE = re.compile(r"Unable to create '([^']+\.lock)'")
_DISK_FULL = re.compile(r"No space left on device|Disk quota exceeded")
_BROKEN_REF = re.compile(r"ignoring (?:broken ref|ref with broken name) (\S+)")
_BYTES_REPR = re.compile(r"\bb(['\"])(.*?)\1")
_MISSING_OBJECT = re.compile(r"SHA ([0-9a-f]{40}) could not be resolved")
T = TypeVar("T")

Entry = tuple[bytes, int]  # (binary sha, mode)


class RefConflict(HarnessError):
    """A ref moved under us (another writer won the compare-and-swap)."""


def identity(repo: git.Repo) -> git.Actor:
    """The person behind this process: git config user.name/email, else $USER."""
    reader = repo.config_reader()
    name = str(reader.get_value("user", "name", "") or "").strip()
    email = str(reader.get_value("user", "email", "") or "").strip()
    if not name:
        name = os.environ.get("USER") or _login_name()
    return git.Actor(name, email)


def author_env(actor: git.Actor) -> dict[str, str]:
    """The environment that makes a git command author and commit as ``actor`` (notes, which
    git writes itself): an identity without an email gets ``name@localhost``."""
    name = actor.name or "unknown"
    email = actor.email or f"{name}@localhost"
    return {"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email,
            "GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": email}


def note_texts(repo: git.Repo, ref: str, read_blob: Callable[[bytes], bytes]) -> list[tuple[str, str]]:
    """``(annotated commit, note text)`` of every note under ``ref``."""
    out = []
    for line in repo.git.notes("--ref", ref, "list").splitlines():
        blob, _, commit = line.strip().partition(" ")
        if commit:
            out.append((commit, read_blob(bytes.fromhex(blob)).decode("utf-8")))
    return out


def _signature(actor: git.Actor, when: datetime) -> str:
    name, email = actor.name or "unknown", actor.email or ""
    if any(c in f"{name}{email}" for c in "<>\n"):
        raise HarnessError(f"git identity {name!r} <{email}> contains '<', '>' or a newline; fix git config")
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    offset = int((when.utcoffset() or timedelta(0)).total_seconds()) // 60
    sign, offset = ("-" if offset < 0 else "+"), abs(offset)
    return f"{name} <{email}> {int(when.timestamp())} {sign}{offset // 60:02d}{offset % 60:02d}"


def _login_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


class GitObjects:
    """Reads and writes raw git objects and refs of one repository."""

    def __init__(self, repo: git.Repo) -> None:
        self.repo = repo
        self._loose = LooseObjectDB(str(Path(repo.git_dir) / "objects"))

    # -- objects -------------------------------------------------------------------------
    def _store(self, kind: bytes, data: bytes) -> bytes:
        # gitdb's loose-object writer: a temporary file renamed into place once complete. (The
        # repo's default odb pipes into `git hash-object --literally`, which stores whatever
        # arrived, e.g. an empty commit, when the writer is killed mid-stream.)
        return self._loose.store(IStream(kind, len(data), BytesIO(data))).binsha

    def blob(self, data: bytes | str) -> bytes:
        return self._store(b"blob", data.encode("utf-8") if isinstance(data, str) else data)

    def tree(self, entries: dict[str, Entry]) -> bytes:
        """Write a tree from ``name -> (binsha, mode)`` in git's canonical order."""
        rows = [(sha, mode, name) for name, (sha, mode) in entries.items()]
        rows.sort(key=lambda r: r[2].encode("utf-8") + (b"/" if r[1] == TREE_MODE else b""))
        buf = BytesIO()
        tree_to_stream(rows, buf.write)
        return self._store(b"tree", buf.getvalue())

    def read(self, binsha: bytes, kind: str) -> bytes:
        stream = self.repo.odb.stream(binsha)
        if stream.type.decode() != kind:
            raise HarnessError(f"object {binsha.hex()} is a {stream.type.decode()}, expected a {kind}")
        return stream.read()

    def read_tree(self, binsha: bytes) -> dict[str, Entry]:
        return {name: (sha, mode) for sha, mode, name in tree_entries_from_data(self.read(binsha, "tree"))}

    def commit_tree(self, commit: str) -> bytes:
        return self.repo.commit(commit).tree.binsha

    def is_commit(self, sha: str) -> bool:
        """``sha`` (40 hex digits) names a commit this repository holds."""
        if not re.fullmatch(r"[0-9a-f]{40}", sha) or sha == ZERO_SHA:
            return False
        try:
            return self.repo.odb.info(bytes.fromhex(sha)).type == b"commit"
        except READ_ERRORS:
            return False

    def lookup(self, root: bytes, path: str) -> Entry | None:
        """The entry at ``a/b/c`` below tree ``root``, or None."""
        entry: Entry = (root, TREE_MODE)
        for part in path.strip("/").split("/"):
            if entry[1] != TREE_MODE:
                return None
            found = self.read_tree(entry[0]).get(part)
            if found is None:
                return None
            entry = found
        return entry

    def read_text(self, root: bytes, path: str) -> str | None:
        entry = self.lookup(root, path)
        if entry is None or entry[1] == TREE_MODE:
            return None
        return self.read(entry[0], "blob").decode("utf-8")

    def put(self, root: bytes | None, path: str, leaf: Entry | None) -> bytes:
        """A new tree equal to ``root`` with ``path`` set to ``leaf`` (deleted when None)."""
        head, _, rest = path.strip("/").partition("/")
        entries = self.read_tree(root) if root is not None else {}
        if rest:
            sub = entries.get(head)
            sub_sha = sub[0] if sub is not None and sub[1] == TREE_MODE else None
            new_sub = self.put(sub_sha, rest, leaf)
            if self.read_tree(new_sub):
                entries[head] = (new_sub, TREE_MODE)
            else:
                entries.pop(head, None)
        elif leaf is None:
            entries.pop(head, None)
        else:
            entries[head] = leaf
        return self.tree(entries)

    def commit(self, tree: bytes, parents: list[str], message: str, author: git.Actor,
               committer: git.Actor, when: datetime | None = None) -> str:
        """Write a commit object (no ref moves) and return its hex sha."""
        now = datetime.now(UTC)
        lines = [f"tree {tree.hex()}", *(f"parent {p}" for p in parents),
                 f"author {_signature(author, when or now)}", f"committer {_signature(committer, now)}"]
        return self._store(b"commit", ("\n".join(lines) + "\n\n" + message.rstrip("\n") + "\n").encode()).hex()

    # -- refs ----------------------------------------------------------------------------
    def refs(self, *patterns: str) -> dict[str, str]:
        """``refname -> sha`` for refs under the given prefixes."""
        out = self.repo.git.for_each_ref("--format=%(refname) %(objectname)", *patterns)
        pairs = (line.split(" ", 1) for line in out.splitlines() if line.strip())
        return {name: sha for name, sha in pairs}

    def broken_refs(self, *patterns: str) -> list[str]:
        """Refs under the given prefixes that name no object (garbage in the ref file, a
        deleted commit): ``git for-each-ref`` leaves them out of its listing and warns."""
        _, _, err = self.repo.git.for_each_ref("--format=%(refname)", *patterns, with_extended_output=True)
        return sorted({m.group(1) for m in _BROKEN_REF.finditer(str(err))})

    def ref_sha(self, ref: str) -> str | None:
        return self.refs(ref).get(ref)

    def update_ref(self, ref: str, new: str, old: str | None, reason: str) -> None:
        """Move ``ref`` from ``old`` (None: must not exist) to ``new``, atomically, or raise."""
        try:
            self.locked_git(lambda: self.repo.git.update_ref("-m", reason, ref, new, old or ZERO_SHA))
        except git.GitCommandError as exc:
            if _DISK_FULL.search(str(exc.stderr)):  # the ref (or its log) could not be written
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), ref) from exc
            raise RefConflict(
                f"{ref} moved while writing ({str(exc.stderr).strip()[:200]}); retry the operation"
            ) from exc

    def locked_git(self, command: Callable[[], T]) -> T:
        """Run a git command that takes ref locks. While another git process holds a lock we wait;
        a lock file older than STALE_LOCK_S was left by a killed git process and is removed
        (callers hold the lab lock, so no aar writer can own it)."""
        deadline = time.monotonic() + STALE_LOCK_S + LOCK_WAIT_S
        while True:
            try:
                return command()
            except git.GitCommandError as exc:
                found = _LOCK_FILE.search(str(exc.stderr))
                if found is None or time.monotonic() > deadline:
                    raise
                lock = Path(found.group(1))
                try:
                    if time.time() - lock.stat().st_mtime > STALE_LOCK_S:
                        lock.unlink()
                        continue
                except FileNotFoundError:
                    continue
                time.sleep(0.1)


def read_error_text(exc: BaseException) -> str:
    """What a failed lab read says, on one line, without Python's bytes reprs: a missing git
    object is named as such."""
    text = _BYTES_REPR.sub(lambda m: m.group(2), " ".join(str(exc).split()))
    missing = _MISSING_OBJECT.search(text)
    if missing:
        return f"git object {missing.group(1)} is missing from the lab (deleted or never written)"
    return text or type(exc).__name__


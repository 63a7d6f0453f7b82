"""The lab repository: a session is a branch, an attempt is one commit on it.

Branch ``sessions/<session_id>`` holds::

    session.json                     the manifest
    attempts/0007-<name>/            one folder per attempt (``-<researcher>`` for r1, r2, ...)
        idea.py rationale.md result.json run.log transcript.json attempt.json
        workspace/                   the researcher's workspace files the attempt ran with
    state/<relpath>                  files the research loop keeps for --resume
    workspace/                       the researcher's workspace now (the same blobs: stored once)

Writes never use a working tree: objects first, then the branch ref by compare-and-swap, all
under one fcntl lock per lab, so parallel writers and killed processes leave a valid repository.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import git

from experiments import liveness
from experiments.disk_reserve import DiskReserve, survives_full_disk
from experiments.gitobjects import (
    BLOB_MODE,
    LAB_READ_ERRORS,
    TREE_MODE,
    GitObjects,
    RefConflict,
    identity,
    read_error_text,
)
from experiments.layout import (
    ANALYSES_DIR,
    ANALYSIS_FILE,
    ATTEMPT_FILES,
    ATTEMPTS_DIR,
    DEFAULT_LAB,
    FIRST_RESEARCHER,
    LAB_ENV,
    SESSION_FILE,
    SESSION_REFS,
    WORKSPACE_DIR,
    StoreError,
)
from experiments.records import (
    attempt_files,
    attempt_folder,
    attempt_message,
    check_session_id,
    manifest_text,
    state_path,
    trailers,
)
from experiments.schemas import (
    Attempt,
    CheckReport,
    SessionManifest,
    SessionStatus,
    SessionSummary,
    TokenUsage,
)
from sandbox.files import file_lock
from sandbox.results import IdeaResult

if TYPE_CHECKING:
    from experiments.index import LabIndex

LAB_README = """# aar lab

Experiment history of the automated alignment researcher. Each research session is a branch
`sessions/<session_id>`; each attempt is one commit adding `attempts/<step>-<name>/` with
idea.py, rationale.md, result.json, run.log, transcript.json and attempt.json. Reviews are git
notes: `git log --notes=aar-reviews sessions/<id>` (a clone fetches them with
`git fetch origin 'refs/notes/*:refs/notes/*'`). Browse with `aar sessions`, `aar ideas`, `aar show`.
"""
CAS_RETRIES = 5
_FOLDER_INDEX = re.compile(r"^(\d+)-")


def lab_path(path: Path | str | None = None) -> Path:
    """The lab location: explicit argument, else $AAR_LAB, else ./aar-lab."""
    return Path(path or os.environ.get(LAB_ENV) or DEFAULT_LAB).expanduser().resolve()


def resume_command(lab: Path, session_or_group: str, command: str = "aar research") -> str:
    """The command that continues a session (or group), with ``--lab`` unless ``lab`` is the
    default one (./aar-lab), so that it works as printed from the same folder."""
    at = "" if Path(lab).resolve() == Path(DEFAULT_LAB).resolve() else f" --lab {shlex.quote(str(lab))}"
    return f"{command} --resume {shlex.quote(session_or_group)}{at}"


class _DetachedGit(git.cmd.Git):
    """``git`` commands in their own session, out of the terminal's foreground process group.

    A Ctrl-C typed at a terminal reaches every process of the foreground group. GitPython keeps
    persistent ``git cat-file`` helpers; had they died with the parent's SIGINT, the write that
    commits the attempt in flight would fail with BrokenPipeError and lose it.
    """

    def execute(self, command: Any, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("start_new_session", True)
        return super().execute(command, *args, **kwargs)


class _LabRepo(git.Repo):
    """A ``git.Repo`` whose commands run through :class:`_DetachedGit`."""

    GitCommandWrapperType = _DetachedGit


class LabStore:
    """A lab repository: sessions as branches, attempts as commits, plus a query index."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path).resolve()
        try:
            self.repo = _LabRepo(self.path)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError) as exc:
            raise StoreError(f"{self.path} is not a lab repository; pass --lab PATH or set {LAB_ENV}") from exc
        self.git_dir = Path(self.repo.git_dir)
        self.objects = GitObjects(self.repo)
        self._index: LabIndex | None = None
        self.disk = DiskReserve(self.git_dir, self.path)

    @classmethod
    def open(cls, path: Path | str | None = None, create: bool = True) -> LabStore:
        """Open the lab (explicit path, else $AAR_LAB, else ./aar-lab); ``git init`` it when missing."""
        where = lab_path(path)
        if not (where / ".git").exists() and not (where / "HEAD").exists():
            if not create:
                raise StoreError(f"no lab repository at {where}; run a session first, "
                                 f"or pass --lab PATH / set {LAB_ENV}")
            if where.exists() and any(where.iterdir()):
                raise StoreError(f"{where} exists and is not a git repository; choose another --lab path")
            _LabRepo.init(where, mkdir=True)
            store = cls(where)
            store._start_main()
            return store
        return cls(where)

    def _start_main(self) -> None:
        """Give a fresh lab a ``main`` branch with a README, so a clone checks something out."""
        tree = self.objects.tree({"README.md": (self.objects.blob(LAB_README), BLOB_MODE)})
        me = identity(self.repo)
        with self.lock():
            if self.objects.ref_sha("refs/heads/main") is not None:
                return  # another process initialised it first
            sha = self.objects.commit(tree, [], "aar lab", me, me)
            self.objects.update_ref("refs/heads/main", sha, None, "aar lab")
            self.repo.git.symbolic_ref("HEAD", "refs/heads/main")
            self.repo.git.reset("--hard", "-q", "main")  # the only working-tree write: the README

    def close(self) -> None:
        self.repo.close()

    def running(self, session_id: str) -> AbstractContextManager[None]:
        """Hold the session's liveness lock while this process runs it (see experiments.liveness)."""
        return liveness.running(self.git_dir, session_id)

    def stuck_sessions(self) -> list[str]:
        """Sessions marked running whose process is gone (their liveness lock is free)."""
        stuck = []
        for sid in liveness.unheld_sessions(self.git_dir):
            try:
                if self.manifest(sid).status == "running":
                    stuck.append(sid)
            except (*LAB_READ_ERRORS, StoreError):
                continue  # a session that cannot be read is reported as such
        return stuck

    def resume_command(self, session_id: str) -> str:
        """The command that continues ``session_id`` in this lab, as printed."""
        return resume_command(self.path, session_id)

    @property
    def index(self) -> LabIndex:
        """The SQLite query index (refreshed from git by each query)."""
        if self._index is None:
            from experiments.index import LabIndex

            self._index = LabIndex(self)
        return self._index

    @contextmanager
    def lock(self) -> Iterator[None]:
        """The lab's writer lock (fcntl; released by the kernel if the holder dies)."""
        with file_lock(self.git_dir / "aar.lock"):
            yield

    # -- sessions ------------------------------------------------------------------------
    @staticmethod
    def branch(session_id: str) -> str:
        return SESSION_REFS + check_session_id(session_id)

    def session_heads(self) -> dict[str, str]:
        """``session_id -> head sha`` for every session branch."""
        return {ref[len(SESSION_REFS):]: sha for ref, sha in self.objects.refs(SESSION_REFS.rstrip("/")).items()}

    def damaged_sessions(self) -> dict[str, str]:
        """``session_id -> ref`` of session branches whose ref names no commit (garbage in the
        ref file, a deleted commit): git leaves them out of every listing, so they are named here."""
        return {ref[len(SESSION_REFS):]: ref for ref in self.objects.broken_refs(SESSION_REFS.rstrip("/"))}

    def damage_note(self) -> str:
        """One clause naming the damaged session branches (empty when there are none)."""
        damaged = self.damaged_sessions()
        if not damaged:
            return ""
        return (f"{len(damaged)} session branch(es) damaged, their attempts cannot be read: "
                f"{', '.join(f'{sid} ({ref})' for sid, ref in sorted(damaged.items()))}; "
                "`aar check` says how to restore them")

    def resolve_session(self, text: str) -> str:
        """A session id from the full id or a unique prefix of it."""
        heads = self.session_heads()
        if text in heads:
            return text
        hits = [s for s in heads if s.startswith(text)]
        if len(hits) == 1:
            return hits[0]
        if not hits:
            note = self.damage_note()
            raise StoreError(f"no session {text!r} in {self.path}; list them with `aar sessions`"
                             + (f" ({note})" if note else ""))
        raise StoreError(f"session prefix {text!r} is ambiguous ({len(hits)} sessions); give more characters")

    def _head(self, session_id: str) -> str:
        head = self.objects.ref_sha(self.branch(session_id))
        if head is None:
            raise StoreError(f"no session {session_id!r} in {self.path}; list them with `aar sessions`")
        return head

    @survives_full_disk("the new session")
    def create_session(self, manifest: SessionManifest) -> str:
        """Start the session's branch with session.json; returns the branch name."""
        self.disk.keep()
        ref = self.branch(manifest.session_id)
        tree = self.objects.tree({SESSION_FILE: (self.objects.blob(manifest_text(manifest)), BLOB_MODE)})
        subject = f"session {manifest.session_id}: {manifest.task}, {manifest.proposer}" + (
            f" ({manifest.model})" if manifest.model else "")
        message = "\n\n".join(p for p in (subject, (manifest.direction or "").strip(), trailers({
            "Aar-Kind": "session", "Aar-Session": manifest.session_id, "Aar-Task": manifest.task,
            "Aar-Parent-Session": manifest.parent_session})) if p)
        with self.lock():
            if self.objects.ref_sha(ref) is not None:
                raise StoreError(f"session {manifest.session_id!r} already exists; pick another id")
            me = identity(self.repo)
            sha = self.objects.commit(tree, [], message, me, me, _when(manifest.created_at))
            self.objects.update_ref(ref, sha, None, subject)
        return ref.removeprefix("refs/heads/")

    def _change(self, session_id: str, edit: Callable[[bytes], bytes], message: str,
                author: git.Actor | None = None, when: datetime | None = None) -> str:
        """One commit on the session branch: ``edit`` maps the head tree to the new tree.

        If the ref moved under us (a git process outside the lock, e.g. one left running by a
        killed writer), the change is rebuilt on the new head and tried again."""
        ref = self.branch(session_id)
        for attempt_no in range(CAS_RETRIES):
            with self.lock():
                head = self._head(session_id)
                tree = edit(self.objects.commit_tree(head))
                me = identity(self.repo)
                sha = self.objects.commit(tree, [head], message, author or me, me, when)
                try:
                    self.objects.update_ref(ref, sha, head, message.splitlines()[0])
                    return sha
                except RefConflict:
                    if attempt_no == CAS_RETRIES - 1:
                        raise
            time.sleep(0.05 * (attempt_no + 1))
        raise AssertionError("unreachable")

    def manifest(self, session_id: str) -> SessionManifest:
        text = self.objects.read_text(self.objects.commit_tree(self._head(session_id)), SESSION_FILE)
        if text is None:
            raise StoreError(f"session {session_id!r} has no {SESSION_FILE}; run `aar check`")
        return SessionManifest.model_validate_json(text)

    def set_session_status(self, session_id: str, status: SessionStatus) -> str:
        return self.update_session(session_id, {"status": status})

    @survives_full_disk("the session's status")
    def update_session(self, session_id: str, changes: dict[str, Any],
                       files: dict[str, str] | None = None) -> str:
        """One commit: the manifest with ``changes`` applied (validated) and ``state/`` files."""
        self.disk.keep()
        current = self.manifest(session_id)
        manifest = SessionManifest.model_validate({**current.model_dump(mode="json"), **changes})
        blob = self.objects.blob(manifest_text(manifest))
        state = {state_path(rel): self.objects.blob(text) for rel, text in (files or {}).items()}
        message = f"session {session_id}: {manifest.status}\n\n" + trailers(
            {"Aar-Kind": "status", "Aar-Session": session_id, "Aar-Status": manifest.status})

        def edit(root: bytes) -> bytes:
            root = self.objects.put(root, SESSION_FILE, (blob, BLOB_MODE))
            for path, text_blob in state.items():
                root = self.objects.put(root, path, (text_blob, BLOB_MODE))
            return root

        return self._change(session_id, edit, message)

    def write_session_file(self, session_id: str, relpath: str, text: str) -> str:
        """Store ``state/<relpath>`` on the session branch (one commit); returns its sha."""
        return self.write_session_files(session_id, {relpath: text})

    @survives_full_disk("the session's files")
    def write_session_files(self, session_id: str, files: dict[str, str], workspace: bytes | None = None) -> str:
        """Store several ``state/`` files in one commit, with the researcher's workspace tree
        when one is given; returns its sha."""
        self.disk.keep()
        blobs = {state_path(rel): self.objects.blob(text) for rel, text in files.items()}
        message = f"state: {', '.join(files)}\n\n" + trailers(
            {"Aar-Kind": "state", "Aar-Session": session_id, "Aar-Path": ", ".join(blobs)})

        def edit(root: bytes) -> bytes:
            for path, blob in blobs.items():
                root = self.objects.put(root, path, (blob, BLOB_MODE))
            return _with_workspace(self.objects, root, workspace)

        return self._change(session_id, edit, message)

    def read_session_file(self, session_id: str, relpath: str) -> str | None:
        return self.objects.read_text(self.objects.commit_tree(self._head(session_id)), state_path(relpath))

    def workspace_tree(self, session_id: str) -> bytes | None:
        """The tree of the session's workspace at its head (None: no file was ever written)."""
        entry = self.objects.lookup(self.objects.commit_tree(self._head(session_id)), WORKSPACE_DIR)
        return entry[0] if entry is not None and entry[1] == TREE_MODE else None

    def attempt_workspace(self, attempt_id: str) -> bytes | None:
        """The workspace tree an attempt ran with (None: it had none)."""
        row = self.index.find(attempt_id)
        entry = self.objects.lookup(self.objects.commit_tree(row.commit),
                                    f"{ATTEMPTS_DIR}/{row.folder}/{WORKSPACE_DIR}")
        return entry[0] if entry is not None and entry[1] == TREE_MODE else None

    # -- analysis runs -------------------------------------------------------------------
    def record_analysis(self, session_id: str, folder: str, files: dict[str, bytes | str],
                        workspace: bytes | None, subject: str) -> str:
        """Commit one analysis run as ``analyses/<folder>/`` (its files, the workspace it saw in
        ``workspace/``) and the branch's ``workspace/``; returns the commit sha."""
        blobs: dict[str, tuple[bytes, int]] = {}
        below: dict[str, dict[str, tuple[bytes, int]]] = {}
        for rel, data in files.items():
            head, _, rest = rel.partition("/")
            entry = (self.objects.blob(data), BLOB_MODE)
            if rest:
                below.setdefault(head, {})[rest] = entry
            else:
                blobs[head] = entry
        for name, entries in below.items():
            blobs[name] = (self.objects.tree(entries), TREE_MODE)
        if workspace is not None:
            blobs[WORKSPACE_DIR] = (workspace, TREE_MODE)
        tree = self.objects.tree(blobs)
        path = f"{ANALYSES_DIR}/{folder}"
        message = f"{subject}\n\n" + trailers({"Aar-Kind": "analysis", "Aar-Session": session_id, "Aar-Path": path})

        def edit(root: bytes) -> bytes:
            if self.objects.lookup(root, path) is not None:
                raise StoreError(f"analysis {folder} already exists in session {session_id}; "
                                 "take the index from analysis_runs()")
            return _with_workspace(self.objects, self.objects.put(root, path, (tree, TREE_MODE)), workspace)

        return self._change(session_id, edit, message)

    def analysis_runs(self, session_id: str) -> dict[str, dict[str, Any]]:
        """``folder -> analysis.json`` of the session's analysis runs, in folder order."""
        entry = self.objects.lookup(self.objects.commit_tree(self._head(session_id)), ANALYSES_DIR)
        runs: dict[str, dict[str, Any]] = {}
        for name, (sha, mode) in sorted(self.objects.read_tree(entry[0]).items() if entry else []):
            meta = self.objects.read_tree(sha).get(ANALYSIS_FILE) if mode == TREE_MODE else None
            runs[name] = json.loads(self.objects.read(meta[0], "blob")) if meta else {}
        return runs

    def sessions(self) -> list[SessionSummary]:
        return self.index.sessions()

    # -- attempts ------------------------------------------------------------------------
    @survives_full_disk("the attempt in flight")
    def record_attempt(self, attempt: Attempt, session_files: dict[str, str] | None = None,
                       workspace: bytes | None = None) -> str:
        """Commit one attempt (and optionally session files in the same commit); returns the sha.
        ``workspace``, the researcher's workspace tree, goes into the attempt's folder (the files
        it ran with) and to the branch's ``workspace/`` (the files now): the same tree object."""
        self.disk.keep()
        folder = attempt_folder(attempt)
        blobs = {name: (self.objects.blob(text), BLOB_MODE) for name, text in attempt_files(attempt).items()}
        if workspace is not None:
            blobs[WORKSPACE_DIR] = (workspace, TREE_MODE)
        folder_tree = self.objects.tree(blobs)
        state = {state_path(rel): self.objects.blob(text) for rel, text in (session_files or {}).items()}

        def edit(root: bytes) -> bytes:
            self._check_slot(root, attempt, folder)
            root = self.objects.put(root, f"{ATTEMPTS_DIR}/{folder}", (folder_tree, TREE_MODE))
            for path, blob in state.items():
                root = self.objects.put(root, path, (blob, BLOB_MODE))
            return _with_workspace(self.objects, root, workspace)

        author = git.Actor(f"aar {attempt.researcher}", "aar@localhost")
        return self._change(attempt.session_id, edit, attempt_message(attempt, folder), author,
                            _when(attempt.created_at))

    def _check_slot(self, root: bytes, attempt: Attempt, folder: str) -> None:
        """Refuse to reuse a step number of the same researcher for a different attempt."""
        entry = self.objects.lookup(root, ATTEMPTS_DIR)
        prefix = f"{attempt.index:04d}-"
        for name, (tree, _mode) in (self.objects.read_tree(entry[0]) if entry else {}).items():
            if not name.startswith(prefix):
                continue
            meta_entry = self.objects.read_tree(tree).get("attempt.json")
            meta = json.loads(self.objects.read(meta_entry[0], "blob")) if meta_entry else {}
            same_slot = name == folder or meta.get("researcher", FIRST_RESEARCHER) == attempt.researcher
            if same_slot and meta.get("attempt_id") != attempt.attempt_id:
                raise StoreError(f"step {attempt.index} of {attempt.researcher} is already attempt "
                                 f"{meta.get('attempt_id')} in session {attempt.session_id}; "
                                 "take the index from next_attempt_index()")

    def attempt_folders(self, session_id: str, commit: str | None = None) -> dict[str, bytes]:
        """``folder -> tree binsha`` of the session's attempts at its head (or at ``commit``)."""
        root = self.objects.commit_tree(commit or self._head(session_id))
        entry = self.objects.lookup(root, ATTEMPTS_DIR)
        if entry is None:
            return {}
        return {name: sha for name, (sha, mode) in self.objects.read_tree(entry[0]).items() if mode == TREE_MODE}

    def read_attempt(self, folder_tree: bytes) -> Attempt:
        """Rebuild an Attempt from its folder's tree (a StoreError saying why when it cannot be read)."""
        try:
            return self._read_attempt(folder_tree)
        except StoreError:
            raise
        except LAB_READ_ERRORS as exc:  # a missing or damaged object, a damaged file
            raise StoreError(f"attempt folder {folder_tree.hex()[:12]} is unreadable: {read_error_text(exc)}; "
                             "run `aar check`") from exc

    def _read_attempt(self, folder_tree: bytes) -> Attempt:
        entries = self.objects.read_tree(folder_tree)
        missing = [f for f in ATTEMPT_FILES if f not in entries]
        if missing:
            raise StoreError(f"attempt folder {folder_tree.hex()[:12]} lacks {', '.join(missing)}; run `aar check`")
        text = {name: self.objects.read(entries[name][0], "blob").decode("utf-8") for name in ATTEMPT_FILES}
        meta = json.loads(text["attempt.json"])
        meta.pop("files", None)
        transcript = json.loads(text["transcript.json"])
        result = json.loads(text["result.json"])
        return Attempt.model_validate({
            **meta, "code": text["idea.py"], "rationale": text["rationale.md"], "log": text["run.log"],
            "transcript": transcript.get("calls", []),
            "usage": TokenUsage.model_validate(transcript.get("usage", meta.get("usage", {}))),
            "result": None if result is None else IdeaResult.model_validate(result),
        })

    def attempts(self, session_id: str, researcher: str | None = None) -> list[Attempt]:
        """Every attempt of a session, read from git, in step order."""
        found = [self.read_attempt(tree) for tree in self.attempt_folders(session_id).values()]
        found = [a for a in found if researcher is None or a.researcher == researcher]
        return sorted(found, key=lambda a: (a.index, a.researcher, a.created_at))

    def readable_attempts(self, session_id: str) -> tuple[list[Attempt], dict[str, str]]:
        """(the attempts that read back, in step order; ``folder -> why`` for those that do not)."""
        found, skipped = [], {}
        for folder, tree in sorted(self.attempt_folders(session_id).items()):
            try:
                found.append(self.read_attempt(tree))
            except StoreError as exc:
                skipped[folder] = str(exc)
        return sorted(found, key=lambda a: (a.index, a.researcher, a.created_at)), skipped

    def parent_of(self, attempt: Attempt) -> Attempt | None:
        """The attempt this one built on, or None (no parent, or it is gone)."""
        if not attempt.parent_id:
            return None
        try:
            return self.get_attempt(attempt.parent_id)
        except StoreError:
            return None

    def next_attempt_index(self, session_id: str) -> int:
        used = [int(m.group(1)) for f in self.attempt_folders(session_id) if (m := _FOLDER_INDEX.match(f))]
        return max(used, default=0) + 1

    def get_attempt(self, attempt_id: str) -> Attempt:
        """An attempt by full id or unique prefix (also accepts a commit sha prefix)."""
        row = self.index.find(attempt_id)
        entry = self.objects.lookup(self.objects.commit_tree(row.commit), f"{ATTEMPTS_DIR}/{row.folder}")
        if entry is None:
            raise StoreError(f"attempt {row.attempt_id} is indexed but missing from git; "
                             "run `aar check --rebuild-index`")
        return self.read_attempt(entry[0])

    def check(self, rebuild_index: bool = False) -> CheckReport:
        """Verify git objects, every session branch and attempt, and the index (see ``aar check``)."""
        from experiments.health import check_lab

        return check_lab(self, rebuild_index)


def _with_workspace(objects: GitObjects, root: bytes, workspace: bytes | None) -> bytes:
    """``root`` with its ``workspace/`` set to the given tree (unchanged when None)."""
    return root if workspace is None else objects.put(root, WORKSPACE_DIR, (workspace, TREE_MODE))


def _when(iso: str | None) -> datetime | None:
    if not iso:
        return None
    try:
        when = datetime.fromisoformat(iso)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)

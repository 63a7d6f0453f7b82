"""``aar check``: is the lab a valid git repository whose every session reads back, and is the
index in step with it?"""

from __future__ import annotations

import shlex
import subprocess
from typing import TYPE_CHECKING

from experiments.gitobjects import LAB_READ_ERRORS, read_error_text
from experiments.layout import ATTEMPTS_DIR, SESSION_FILE, StoreError
from experiments.schemas import CheckReport, SessionManifest

if TYPE_CHECKING:
    from experiments.store import LabStore

LOOSE_OBJECTS_NOTE = 20_000


def _fsck(store: LabStore) -> tuple[list[str], list[str]]:
    """(problems, notes) from ``git fsck``; unreferenced objects of interrupted writes are notes."""
    proc = subprocess.run(["git", "fsck", "--no-progress", "--no-dangling"], cwd=store.path,
                          capture_output=True, text=True, timeout=3600, start_new_session=True)
    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
    if proc.returncode != 0:
        return [f"git fsck failed (exit {proc.returncode}): " + "; ".join(lines[:5])], []
    leftovers = [p for p in (store.git_dir / "objects").glob("obj*") if p.is_file()]
    notes = [f"git fsck: {ln}" for ln in lines[:5]]
    if leftovers:
        notes.append(f"{len(leftovers)} temporary object file(s) left by interrupted writes (harmless)")
    counts = dict(line.split(": ", 1) for line in store.repo.git.count_objects("-v").splitlines() if ": " in line)
    if int(counts.get("count", 0)) > LOOSE_OBJECTS_NOTE:
        notes.append(f"{counts['count']} loose objects; `git -C {store.path} gc` packs them (safe while idle)")
    return [], notes


def _check_session(store: LabStore, sid: str, head: str, seen: dict[str, str]) -> tuple[list[str], list[str]]:
    """(problems, readable attempt folders) of one session branch."""
    problems: list[str] = []
    try:
        root = store.objects.commit_tree(head)
        text = store.objects.read_text(root, SESSION_FILE)
        if text is None:
            return [f"{sid}: no {SESSION_FILE} on the branch"], []
        manifest = SessionManifest.model_validate_json(text)
        if manifest.session_id != sid:
            problems.append(f"{sid}: {SESSION_FILE} names session {manifest.session_id!r}")
        folders = store.attempt_folders(sid, head)
    except (*LAB_READ_ERRORS, StoreError) as exc:
        return [f"{sid}: cannot read the branch head {head[:12]}: {_one_line(exc)}"], []
    readable = []
    for folder, tree in sorted(folders.items()):
        where = f"{sid}/{ATTEMPTS_DIR}/{folder}"
        try:
            attempt = store.read_attempt(tree)
        except (*LAB_READ_ERRORS, StoreError) as exc:
            problems.append(f"{where}: unreadable attempt: {_one_line(exc)}")
            continue
        readable.append(folder)
        if attempt.session_id != sid:
            problems.append(f"{where}: attempt says session {attempt.session_id!r}")
        if not folder.startswith(f"{attempt.index:04d}-"):
            problems.append(f"{where}: folder does not match attempt index {attempt.index}")
        if attempt.attempt_id in seen:
            problems.append(f"{where}: attempt id {attempt.attempt_id} also in {seen[attempt.attempt_id]}")
        seen[attempt.attempt_id] = where
    return problems, readable


def _one_line(exc: Exception) -> str:
    return read_error_text(exc)[:300]


def _damaged_refs(store: LabStore) -> list[str]:
    """A problem per session branch whose ref names no commit, with how to restore it."""
    problems = []
    for sid, ref in sorted(store.damaged_sessions().items()):
        last, loose = _last_logged_commit(store, ref), store.git_dir / ref
        # git refuses to move a ref it cannot read (update-ref: "reference broken"): the file is rewritten
        fix = (f"`echo {last} > {shlex.quote(str(loose))}` restores its last recorded head" if last and loose.is_file()
               else "restore it from a clone or backup of the lab")
        problems.append(f"{sid}: its branch ref {ref} is damaged (it names no commit), so the session's attempts "
                        f"cannot be read; {fix}")
    return problems


def _last_logged_commit(store: LabStore, ref: str) -> str | None:
    """The newest head git's reflog recorded for ``ref`` that is still a commit in the lab."""
    log = store.git_dir / "logs" / ref
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        fields = line.split(" ", 2)
        if len(fields) > 1 and store.objects.is_commit(fields[1]):
            return fields[1]
    return None


def check_lab(store: LabStore, rebuild_index: bool = False) -> CheckReport:
    """Verify git objects, every session branch and every attempt, and the index."""
    problems, notes = _fsck(store)
    problems += _damaged_refs(store)
    problems += [f"{sid}: marked running, but no aar process is running it (it was killed, or the machine "
                 f"stopped); continue it with: {store.resume_command(sid)}" for sid in store.stuck_sessions()]
    heads = store.session_heads()
    seen: dict[str, str] = {}
    from_git: set[tuple[str, str]] = set()
    for sid, head in sorted(heads.items()):
        found, readable = _check_session(store, sid, head, seen)
        problems += found
        from_git.update((sid, folder) for folder in readable)
    attempts = len(from_git)
    if rebuild_index:
        store.index.rebuild()
    else:
        store.index.refresh()
    # Sessions a concurrent writer moved since we read them are left out of the comparison.
    moved = {sid for sid, head in store.index.session_heads().items() if heads.get(sid) not in (None, head)}
    from_git = {(sid, folder) for sid, folder in from_git if sid not in moved}
    indexed = {(sid, folder) for sid, folder, _ in store.index.folders() if sid not in moved}
    if from_git != indexed:
        missing, extra = len(from_git - indexed), len(indexed - from_git)
        problems.append(f"index differs from git ({missing} attempts missing, {extra} extra); "
                        "run `aar check --rebuild-index`")
    return CheckReport(ok=not problems, lab=str(store.path), sessions=len(heads), attempts=attempts,
                       problems=problems, notes=notes, index_rebuilt=rebuild_index)


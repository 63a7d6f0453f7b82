"""A lab damaged on disk, seen through the real ``aar`` commands: garbage in a session's ref,
a deleted git object, a full disk. Each is named on one readable line (never a Python bytes
repr or a traceback), nothing readable is hidden, and the way back is printed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from experiments.store import LabStore
from tests.test_history_support import attempt, manifest

BYTES_REPR = re.compile(r"\bb'[0-9a-f]")


def aar(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent.cli", *args], capture_output=True, text=True, timeout=120)


def lab_with(tmp_path: Path, sessions: dict[str, int]) -> LabStore:
    """A lab whose sessions hold the given numbers of attempts (distinct code and results), indexed."""
    store = LabStore.open(tmp_path / "lab")
    for n, (sid, count) in enumerate(sessions.items()):
        store.create_session(manifest(sid))
        for index in range(1, count + 1):
            store.record_attempt(attempt(sid, index, name=f"{sid} idea {index}", pgr=0.1 * index + 0.01 * n))
    store.sessions()  # the index knows them all before the damage
    return store


@pytest.mark.slow  # seven aar processes
def test_garbage_in_a_session_ref_is_named_by_check_sessions_ideas_and_show(tmp_path):
    store = lab_with(tmp_path, {"s-good": 1, "s-bad": 2})
    lab = str(store.path)
    ref = store.git_dir / "refs/heads/sessions/s-bad"
    ref.write_text("this is not a sha\n")

    check = aar("check", "--lab", lab)
    out = check.stdout + check.stderr
    assert check.returncode == 1, out
    assert "s-bad: its branch ref refs/heads/sessions/s-bad is damaged (it names no commit)" in " ".join(out.split())
    assert not BYTES_REPR.search(out) and "Traceback" not in out
    for command in (["sessions"], ["ideas"]):
        listed = aar(*command, "--lab", lab)
        assert listed.returncode == 0, listed.stderr
        assert "s-good" in listed.stdout
        assert "damaged, their attempts cannot be read: s-bad (refs/heads/sessions/s-bad)" in " ".join(
            listed.stderr.split())
    show = aar("show", "s-bad", "--lab", lab)
    assert show.returncode == 2 and "s-bad (refs/heads/sessions/s-bad)" in " ".join(show.stderr.split())
    assert "Traceback" not in show.stderr

    fix = re.search(r"`echo ([0-9a-f]{40}) > (\S+)` restores", " ".join(out.split()))
    assert fix, out  # the printed way back works as printed
    Path(fix.group(2)).write_text(fix.group(1) + "\n")
    healed = aar("check", "--lab", lab)
    assert healed.returncode == 0, healed.stdout + healed.stderr
    assert len(LabStore.open(store.path).attempts("s-bad")) == 2


@pytest.mark.slow  # two aar processes
def test_a_deleted_git_object_is_named_and_export_leaves_that_attempt_out(tmp_path):
    store = lab_with(tmp_path, {"s-one": 3})
    lab = str(store.path)
    folder = next(f for f in store.attempt_folders("s-one") if f.startswith("0002-"))
    sha = store.repo.git.rev_parse(f"sessions/s-one:attempts/{folder}/result.json")
    (store.git_dir / "objects" / sha[:2] / sha[2:]).unlink()  # loose objects: a fresh lab is not packed

    check = aar("check", "--lab", lab)
    out = " ".join((check.stdout + check.stderr).split())
    assert check.returncode == 1
    assert f"s-one/attempts/{folder}: unreadable attempt" in out
    assert f"git object {sha} is missing from the lab" in out
    assert not BYTES_REPR.search(out) and "Traceback" not in out

    report = tmp_path / "report.md"
    export = aar("export", "s-one", "--lab", lab, "-o", str(report))
    assert export.returncode == 0, export.stderr
    assert f"skipped, unreadable: attempts/{folder}" in " ".join(export.stderr.split())
    text = report.read_text()
    assert f"attempts/{folder}: attempt folder" in text and "1 attempt(s)" in text
    assert "s-one idea 1" in text and "s-one idea 3" in text and "s-one idea 2 " not in text
    assert not BYTES_REPR.search(text)


@pytest.mark.parametrize("text", ["SHA b'0123456789abcdef0123456789abcdef01234567' could not be resolved, "
                                  "git returned: b'0123456789abcdef0123456789abcdef01234567 missing'"])
def test_read_errors_are_told_without_bytes_reprs(text):
    from experiments.gitobjects import read_error_text

    said = read_error_text(ValueError(text))
    assert said == ("git object 0123456789abcdef0123456789abcdef01234567 is missing from the lab "
                    "(deleted or never written)")


# --- a full disk ----------------------------------------------------------------------------
DISK = "3m"  # the lab's own small disk: a few attempts fit, a filler file takes the rest


@pytest.fixture
def small_disk(tmp_path):
    """A tmpfs of DISK mounted for the lab (needs root; skipped where mounting is not allowed)."""
    where = tmp_path / "disk"
    where.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK}", "tmpfs", str(where)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip() or mounted.returncode}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def fill(disk: Path) -> Path:
    """Write a file until the disk has no byte left."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:  # ENOSPC: full
        pass
    finally:
        os.close(fd)
    return filler


@pytest.mark.slow
def test_a_full_disk_stops_the_session_with_one_line_keeps_the_attempt_and_prints_the_resume(small_cache, small_disk):
    from tests.conftest import SMALL

    lab = small_disk / "lab"
    env = {**os.environ, "AAR_CACHE_DIR": str(small_cache.root)}
    proc = subprocess.Popen([sys.executable, "-m", "agent.cli", "research", "--split-sizes", SMALL, "--seeds", "2",
                             "--max-attempts", "50", "--lab", str(lab), "--plain"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if (lab / ".git").exists() and any(s.attempts >= 1 for s in LabStore.open(lab, create=False).sessions()):
            break
        time.sleep(0.5)
    filler = fill(small_disk)  # attempt 1 is in; the next write finds no room
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 1, err[-3000:]
    assert "Traceback" not in err and "Errno" not in err, err[-3000:]
    full = [line for line in (out + err).splitlines() if "the lab's disk is full" in line]
    assert full and all("nothing recorded before is lost" in line and "free space there" in line for line in full)
    assert f"{lab}: No space left on device" in full[0]
    resume = re.search(r"resume with: (aar research --resume (\S+) --lab \S+)", out)
    assert resume, out
    store = LabStore.open(lab, create=False)
    assert store.manifest(resume.group(2)).status == "failed"
    kept = store.attempts(resume.group(2))
    assert len(kept) >= 2 and all(a.status == "ok" for a in kept)  # the one in flight too (from the reserve)
    assert f"{len(kept)} attempts; stopped: failed" in out
    filler.unlink()
    assert aar("check", "--lab", str(lab)).returncode == 0


# --- a session left running by a process that died ------------------------------------------
@pytest.mark.slow
def test_a_session_whose_process_was_killed_is_reported_stuck_with_its_resume(small_cache, tmp_path):
    from tests.conftest import SMALL

    lab = tmp_path / "lab"
    env = {**os.environ, "AAR_CACHE_DIR": str(small_cache.root)}
    proc = subprocess.Popen([sys.executable, "-m", "agent.cli", "research", "--split-sizes", SMALL, "--seeds", "2",
                             "--max-attempts", "50", "--lab", str(lab), "--plain"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            if (lab / ".git").exists() and any(s.attempts >= 1 for s in LabStore.open(lab, create=False).sessions()):
                break
            time.sleep(0.5)
        alive = aar("check", "--lab", str(lab))
        assert "no aar process is running it" not in alive.stdout, alive.stdout  # a live session is not stuck
    finally:
        proc.kill()  # SIGKILL: nothing of aar runs to mark the session
        proc.wait()
    (sid,) = LabStore.open(lab).session_heads()
    assert LabStore.open(lab).manifest(sid).status == "running"
    check = aar("check", "--lab", str(lab))
    out = " ".join(check.stdout.split())
    assert check.returncode == 1, out
    assert f"{sid}: marked running, but no aar process is running it" in out
    assert f"continue it with: aar research --resume {sid} --lab {lab}" in out

"""Runs one idea for one seed in a separate process and brings back its predictions as data.

The process sees the task's public artifacts only. How it is isolated is pluggable
(``register_isolation``); ``process`` is a plain child process with resource limits, and the
sandbox module adds ``bwrap``. The parent never imports or unpickles anything the idea wrote.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sandbox.results import Status
from sandbox.runtime.context import JobSpec

LOG_HEAD = 4_000
LOG_TAIL = 8_000
MAX_PREDICTION_BYTES = 64 << 20
ENV_ALLOW = ("PATH", "LANG", "LC_ALL", "TZ", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


@dataclass
class Limits:
    """Resource limits for one idea process."""

    time_s: float = 300.0
    memory_bytes: int = 8 << 30
    file_bytes: int = 256 << 20
    open_files: int = 256
    processes: int = 64
    threads: int = 1


@dataclass
class RunDirs:
    root: Path
    scratch: Path = field(init=False)
    out: Path = field(init=False)
    job: Path = field(init=False)
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.scratch, self.out = self.root / "scratch", self.root / "out"
        self.job, self.log = self.root / "job.json", self.root / "log.txt"
        self.scratch.mkdir()
        self.out.mkdir()


@dataclass
class RunOutput:
    """What came back from the idea process, before scoring."""

    status: Status
    predictions: np.ndarray | None = None
    diagnostics: dict = field(default_factory=dict)
    error: str | None = None
    traceback: str | None = None
    log_tail: str = ""
    runtime_s: float = 0.0
    isolation: str = "process"


class Isolation:
    """How the idea process is started. Subclasses wrap the command (e.g. in bwrap)."""

    name = "process"

    def available(self) -> tuple[bool, str]:
        return True, ""

    def command(self, job: JobSpec, dirs: RunDirs, public_dir: Path, limits: Limits) -> list[str]:
        return [sys.executable, "-I", "-m", "sandbox.runtime.entry", str(dirs.job)]

    def job_paths(self, idea: Path, public_dir: Path, dirs: RunDirs) -> dict[str, str]:
        """Paths as the idea process sees them (a sandbox may mount them elsewhere)."""
        return {"idea_path": str(idea), "public_dir": str(public_dir),
                "scratch_dir": str(dirs.scratch), "out_dir": str(dirs.out)}


_ISOLATIONS: dict[str, Callable[[], Isolation]] = {"process": Isolation}


def register_isolation(name: str, factory: Callable[[], Isolation]) -> None:
    _ISOLATIONS[name] = factory


def get_isolation(name: str) -> Isolation:
    if name not in _ISOLATIONS:
        raise ValueError(f"unknown isolation {name!r}: use one of {', '.join(sorted(_ISOLATIONS))}")
    return _ISOLATIONS[name]()


def child_env(limits: Limits, home: Path) -> dict[str, str]:
    """A rebuilt environment: an allow-list only, so no secret reaches the idea."""
    env = {k: os.environ[k] for k in ENV_ALLOW if k in os.environ}
    threads = str(max(1, limits.threads))
    env.update({
        "HOME": str(home), "TMPDIR": str(home), "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1",
        "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": threads,
        "MKL_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads, "TOKENIZERS_PARALLELISM": "false",
    })
    return env


def _set_limits(limits: Limits) -> Callable[[], None]:
    def apply() -> None:
        cpu = int(limits.time_s * max(1, limits.threads) + 30)
        for res, value in (
            (resource.RLIMIT_AS, limits.memory_bytes), (resource.RLIMIT_FSIZE, limits.file_bytes),
            (resource.RLIMIT_NOFILE, limits.open_files), (resource.RLIMIT_CORE, 0),
            (resource.RLIMIT_CPU, cpu),
        ):
            resource.setrlimit(res, (value, value))
        if os.getuid() != 0:  # root ignores RLIMIT_NPROC; bwrap's PID namespace covers that case
            resource.setrlimit(resource.RLIMIT_NPROC, (limits.processes, limits.processes))

    return apply


def _read_log(path: Path) -> str:
    size = path.stat().st_size if path.exists() else 0
    with path.open("rb") as fh:
        if size <= LOG_HEAD + LOG_TAIL:
            return fh.read().decode("utf-8", "replace")
        head = fh.read(LOG_HEAD).decode("utf-8", "replace")
        fh.seek(size - LOG_TAIL)
        tail = fh.read().decode("utf-8", "replace")
    return f"{head}\n… [{size - LOG_HEAD - LOG_TAIL} bytes cut] …\n{tail}"


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def run_idea(idea: Path, public_dir: Path, seed: int, limits: Limits,
             isolation: Isolation | None = None) -> RunOutput:
    """Run ``idea`` for ``seed`` and collect its output safely."""
    isolation = isolation or Isolation()
    with tempfile.TemporaryDirectory(prefix="aar-run-") as tmp:
        dirs = RunDirs(Path(tmp))
        job = JobSpec(seed=seed, time_budget_s=limits.time_s, threads=limits.threads,
                      **isolation.job_paths(idea, public_dir, dirs))
        dirs.job.write_text(job.model_dump_json())
        argv = isolation.command(job, dirs, public_dir, limits)
        started = time.monotonic()
        with dirs.log.open("wb") as log:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=child_env(limits, dirs.scratch), cwd=dirs.scratch, start_new_session=True,
                preexec_fn=_set_limits(limits),
            )
            timed_out = False
            try:
                code = proc.wait(timeout=limits.time_s)
            except subprocess.TimeoutExpired:
                timed_out, code = True, None
            _kill_group(proc)  # also reaps anything the idea left behind in its group
            if code is None:
                code = proc.wait()
        output = _collect(dirs, code, timed_out, limits)
        output.runtime_s = time.monotonic() - started
        output.isolation = isolation.name
        shutil.rmtree(dirs.scratch, ignore_errors=True)
        return output


def _collect(dirs: RunDirs, code: int, timed_out: bool, limits: Limits) -> RunOutput:
    log = _read_log(dirs.log)
    if timed_out:
        return RunOutput("timeout", error=f"exceeded the {limits.time_s:.0f}s time budget", log_tail=log)
    error_file = dirs.out / "error.json"
    if code != 0:
        if error_file.exists() and error_file.stat().st_size < 64_000:
            try:
                err = json.loads(error_file.read_text())
                status: Status = "invalid" if err.get("kind") == "contract" else "error"
                return RunOutput(status, error=str(err.get("message"))[:2000],
                                 traceback=str(err.get("traceback") or "")[-8000:] or None, log_tail=log)
            except (json.JSONDecodeError, AttributeError):
                pass
        if code < 0:
            name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
            return RunOutput("killed", error=f"idea process killed by {name}", log_tail=log)
        return RunOutput("error", error=f"idea process exited with code {code}", log_tail=log)
    return _load_predictions(dirs, log)


def _load_predictions(dirs: RunDirs, log: str) -> RunOutput:
    path = dirs.out / "predictions.npy"
    if not path.is_file() or path.is_symlink():
        return RunOutput("invalid", error="the idea process wrote no predictions", log_tail=log)
    if path.stat().st_size > MAX_PREDICTION_BYTES:
        return RunOutput("invalid", error="predictions file is too large", log_tail=log)
    try:
        predictions = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        return RunOutput("invalid", error=f"unreadable predictions ({exc})"[:300], log_tail=log)
    diagnostics: dict = {}
    diag_path = dirs.out / "diagnostics.json"
    if diag_path.is_file() and not diag_path.is_symlink() and diag_path.stat().st_size < 64_000:
        try:
            raw = json.loads(diag_path.read_text())
            if isinstance(raw, dict):
                diagnostics = {str(k)[:64]: v for k, v in list(raw.items())[:64]
                               if isinstance(v, int | float | str | bool)}
        except json.JSONDecodeError:
            pass
    return RunOutput("ok", predictions=predictions, diagnostics=diagnostics, log_tail=log)

"""Reading what an idea process left behind without trusting any of it.

Every file in the output directory is opened without following symlinks, only if it is a
regular file under a size cap; ``.npy`` headers are checked against the data size before
loading, and object (pickle) arrays are refused. The log is captured from a pipe, keeping
only its head and tail, so a flood of output never reaches the disk.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import signal
import stat
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np

from sandbox.results import Status
from sandbox.untrusted import plain

MAX_PREDICTION_BYTES = 64 << 20
MAX_SMALL_FILE = 64_000
MAX_OUT_ENTRIES = 64
MAX_DIAGNOSTIC_CHARS = 200
LOG_HEAD = 4_000
LOG_TAIL = 8_000
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
# An idea that failed because the sandbox refused something: a permission, a read-only file
# system, no network, or project code that is not mounted.
DENIAL = re.compile(
    r"^(PermissionError\b|gaierror\b|\w+: \[Errno (1|13|30|101)\]"
    r"|ModuleNotFoundError: No module named '(sandbox|agent|experiments)\b)"
)


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
    unenforced: list[str] = field(default_factory=list)  # whole-run limits this host could not enforce


class LogCapture(threading.Thread):
    """Drains the idea's stdout+stderr pipe, keeping the first and last bytes only."""

    def __init__(self, stream: IO[bytes]) -> None:
        super().__init__(daemon=True, name="idea-log")
        self._stream = stream
        self._head, self._tail = bytearray(), bytearray()
        self._total = 0
        self._lock = threading.Lock()

    def run(self) -> None:
        fd = self._stream.fileno()
        while chunk := os.read(fd, 1 << 16):
            with self._lock:
                self._add(chunk)

    def _add(self, chunk: bytes) -> None:
        self._total += len(chunk)
        room = LOG_HEAD - len(self._head)
        if room > 0:
            self._head += chunk[:room]
            chunk = chunk[room:]
        self._tail += chunk
        if len(self._tail) > LOG_TAIL:
            del self._tail[:-LOG_TAIL]

    def finish(self, timeout: float = 2.0) -> None:
        """Wait for end of output; a writer that outlived the run (unsafe mode) is left behind."""
        self.join(timeout)
        if not self.is_alive():
            self._stream.close()

    def text(self) -> str:
        with self._lock:
            head, tail = bytes(self._head), bytes(self._tail)
            cut = self._total - len(head) - len(tail)
        if cut > 0:
            return f"{head.decode('utf-8', 'replace')}\n… [{cut} bytes cut] …\n{tail.decode('utf-8', 'replace')}"
        return (head + tail).decode("utf-8", "replace")


def output_overflow(out: Path, cap_bytes: int) -> str | None:
    """Why the output directory is over its cap (bytes or entries), or None."""
    total, entries, stack = 0, 0, [str(out)]
    while stack:
        try:
            with os.scandir(stack.pop()) as it:
                for entry in it:
                    entries += 1
                    if entries > MAX_OUT_ENTRIES:
                        return f"wrote more than {MAX_OUT_ENTRIES} files to the output directory"
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    else:
                        total += entry.stat(follow_symlinks=False).st_size
        except OSError:
            continue
        if total > cap_bytes:
            return f"wrote more than {cap_bytes >> 20} MiB to the output directory"
    return None


def read_regular(dir_fd: int, name: str, cap: int) -> tuple[bytes | None, str | None]:
    """(bytes, None) for a regular file of at most ``cap`` bytes; (None, why) otherwise."""
    try:
        fd = os.open(name, _OPEN_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        return None, "missing"
    except OSError as exc:
        return None, f"cannot be opened safely ({exc.strerror or exc})"
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            return None, "is not a regular file"
        data = fh.read(cap + 1)
    if len(data) > cap:
        return None, f"is larger than {cap} bytes"
    return data, None


def load_npy(data: bytes) -> tuple[np.ndarray | None, str | None]:
    """An array from ``.npy`` bytes, refusing pickles and headers that do not match the data."""
    fmt = np.lib.format
    buf = io.BytesIO(data)
    try:
        version = fmt.read_magic(buf)
        if version == (1, 0):
            shape, _, dtype = fmt.read_array_header_1_0(buf)
        elif version == (2, 0):
            shape, _, dtype = fmt.read_array_header_2_0(buf)
        else:
            return None, f"unsupported .npy format version {version}"
    except (ValueError, TypeError, SyntaxError, OverflowError) as exc:
        return None, f"malformed .npy header ({exc})"[:300]
    if dtype.hasobject:
        return None, "object arrays are refused (they would need pickle)"
    if math.prod(shape) * dtype.itemsize != len(data) - buf.tell():
        return None, "the .npy header does not match the data size"
    buf.seek(0)
    try:
        return np.load(buf, allow_pickle=False), None
    except (ValueError, OSError, EOFError) as exc:
        return None, f"unreadable predictions ({exc})"[:300]


def collect(out: Path, code: int, max_prediction_bytes: int = MAX_PREDICTION_BYTES) -> RunOutput:
    """Turn the exit code and the output directory into a RunOutput."""
    try:
        dir_fd = os.open(out, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return RunOutput("invalid", error="the output directory was replaced or removed")
    try:
        if code != 0:
            return _failure(dir_fd, code)
        return _success(dir_fd, max_prediction_bytes)
    finally:
        os.close(dir_fd)


def _failure(dir_fd: int, code: int) -> RunOutput:
    data, _ = read_regular(dir_fd, "error.json", MAX_SMALL_FILE)
    err = _json_dict(data)
    if err is not None:
        message = str(err.get("message"))[:2000]
        status: Status = "invalid" if err.get("kind") == "contract" else "error"
        if status == "error" and DENIAL.match(message):
            status = "denied"
        return RunOutput(status, error=message, traceback=str(err.get("traceback") or "")[-8000:] or None)
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
        return RunOutput("killed", error=f"idea process killed by {name}")
    return RunOutput("error", error=f"idea process exited with code {code}")


def _success(dir_fd: int, max_prediction_bytes: int) -> RunOutput:
    data, problem = read_regular(dir_fd, "predictions.npy", max_prediction_bytes)
    if data is None:
        why = "the idea process wrote no predictions" if problem == "missing" else f"predictions.npy {problem}"
        return RunOutput("invalid", error=why)
    predictions, problem = load_npy(data)
    if predictions is None:
        return RunOutput("invalid", error=problem)
    raw = _json_dict(read_regular(dir_fd, "diagnostics.json", MAX_SMALL_FILE)[0]) or {}
    diagnostics = {plain(k, 64): _diagnostic(v) for k, v in list(raw.items())[:64]
                   if isinstance(v, int | float | str | bool)}
    return RunOutput("ok", predictions=predictions, diagnostics=diagnostics)


def _diagnostic(value: float | str | bool) -> float | str | bool:
    """A value as the parent keeps it: strings short and plain, never NaN or infinity (the idea
    could write either straight into its diagnostics; they would break strict JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str):
        return plain(value, MAX_DIAGNOSTIC_CHARS)
    return value


def _json_dict(data: bytes | None) -> dict | None:
    if data is None:
        return None
    try:
        value = json.loads(data.decode("utf-8", "replace"))
    except (json.JSONDecodeError, RecursionError):
        return None
    return value if isinstance(value, dict) else None

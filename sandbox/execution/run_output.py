"""Reading what an idea process sent back without trusting any of it.

Results come over a pipe (no output directory: nothing to fill, reserve or swap for a
symlink), framed by name and size, capped by the parent while reading; ``.npy`` headers are
checked against the data size before loading, and object (pickle) arrays are refused. The log
is captured from a pipe, keeping only its head and tail, so a flood never reaches the disk.
Reading stops when the idea's main process has ended: later writes are never read, and only
frames before the runtime's ``end`` frame (its last write, from the main process) count, so
nothing a leftover of the idea sends in the moment between its exit and the end of reading is
scored. JSON frames are parsed with bounds (digits of an integer, nesting, string and key
sizes): a frame that breaks one is the seed's ``invalid`` status, never a harness crash.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import select
import signal
import threading
from dataclasses import dataclass, field

import numpy as np

from sandbox.results import Status
from sandbox.untrusted import plain

MAX_PREDICTION_BYTES = 64 << 20
MAX_SMALL_FILE = 64_000
END_FRAME = "end"  # the runtime's last frame: what follows it (or a stream without it) is not the idea's result
RESULT_NAMES = ("predictions.npy", "diagnostics.json", "error.json", "figures.json", END_FRAME)
MAX_FIGURES = 4  # an analysis run's PNG frames: figure-0.png ... (sandbox.runtime.analysis)
MAX_FIGURE_BYTES = 1 << 20
FIGURE_NAMES = tuple(f"figure-{k}.png" for k in range(MAX_FIGURES))
MAX_JSON_DEPTH = 16
MAX_INT_DIGITS = 40  # far beyond any count or seed; int() of thousands of digits raises (or takes seconds)
MAX_FLOAT_CHARS = 64
MAX_KEY_CHARS = 256
MAX_JSON_STRING = 16_000
NO_END = "the idea process ended without finishing its result (no end frame: it exited from inside run(ctx))"
MAX_RESULT_BYTES = MAX_PREDICTION_BYTES + 3 * MAX_SMALL_FILE + MAX_FIGURES * (MAX_FIGURE_BYTES + 1) + 1024
MAX_DIAGNOSTIC_CHARS = 200
LOG_HEAD = 4_000
CANCELLED = "cancelled before it started (the session was interrupted)"
LOG_TAIL = 8_000
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
    unenforced: list[str] = field(default_factory=list)  # names of whole-run limits this host could not enforce
    limit_notes: list[str] = field(default_factory=list)  # how the limits were sized (scaled to fit the machine)
    figures: dict[str, bytes] = field(default_factory=dict)  # an analysis run's PNGs, by the name it gave
    # (unchecked here: sandbox.execution.analysis checks them before anyone looks)


class ResultProblem(ValueError):
    """A result frame the parent refuses; the message is the seed's one-line reason."""


class PipeReader(threading.Thread):
    """Drains one pipe in the background until EOF or ``stop()``, which reads what is already
    in the pipe and no more: bytes written after the run ended are never read."""

    def __init__(self, fd: int, name: str) -> None:
        super().__init__(daemon=True, name=name)
        self._fd = fd
        os.set_blocking(fd, False)
        self._stop_flag = threading.Event()
        self._lock = threading.Lock()
        self._closed = False

    def run(self) -> None:
        while not self._stop_flag.is_set():
            ready, _, _ = select.select([self._fd], [], [], 0.05)
            if ready and not self._read_available():
                return

    def _read_available(self) -> bool:
        """Read what is there; False at EOF."""
        while True:
            try:
                chunk = os.read(self._fd, 1 << 16)
            except BlockingIOError:
                return True
            except OSError:
                return False
            if not chunk:
                return False
            with self._lock:
                self._add(chunk)

    def _add(self, chunk: bytes) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        """Stop reading: take what the pipe holds now, then close it (once)."""
        if self._closed:
            return
        self._stop_flag.set()
        if self.is_alive() or self.ident is not None:
            self.join(5.0)
        self._read_available()
        self._closed = True
        os.close(self._fd)


class LogCapture(PipeReader):
    """The idea's stdout+stderr, keeping the first and last bytes only."""

    def __init__(self, fd: int) -> None:
        super().__init__(fd, "idea-log")
        self._head, self._tail = bytearray(), bytearray()
        self._total = 0

    def _add(self, chunk: bytes) -> None:
        self._total += len(chunk)
        room = LOG_HEAD - len(self._head)
        if room > 0:
            self._head += chunk[:room]
            chunk = chunk[room:]
        self._tail += chunk
        if len(self._tail) > LOG_TAIL:
            del self._tail[:-LOG_TAIL]

    def text(self) -> str:
        with self._lock:
            head, tail = bytes(self._head), bytes(self._tail)
            cut = self._total - len(head) - len(tail)
        if cut > 0:
            return f"{head.decode('utf-8', 'replace')}\n… [{cut} bytes cut] …\n{tail.decode('utf-8', 'replace')}"
        return (head + tail).decode("utf-8", "replace")


class ResultCapture(PipeReader):
    """The framed result (``NAME LENGTH\\n`` + bytes, repeated), capped in bytes."""

    def __init__(self, fd: int, cap: int = MAX_RESULT_BYTES) -> None:
        super().__init__(fd, "idea-result")
        self.cap = cap
        self._data = bytearray()
        self.overflow = False

    def _add(self, chunk: bytes) -> None:
        if len(self._data) + len(chunk) > self.cap:
            self.overflow = True
            return
        self._data += chunk

    def frames(self) -> tuple[dict[str, bytes] | None, str | None]:
        """The files sent, by name, or (None, why) for a malformed stream."""
        with self._lock:
            data = bytes(self._data)
        if self.overflow:
            return None, f"sent more than {self.cap} bytes of results"
        files: dict[str, bytes] = {}
        pos = 0
        while pos < len(data):
            end = data.find(b"\n", pos, pos + 200)
            if end < 0:
                return None, "malformed result stream"
            name, _, size = data[pos:end].decode("ascii", "replace").partition(" ")
            if (name not in RESULT_NAMES + FIGURE_NAMES or not size.isdigit() or len(size) > 12
                    or end + 1 + int(size) > len(data)):
                return None, "malformed result stream"
            if name == END_FRAME:  # the main process finished sending: the rest is not its result
                files[name] = b""
                break
            files[name] = data[end + 1 : end + 1 + int(size)]
            pos = end + 1 + int(size)
        return files, None


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


def collect(files: dict[str, bytes], code: int, max_prediction_bytes: int = MAX_PREDICTION_BYTES) -> RunOutput:
    """Turn the exit code and the files the idea sent into a RunOutput; a stream without the
    end frame counts as no files at all (what came after the main process ended)."""
    if END_FRAME not in files:
        files = {}
    try:
        if code != 0:
            return _failure(files, code)
        if not files:
            return RunOutput("invalid", error=NO_END)
        return _success(files, max_prediction_bytes)
    except ResultProblem as exc:
        return RunOutput("invalid", error=str(exc))


def _small(files: dict[str, bytes], name: str) -> bytes | None:
    data = files.get(name)
    return data if data is not None and len(data) <= MAX_SMALL_FILE else None


def _failure(files: dict[str, bytes], code: int) -> RunOutput:
    err = _json_dict(_small(files, "error.json"), "error.json")
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


def _success(files: dict[str, bytes], max_prediction_bytes: int) -> RunOutput:
    data = files.get("predictions.npy")
    if data is None:
        return RunOutput("invalid", error="the idea process wrote no predictions")
    if len(data) > max_prediction_bytes:
        return RunOutput("invalid", error=f"predictions.npy is larger than {max_prediction_bytes} bytes")
    predictions, problem = load_npy(data)
    if predictions is None:
        return RunOutput("invalid", error=problem)
    raw = _json_dict(_small(files, "diagnostics.json"), "diagnostics.json") or {}
    diagnostics = {plain(k, 64): _diagnostic(v) for k, v in list(raw.items())[:64]
                   if isinstance(v, int | float | str | bool)}
    return RunOutput("ok", predictions=predictions, diagnostics=diagnostics, figures=_figures(files))


def _figures(files: dict[str, bytes]) -> dict[str, bytes]:
    """The figure frames by the names ``figures.json`` gives them (plain, unique), unchecked."""
    try:
        names = bounded_json(_small(files, "figures.json") or b"[]", "figures.json")
    except ResultProblem:
        names = []
    names = names if isinstance(names, list) else []
    out: dict[str, bytes] = {}
    for k, frame in enumerate(FIGURE_NAMES):
        if frame in files:
            given = plain(names[k], 64) if k < len(names) and isinstance(names[k], str) else frame
            out[given if given and given not in out else f"{frame}"] = files[frame]
    return out


def _diagnostic(value: float | str | bool) -> float | str | bool:
    """A value as the parent keeps it: strings short and plain, never NaN or infinity (the idea
    could write either straight into its diagnostics; they would break strict JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str):
        return plain(value, MAX_DIAGNOSTIC_CHARS)
    return value


def _json_dict(data: bytes | None, name: str) -> dict | None:
    """A JSON object from a frame, parsed with bounds; None for no frame (or one over its size
    cap, which the caller treats as absent); ResultProblem for anything else malformed."""
    if data is None:
        return None
    value = bounded_json(data, name)
    if not isinstance(value, dict):
        raise ResultProblem(f"{name} is not a JSON object")
    return value


def bounded_json(data: bytes, name: str = "frame") -> object:
    """``json.loads`` of untrusted bytes with every size bounded: integers of at most
    MAX_INT_DIGITS digits, floats of at most MAX_FLOAT_CHARS characters, nesting at most
    MAX_JSON_DEPTH deep, strings and keys capped. Raises ResultProblem with a one-line reason."""
    text = data.decode("utf-8", "replace")
    depth = _max_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise ResultProblem(f"{name} nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        value = json.loads(text, parse_int=_bounded_int, parse_float=_bounded_float)
    except ResultProblem as exc:
        raise ResultProblem(f"{name}: {exc}") from None
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise ResultProblem(f"{name} is not valid JSON ({str(exc)[:120]})") from None
    _check_sizes(value, name)
    return value


def _max_depth(text: str) -> int:
    """How deep arrays and objects nest, ignoring brackets inside strings (checked before
    parsing, so a deep document never reaches the recursive decoder)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def _bounded_int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_INT_DIGITS:
        raise ResultProblem(f"an integer of {len(digits)} digits (at most {MAX_INT_DIGITS})")
    return int(digits)


def _bounded_float(text: str) -> float:
    if len(text) > MAX_FLOAT_CHARS:
        raise ResultProblem(f"a number of {len(text)} characters (at most {MAX_FLOAT_CHARS})")
    return float(text)


def _check_sizes(value: object, name: str) -> None:
    """Every key and string within its cap (the depth is bounded already)."""
    if isinstance(value, str) and len(value) > MAX_JSON_STRING:
        raise ResultProblem(f"{name} holds a string of {len(value)} characters (at most {MAX_JSON_STRING})")
    if isinstance(value, dict):
        for key, item in value.items():
            if len(key) > MAX_KEY_CHARS:
                raise ResultProblem(f"{name} holds a key of {len(key)} characters (at most {MAX_KEY_CHARS})")
            _check_sizes(item, name)
    elif isinstance(value, list):
        for item in value:
            _check_sizes(item, name)

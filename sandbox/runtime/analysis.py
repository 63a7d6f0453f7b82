"""Analysis runs inside the sandbox: the researcher's own Python, run against the same read-only
context an idea gets (texts, weak soft labels, the weak teacher's test probabilities, cached
features, the task card) but never scored. It prints, reports named values with ``ctx.report``
and saves PNG figures with ``ctx.save_png`` (an image array) or into ``ctx.figure_path(name)``
(e.g. ``plt.savefig``); the figures go back to the host over the result pipe, where they are
checked again before anyone looks at them.
"""

from __future__ import annotations

import base64
import io
import re
import struct
import sys
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from sandbox.runtime.context import IdeaContext

MAX_FIGURES = 4
MAX_FIGURE_BYTES = 1 << 20
FIGURES_DIR = "figures"
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,60}\.png$")


def figure_name(name: str) -> str:
    """A figure's file name: plain characters, ending in .png."""
    name = name if name.endswith(".png") else f"{name}.png"
    if not _NAME.match(name):
        raise ValueError(f"figure name {name!r}: use letters, digits, '_', '-', '.', ending in .png")
    return name


def encode_png(pixels: Any) -> bytes:
    """An 8-bit grayscale (H, W) or RGB (H, W, 3) array as PNG bytes (values 0-255, or floats
    in [0, 1] scaled to them)."""
    array = np.asarray(pixels)
    if array.dtype.kind == "f":
        array = np.clip(np.nan_to_num(array) * 255.0, 0, 255)
    array = array.astype(np.uint8)
    if array.ndim == 2:
        color = 0
    elif array.ndim == 3 and array.shape[2] == 3:
        color = 2
    else:
        raise ValueError(f"an image is (H, W) or (H, W, 3), not {array.shape}")
    height, width = array.shape[:2]
    rows = array.reshape(height, -1)
    raw = b"".join(b"\x00" + rows[i].tobytes() for i in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, color, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")


def collect_figures(ctx: IdeaContext) -> list[tuple[str, bytes]]:
    """The PNG files the analysis left in its figures folder (first MAX_FIGURES by name)."""
    folder = ctx.scratch / FIGURES_DIR
    found: list[tuple[str, bytes]] = []
    if not folder.is_dir():
        return found
    for path in sorted(folder.iterdir())[:MAX_FIGURES]:
        if path.is_file() and not path.is_symlink() and path.suffix == ".png":
            found.append((path.name, path.read_bytes()[:MAX_FIGURE_BYTES + 1]))
    return found


def earlier_predictions(earlier: dict[str, dict[str, str]]) -> dict[str, dict[int, np.ndarray]]:
    """``attempt id -> seed -> (n_test, n_classes)`` read-only arrays from their .npy (base64) form."""
    out: dict[str, dict[int, np.ndarray]] = {}
    for attempt_id, seeds in earlier.items():
        out[attempt_id] = {}
        for seed, b64 in seeds.items():
            array = np.load(io.BytesIO(base64.b64decode(b64)), allow_pickle=False)
            array.setflags(write=False)
            out[attempt_id][int(seed)] = array
    return out


def run_analysis(ctx: IdeaContext, source: str, filename: str,
                 earlier: dict[str, dict[str, str]] | None = None) -> np.ndarray:
    """Run ``source`` with ``ctx`` in its globals (``ctx.earlier_predictions`` filled from
    ``earlier``); what it saved goes back as figures. Returns a placeholder array: an analysis
    predicts nothing and is never scored."""
    ctx.earlier_predictions = earlier_predictions(earlier or {})
    (ctx.scratch / FIGURES_DIR).mkdir(exist_ok=True)
    module = type(sys)("analysis")
    module.__file__ = filename
    module.__dict__["ctx"] = ctx
    sys.modules["analysis"] = module
    exec(compile(source, filename, "exec"), module.__dict__)  # noqa: S102 - the researcher's own code, sandboxed
    sys.stdout.flush()
    ctx.figures = collect_figures(ctx)
    return np.zeros(1, dtype=np.float32)


def figure_path(ctx: IdeaContext, name: str) -> Path:
    folder = ctx.scratch / FIGURES_DIR
    folder.mkdir(exist_ok=True)
    return folder / figure_name(name)


__all__ = ["MAX_FIGURES", "MAX_FIGURE_BYTES", "encode_png", "figure_name", "run_analysis"]

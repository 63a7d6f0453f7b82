"""Returns its result as a pickle whose loading runs a shell command that touches a marker file
on the host. Contained: the parent loads .npy without pickle and refuses object arrays."""

import io
import os

import numpy as np

EXPECT = "invalid"
MATCH = "object arrays are refused"
MARKER = "/tmp/aar-hostile-pickle-bomb-detonated"


class Detonate:
    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


def _send(name, data):
    """A frame on the result pipe (fd 3), as the runtime would send it."""
    os.write(3, f"{name} {len(data)}\n".encode() + data)


def run(ctx):
    payload = np.empty(ctx.card.n_test, dtype=object)
    payload[:] = [Detonate()] * ctx.card.n_test
    fh = io.BytesIO()
    np.save(fh, payload, allow_pickle=True)
    _send("predictions.npy", fh.getvalue())
    _send("end", b"")  # as the runtime ends its stream, so the frame above is read
    os._exit(0)

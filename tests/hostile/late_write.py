"""Returns predictions of the wrong shape, and leaves a thread, an atexit handler and a detached
child to send valid ones on the result pipe after run(ctx) returned (or after the main process
ended). Contained: the child ends with os._exit right after its result; the parent reads no
further once the main process is gone and kills what it left: status `invalid`."""

import atexit
import os
import threading
import time

import numpy as np

EXPECT = "invalid"
MATCH = r"expected \d+ class ids, got 3"
RESULT_FD = 3


def _forge(ctx):
    buf = __import__("io").BytesIO()
    np.save(buf, np.asarray(ctx.weak_test_probs))
    data = buf.getvalue()
    try:
        os.write(RESULT_FD, f"predictions.npy {len(data)}\n".encode() + data)
    except OSError:
        pass


def run(ctx):
    atexit.register(_forge, ctx)
    threading.Thread(target=lambda: (time.sleep(0.5), _forge(ctx))).start()
    if os.fork() == 0:
        os.setsid()
        time.sleep(1.0)
        _forge(ctx)
        os._exit(0)
    return np.zeros(3)

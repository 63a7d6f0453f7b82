"""Returns its result as a pickle whose loading runs a shell command that touches a marker file
on the host. Contained: the parent loads .npy without pickle and refuses object arrays."""

import json
import os

import numpy as np

EXPECT = "invalid"
MATCH = "object arrays are refused"
MARKER = "/tmp/aar-hostile-pickle-bomb-detonated"


class Detonate:
    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


def run(ctx):
    with open("/aar/job.json") as fh:
        out = json.load(fh)["out_dir"]
    payload = np.empty(ctx.card.n_test, dtype=object)
    payload[:] = [Detonate()] * ctx.card.n_test
    np.save(os.path.join(out, "predictions.npy"), payload, allow_pickle=True)
    os._exit(0)

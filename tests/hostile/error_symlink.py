"""Points error.json in the output dir at a host file (/etc/passwd) and exits with an error, so
the parent would copy the host file into the error message shown to the proposer. Contained:
the parent never follows a symlink out of the output directory."""

import json
import os

EXPECT = "error"
MATCH = r"^idea process exited with code 2$"


def run(ctx):
    with open("/aar/job.json") as fh:
        out = json.load(fh)["out_dir"]
    os.symlink("/etc/passwd", os.path.join(out, "error.json"))
    os._exit(2)

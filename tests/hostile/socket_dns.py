"""Resolves names over DNS (the hub, PyPI, a public resolver by name). Contained: no network
and no resolver configuration in the sandbox."""

import socket

import numpy as np

EXPECT = "denied"
MATCH = "gaierror|Permission denied"


def run(ctx):
    for host in ("huggingface.co", "pypi.org", "one.one.one.one"):
        addresses = socket.getaddrinfo(host, 443)
        ctx.report("leak", f"{host} -> {addresses[0][4]}")
    return np.asarray(ctx.weak_test_probs)

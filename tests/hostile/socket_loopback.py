"""Connects to services on the host's loopback: a TCP port and an abstract unix socket the test
harness listens on, plus common local ports. Contained: the seccomp filter refuses socket()
(and behind it, a private network namespace where nothing listens)."""

import socket

import numpy as np

EXPECT = "error|denied"
MATCH = "ConnectionRefusedError|Permission denied"
CANARY_PORT = 47813
CANARY_ABSTRACT = b"\0aar-hostile-canary"


def run(ctx):
    errors = []
    for port in (CANARY_PORT, 22, 80, 8000, 8080, 11434):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
                ctx.report("leak", f"connected to 127.0.0.1:{port} {conn.recv(64)!r}")
                return np.asarray(ctx.weak_test_probs)
        except OSError as exc:
            errors.append(exc)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as unix:
            unix.connect(CANARY_ABSTRACT)
            ctx.report("leak", "connected to the abstract unix socket")
            return np.asarray(ctx.weak_test_probs)
    except OSError as exc:
        errors.append(exc)
    raise errors[0]

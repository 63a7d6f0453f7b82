"""Opens connections to the outside by address: TCP to public resolvers and web hosts, UDP to
a DNS server. Contained: the network namespace has only loopback."""

import socket

import numpy as np

EXPECT = "denied"
MATCH = r"\[Errno 101\] Network is unreachable|Permission denied"


def run(ctx):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.sendto(b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x04pypi\x03org\x00\x00\x01\x00\x01",
                   ("1.1.1.1", 53))
    with socket.create_connection(("8.8.8.8", 443), timeout=3):
        ctx.report("leak", "reached 8.8.8.8:443")
    return np.asarray(ctx.weak_test_probs)

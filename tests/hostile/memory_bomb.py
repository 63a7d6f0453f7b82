"""A memory bomb: allocates and touches memory until something breaks. Contained: the address
space limit turns it into a MemoryError in the idea, the host is not starved."""

EXPECT = "error"
MATCH = "MemoryError"


def run(ctx):
    hoard = []
    while True:
        hoard.append(bytearray(b"\x01") * (256 << 20))

"""A memory bomb: allocates and touches memory until something breaks. Contained, the host is
not starved: the run's cgroup kills it at the memory limit (scored `killed`), or, where cgroups
are not enforceable, the address-space limit (the limit beyond the worker's inherited runtime)
turns it into a MemoryError in the idea."""

EXPECT = "killed|error"
MATCH = "memory limit|MemoryError"


def run(ctx):
    hoard = []
    while True:
        hoard.append(bytearray(b"\x01") * (256 << 20))

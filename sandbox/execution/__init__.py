"""Scheduling of seed runs: the executor interface and its registry, the local and Ray executors,
the attempt pool of warm workers, the host-side supervisor of a warm worker, and what a run sends
back. Confinement itself is sandbox.isolation's; scoring is sandbox.scoring's."""

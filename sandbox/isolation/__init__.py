"""Confinement of idea processes: the interface (``base``), its registry, bubblewrap and its boot
file, cgroups, seccomp and device passthrough. Knows nothing of tasks, scoring or scheduling."""

"""A real two-node Ray cluster on this machine, for tests: a head and a second worker node, each
``ray start --block`` with one CPU, its own ports, a private temp dir and its own node cache.

A node may be started without cgroups (its AAR_CGROUP_ROOT points nowhere): a host that cannot
enforce whole-run limits. No node gets the starting process's AAR_STRICT_LIMITS: whether a run
is strict reaches a node only in the jobs sent to it.

Torn down by signalling only the two ``ray start`` processes this helper started (each stops
what it spawned), then killing any leftover process that names our temp dir: never a global
``ray stop``, which would hit other people's clusters on a shared machine.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from sandbox.isolation.cgroups import ROOT_ENV, STRICT_ENV

ROOT = Path(__file__).resolve().parent.parent
RAY = str(Path(sys.executable).with_name("ray"))
START_TIMEOUT_S = 90  # per try
TRIES = 3
# Ray waits 30-60 s for a node's agents and workers to start; a loaded shared 2-core machine
# can need longer.
SLOW_MACHINE = {"RAY_raylet_start_wait_time_s": "180", "RAY_agent_register_timeout_ms": "180000",
                "RAY_worker_register_timeout_seconds": "180"}


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def worker_port_range(width: int = 40) -> tuple[int, int]:
    """A run of ``width`` ports none of which is listening now."""
    for base in range(21000, 60000, 997):
        ports = range(base, base + width)
        with socket.socket() as probe:
            if all(probe.connect_ex(("127.0.0.1", p)) != 0 for p in ports[:: width // 4]):
                return base, base + width - 1
    raise RuntimeError("no free port range")


class RayCluster:
    """Head + worker node; ``address`` is HOST:PORT; ``node_cache[name]`` is each node's
    AAR_CACHE_DIR (what the node keeps of shipped caches)."""

    def __init__(self, without_cgroups: tuple[str, ...] = ()) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="aar-ray-", dir="/tmp"))  # short: unix socket paths
        self.without_cgroups = without_cgroups
        self.node_cache = {"head": self.tmp / "head-cache", "worker": self.tmp / "worker-cache"}
        self.procs: dict[str, subprocess.Popen] = {}
        self.port = free_ports(1)[0]
        self.address = f"127.0.0.1:{self.port}"

    def client_env(self) -> dict[str, str]:
        """What a driver of this cluster needs. Token auth is off: Ray keeps its token in
        ~/.ray, which every other cluster on a shared machine may regenerate; the cluster listens
        on 127.0.0.1 ports of this test only."""
        return {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}

    def _env(self, node: str) -> dict[str, str]:
        env = {**os.environ, **self.client_env(), "PYTHONPATH": str(ROOT),
               "AAR_CACHE_DIR": str(self.node_cache[node]), **SLOW_MACHINE}
        env.pop(STRICT_ENV, None)
        if node in self.without_cgroups:
            env[ROOT_ENV] = str(self.tmp / "no-cgroups")  # never made: no cgroup v1 or v2 there
        return env

    def _start(self, node: str, args: list[str]) -> None:
        ports = free_ports(6)
        low, high = worker_port_range()
        cmd = [RAY, "start", "--block", "--num-cpus=1", "--disable-usage-stats",
               f"--node-manager-port={ports[0]}", f"--object-manager-port={ports[1]}",
               f"--dashboard-agent-listen-port={ports[2]}", f"--dashboard-agent-grpc-port={ports[3]}",
               f"--metrics-export-port={ports[4]}", f"--runtime-env-agent-port={ports[5]}",
               f"--min-worker-port={low}", f"--max-worker-port={high}",
               "--object-store-memory=200000000", *args]
        log = (self.tmp / f"{node}.log").open("w")
        self.procs[node] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=self._env(node),
                                            start_new_session=True, cwd=self.tmp)

    def start(self) -> RayCluster:
        self._start_retrying("head", ["--head", f"--port={self.port}", f"--temp-dir={self.tmp / 'ray'}",
                                      "--include-dashboard=false", '--resources={"head_node": 1}'], 1)
        self._start_retrying("worker", [f"--address={self.address}", '--resources={"worker_node": 1}'], 2)
        return self

    def _start_retrying(self, node: str, args: list[str], nodes: int) -> None:
        # A raylet gives its agents ~15 s to come up; on a loaded shared machine they may not,
        # and that node never joins: stop it and start it again (a bounded number of times).
        for attempt in range(TRIES):
            self._start(node, args)
            try:
                self._wait_nodes(nodes)
                return
            except RuntimeError:
                self._stop_one(self.procs.pop(node))
                if attempt == TRIES - 1:
                    raise

    def nodes(self) -> list[dict]:
        """Alive nodes, asked of the cluster by a short-lived client (not this test process)."""
        code = (f"import json, ray; ray.init(address={self.address!r}, logging_level='ERROR', log_to_driver=False); "
                "print(json.dumps([n['Resources'] for n in ray.nodes() if n['Alive']]))")
        try:
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                                 env={**os.environ, **self.client_env()})
        except subprocess.TimeoutExpired:
            return []
        lines = out.stdout.strip().splitlines()
        return json.loads(lines[-1]) if out.returncode == 0 and lines else []

    def _wait_nodes(self, n: int) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in self.procs.values()):
                raise RuntimeError(f"ray start exited: {self.log_tail()}")
            if len(self.nodes()) >= n:
                return
            time.sleep(1)
        raise RuntimeError(f"the Ray cluster did not come up in {START_TIMEOUT_S}s: {self.log_tail()}")

    def log_tail(self) -> str:
        return " | ".join(p.read_text()[-500:] for p in self.tmp.glob("*.log"))

    def seed_workers(self, node: str = "worker") -> list[psutil.Process]:
        """Worker processes of ``node`` that are running a seed now (they have a sandbox child)."""
        root = self.procs.get(node)
        if root is None or root.poll() is not None:
            return []
        out = []
        for proc in psutil.Process(root.pid).children(recursive=True):
            try:
                if "aar-seed" in " ".join(proc.cmdline()) and proc.children():
                    out.append(proc)
            except psutil.NoSuchProcess:
                continue
        return out

    def seed_workers_after(self, timeout: float) -> list[psutil.Process]:
        """Seed workers of either node still running once they have had ``timeout`` s to exit
        (a force-cancelled task's result may be ready while its worker and sandbox still exit)."""
        deadline = time.monotonic() + timeout
        while True:
            left = self.seed_workers("worker") + self.seed_workers("head")
            if not left or time.monotonic() > deadline:
                return left
            time.sleep(0.2)

    @staticmethod
    def descendant_commands(proc: psutil.Process) -> str:
        """The command lines of ``proc``'s descendants, space-joined. A process that exits while
        they are read is skipped: gone, or a zombie its parent has not reaped yet (psutil raises
        for both; a seed's process tree under a warm worker has many short-lived processes)."""
        lines = []
        try:
            children = proc.children(recursive=True)
        except psutil.NoSuchProcess:  # ZombieProcess is one too
            return ""
        for child in children:
            try:
                lines.append(" ".join(child.cmdline()))
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return " ".join(lines)

    @staticmethod
    def kill(proc: psutil.Process) -> bool:
        """SIGKILL ``proc``; False if it had already exited."""
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            return False
        return True

    @staticmethod
    def _stop_one(proc: subprocess.Popen) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            self._stop_one(proc)
        mark = str(self.tmp)
        for proc in psutil.process_iter(["pid", "cmdline"]):  # anything of ours that outlived them
            if any(mark in arg for arg in proc.info["cmdline"] or []):
                try:
                    proc.kill()
                except psutil.NoSuchProcess:
                    pass
        shutil.rmtree(self.tmp, ignore_errors=True)

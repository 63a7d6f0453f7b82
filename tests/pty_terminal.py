"""Run ``aar`` as the foreground job of a pseudo-terminal and type Ctrl-C at it.

Writing ``\\x03`` to the master is what a person's keystroke does: the terminal's line
discipline sends SIGINT to the whole foreground process group (aar and every child it did not
move out of it), not just to aar's pid as ``os.kill`` would.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import sys
import termios
import time
from dataclasses import dataclass, field

CTRL_C = b"\x03"
COLUMNS = 250  # wide enough that no message of interest wraps


@dataclass
class Terminal:
    """One ``aar`` run at a pseudo-terminal: its pid, the master side and what it printed so far."""

    pid: int
    master: int
    out: bytes = field(default=b"")

    @property
    def text(self) -> str:
        return self.out.decode(errors="replace")

    def said(self, phrase: str) -> bool:
        """``phrase`` was printed, whatever line breaks or spacing came between its words."""
        return " ".join(phrase.split()) in " ".join(self.text.split())

    def read_until(self, marker: str, timeout_s: float = 300) -> None:
        """Read until ``marker`` was printed (or the run ended); fail with the output's tail if not."""
        deadline = time.monotonic() + timeout_s
        while not self.said(marker) and time.monotonic() < deadline:
            if not self._read(0.5):
                break
        assert self.said(marker), self.text[-3000:]

    def pump(self, wait_s: float) -> None:
        """Read what the run prints for up to ``wait_s`` (keeps its output from filling the pty)."""
        self._read(wait_s)

    def press_ctrl_c(self) -> None:
        os.write(self.master, CTRL_C)

    def wait(self, timeout_s: float = 300) -> int:
        """Read to the end of the run; its exit code (the run is killed past ``timeout_s``)."""
        deadline = time.monotonic() + timeout_s
        done, status = 0, 0
        while time.monotonic() < deadline and not done:
            open_ = self._read(0.5)
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if not open_ and not done:  # the terminal closed: the process is exiting
                done, status = os.waitpid(self.pid, 0)
        if not done:
            os.kill(self.pid, 9)
            os.waitpid(self.pid, 0)
            raise AssertionError(f"still running after {timeout_s} s: {self.text[-3000:]}")
        while self._read(0.1) and select.select([self.master], [], [], 0)[0]:  # what it printed last
            pass
        os.close(self.master)
        return os.waitstatus_to_exitcode(status)

    def _read(self, wait_s: float) -> bool:
        """Read what is there within ``wait_s``; False once the terminal closed (the run ended)."""
        ready, _, _ = select.select([self.master], [], [], wait_s)
        if not ready:
            return True
        try:
            chunk = os.read(self.master, 65536)
        except OSError:  # EIO: every process holding the terminal has exited
            return False
        self.out += chunk
        return bool(chunk)


def aar_at_a_terminal(args: list[str], env: dict[str, str]) -> Terminal:
    """Start ``aar ARGS`` in a new session whose controlling terminal is a fresh pty."""
    argv = [sys.executable, "-m", "agent.cli", *args]
    pid, master = pty.fork()
    if pid == 0:  # the child: session leader, the pty its controlling terminal, aar in the foreground
        os.execve(argv[0], argv, {**env, "TERM": "dumb"})
    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 50, COLUMNS, 0, 0))
    return Terminal(pid, master)

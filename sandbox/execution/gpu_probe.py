"""The sandboxed CUDA probe, host side: one tiny CUDA op in the same sandbox argv (device nodes,
sysfs, driver libraries, environment) a GPU seed gets, before any seed runs
(sandbox.runtime.cuda_probe is the probe itself)."""

from __future__ import annotations

from pathlib import Path

from sandbox.errors import HarnessError
from sandbox.execution.pool import run_idea
from sandbox.execution.run_output import RunOutput
from sandbox.isolation.base import Isolation, Limits
from sandbox.isolation.devices import Passthrough
from sandbox.runtime import cuda_probe

PROBE_IDEA = Path(cuda_probe.__file__)
PROBE_TIME_S = 180.0  # a torch import and a CUDA context on a loaded machine


def probe_verdict(out: RunOutput) -> str | None:
    """What a probe run's output says: why CUDA does not work in its sandbox (one line), or None."""
    if out.status != "ok":
        return f"the probe itself ended {out.status}: {(out.error or 'no reason given').splitlines()[0][:300]}"
    verdict = str(out.diagnostics.get("cuda_probe", "no verdict"))
    return None if verdict == "ok" else verdict


def probe_problem(public_dir: Path, seed: int, passthrough: Passthrough | None, isolation: Isolation,
                  limits: Limits | None = None) -> str | None:
    """Why CUDA does not work in this sandbox (one line), or None when the op ran."""
    return probe_verdict(run_idea(PROBE_IDEA, public_dir, seed, limits or Limits(time_s=PROBE_TIME_S), isolation,
                                  passthrough=passthrough))


def require_cuda(public_dir: Path, seed: int, passthrough: Passthrough | None, isolation: Isolation,
                 where: str, limits: Limits | None = None) -> None:
    """Raise one line naming the missing piece where CUDA fails in the sandbox ``where`` names."""
    problem = probe_problem(public_dir, seed, passthrough, isolation, limits)
    if problem:
        raise HarnessError(f"CUDA probe in the {isolation.name} sandbox of {where} failed: {problem}; "
                           "fix that, or run with --device cpu")

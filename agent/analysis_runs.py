"""The researcher's analysis runs: its own Python in the same sandbox and on the same warm worker
as an idea's seed, with the idea's gold-free context, never scored. Each run is committed to the
lab (code, output, figures, its metadata) with the workspace it saw, and its sandbox time is
charged to the analysis budget, which a resumed session reads back from the runs the lab holds.

An analysis also sees the researcher's own earlier attempts' predictions on the test rows (what
each seed's idea returned, kept in the lab beside the attempt): the idea's own output, never the
gold labels, the rows' dev/held-out roles or which rows it got right.
"""

from __future__ import annotations

import base64
import json
import tempfile
from collections.abc import Callable
from pathlib import Path

from agent.budget import BudgetTracker
from agent.progress import Reporter
from agent.proposers.base import AnalysisReply, BudgetStatus
from agent.session_setup import SessionContext
from experiments.layout import PREDICTIONS_DIR
from experiments.schemas import slug, utc_now
from experiments.workspace import Workspace
from sandbox.errors import HarnessError
from sandbox.execution.analysis import AnalysisOutput, write_wrapper
from sandbox.execution.analysis import run_analysis as run_in_sandbox
from sandbox.results import IdeaResult

MAX_EARLIER_ATTEMPTS = 10  # the latest attempts whose predictions an analysis sees (prompts/idea_contract.md)


class AnalysisRuns:
    """Runs analyses for one researcher and records each in the lab."""

    def __init__(self, ctx: SessionContext, reporter: Reporter, workspace: Workspace,
                 workspace_tree: Callable[[], bytes | None]) -> None:
        self.ctx = ctx
        self.reporter = reporter
        self.workspace = workspace
        self.workspace_tree = workspace_tree  # the workspace's git tree, written once per change
        self.tracker: BudgetTracker = ctx.tracker
        self._predictions: dict[str, dict[str, str]] = {}  # attempt id -> its kept predictions (immutable)
        # Analysis time spent before a resume is read back from the runs the lab holds.
        runs = ctx.store.analysis_runs(ctx.session_id)
        self.tracker.analysis_runs = len(runs)
        self.tracker.analysis_s = sum(float(r.get("runtime_s", 0.0)) for r in runs.values())

    def run(self, name: str, code: str | None, path: str | None,
            budget: Callable[[], BudgetStatus]) -> AnalysisReply:
        """Run ``code`` (inline) or the workspace file ``path``; ``budget`` gives the budget line
        the reply carries (read after the run, so it counts this one)."""
        self.tracker.check()
        self.tracker.check_analysis()
        if (code is None) == (path is None):
            raise HarnessError("give either code (inline Python) or path (a workspace file), not both or neither")
        source, filename = (code, "analysis.py") if code is not None else (
            self.workspace.text(path or ""), f"workspace/{self.workspace.check_path(path or '')}")
        index = self.tracker.analysis_runs + 1
        self.reporter.step(f"analysis {index}: {name[:60]}")
        out = self._run_in_sandbox(source, filename)
        self.tracker.analysis_runs = index
        self.tracker.analysis_s += out.runtime_s
        folder = f"{index:04d}-{slug(name)}"
        self._record(folder, name, source, path, out)
        self.reporter.line(f"analysis {index} {name[:50]}: {out.status} in {out.runtime_s:.1f}s, "
                           f"{len(out.figures)} figure(s)")
        return AnalysisReply(analysis_id=folder, name=name, source=path or "inline", output=out, budget=budget())

    def _run_in_sandbox(self, source: str, filename: str) -> AnalysisOutput:
        with tempfile.TemporaryDirectory(prefix="aar-analysis-") as tmp:
            entry = write_wrapper(source, filename, Path(tmp), self.workspace.text_files(), self.earlier_predictions())
            # The teacher of the session's first seed; the evaluator's executor and limits, so the
            # run takes the warm worker a seed would: no evaluator call, nothing is scored.
            request = self.ctx.evaluator.request(entry, self.ctx.manifest.seeds[0])
            return run_in_sandbox(self.ctx.evaluator.executor, request)

    # --- the researcher's earlier predictions ------------------------------------------------
    @staticmethod
    def predictions_file(attempt_id: str, result: IdeaResult | None) -> dict[str, str]:
        """The state file keeping an attempt's test-row predictions, one .npy (base64) per seed
        that returned valid ones; {} when none did."""
        seeds = {str(s.seed): base64.b64encode(s.test_probs_npy).decode("ascii")
                 for s in (result.seeds if result else []) if s.test_probs_npy}
        return {f"{PREDICTIONS_DIR}/{attempt_id}.json": json.dumps({"rows": "test", "seeds": seeds})} if seeds else {}

    def earlier_predictions(self) -> dict[str, dict[str, str]]:
        """``attempt id -> seed -> .npy (base64)`` of this researcher's latest attempts that kept
        predictions (read from the lab, so a resumed session sees its earlier run's too)."""
        found: dict[str, dict[str, str]] = {}
        for a in reversed(self.ctx.attempts):
            if len(found) == MAX_EARLIER_ATTEMPTS:
                break
            if a.attempt_id not in self._predictions:
                text = self.ctx.store.read_session_file(self.ctx.session_id, f"{PREDICTIONS_DIR}/{a.attempt_id}.json")
                self._predictions[a.attempt_id] = json.loads(text)["seeds"] if text else {}
            if self._predictions[a.attempt_id]:
                found[a.attempt_id] = self._predictions[a.attempt_id]
        return dict(reversed(found.items()))  # oldest first

    def _record(self, folder: str, name: str, source: str, path: str | None, out: AnalysisOutput) -> None:
        meta = {"name": name, "source": path or "inline", "status": out.status, "runtime_s": out.runtime_s,
                "reports": out.reports, "figures": [f.name for f in out.figures], "dropped": out.dropped,
                "error": out.error, "researcher": self.ctx.researcher, "created_at": utc_now(),
                "weak_seed": self.ctx.manifest.seeds[0]}
        files: dict[str, bytes | str] = {"analysis.json": json.dumps(meta, indent=2) + "\n", "code.py": source,
                                         "output.txt": out.output + (f"\n{out.traceback}" if out.traceback else "")}
        files.update({f"figures/{f.name}": f.png for f in out.figures})
        self.ctx.store.record_analysis(self.ctx.session_id, folder, files, self.workspace_tree(),
                                       f"analysis {folder}: {out.status}")


__all__ = ["AnalysisRuns"]

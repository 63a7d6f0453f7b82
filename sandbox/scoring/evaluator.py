"""The trusted evaluator: runs an idea outside the parent, validates and scores its output.

Gold labels are read here and nowhere the idea can reach. Only aggregates leave: accuracy and
PGR per seed, never which test rows were right.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from sandbox.baseline_ideas import VANILLA_NAME, baseline_path, vanilla_name
from sandbox.cache.splits import CONFIRMATION, HELDOUT, SELECTION
from sandbox.cache.task_cache import TaskCache, stat
from sandbox.errors import BudgetExhaustedError, HarnessError
from sandbox.execution.base import Executor, SeedRequest, SeedResources
from sandbox.execution.gpu_probe import PROBE_IDEA, PROBE_TIME_S, probe_verdict
from sandbox.execution.local import LocalExecutor
from sandbox.execution.run_output import RunOutput
from sandbox.files import atomic_write
from sandbox.isolation.base import DEFAULT_ISOLATION, SEED_TIME_S, Isolation, Limits
from sandbox.isolation.devices import Passthrough, host_gpus, resolve_device, run_passthrough
from sandbox.isolation.registry import get_isolation
from sandbox.results import ACC_STEP, IdeaResult, PairedDiff, SeedResult, shown_acc
from sandbox.runtime.context import weak_teacher_dir
from sandbox.scoring.ceiling_check import ceiling_check
from sandbox.scoring.flags import (
    at_ceiling_flag,
    class_balance_flag,
    code_flags,
    reaches_ceiling,
    result_flags,
)
from sandbox.scoring.t_stats import scipy_stats, t_half_width, t_test_p_value
from sandbox.tasks.models import model_mounts

VANILLA = baseline_path(VANILLA_NAME)
ROW_SUM_TOLERANCE = 1e-3
FAR_FROM_WEAK_TV = 0.25
# GPU runs: CUDA reserves address space far beyond what it uses, so the per-process address-space
# cap cannot apply; the GPU's own memory bounds what a run can hold there, and host RAM is held
# by the run's cgroup (gpu_seed_memory).
GPU_RUN_ADDRESS_BYTES = 1 << 46
# Threads (so CPUs asked of the cluster) per seed on a remote executor, by (task kind, device):
# heads on cached features need one; a fine-tune seed tokenizes and feeds its model.
REMOTE_SEED_THREADS = {("features", "cpu"): 1, ("features", "cuda"): 1, ("finetune", "cpu"): 2,
                       ("finetune", "cuda"): 4}
GPU_HOST_RAM_SHARE = 0.75  # of the host's RAM, split between the GPUs' seeds (one per GPU at once)
MIN_GPU_SEED_MEMORY = 8 << 30


def host_ram_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def gpu_seed_memory(n_gpus: int, ram_bytes: int | None = None) -> int:
    """Host RAM one GPU seed may hold: a share of the host's, split between its GPUs (at least
    what a CPU seed gets: a 4B model is loaded in host memory before it moves to its GPU)."""
    ram = host_ram_bytes() if ram_bytes is None else ram_bytes
    return max(MIN_GPU_SEED_MEMORY, int(ram * GPU_HOST_RAM_SHARE) // max(1, n_gpus))


@dataclass
class ScoringBudget:
    """Counts every scoring call; refuses past ``max_calls``. Persisted when given a path."""

    max_calls: int | None = None
    state_path: Path | None = None
    used: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        if self.state_path and self.state_path.exists():
            self.used = int(json.loads(self.state_path.read_text()).get("used", 0))

    def remaining(self) -> int | None:
        return None if self.max_calls is None else max(0, self.max_calls - self.used)

    def require(self, calls: int) -> None:
        left = self.remaining()
        if left is not None and left < calls:
            raise BudgetExhaustedError(
                f"scoring budget exhausted: {self.used} of {self.max_calls} calls used, "
                f"{calls} needed; raise --max-scoring-calls or stop"
            )

    def charge(self, calls: int = 1) -> int:
        """Count ``calls`` scoring calls, atomically, or raise if they are not left."""
        with self._lock:
            self.require(calls)
            self.used += calls
            self._save()
            return self.used

    def refund(self, calls: int) -> None:
        """Give back reserved calls that never scored anything (the idea failed first)."""
        with self._lock:
            self.used = max(0, self.used - calls)
            self._save()

    def _save(self) -> None:
        if self.state_path:
            atomic_write(self.state_path, json.dumps({"used": self.used, "max_calls": self.max_calls}))


def validate_predictions(pred: np.ndarray, n_test: int, n_classes: int) -> tuple[np.ndarray | None, str | None]:
    """Probabilities (n_test, C) from ids or probabilities, or (None, reason)."""
    if pred.dtype.kind not in "iuf":
        return None, f"predictions must be numbers, got dtype {pred.dtype}"
    if pred.ndim == 1:
        if pred.shape[0] != n_test:
            return None, f"expected {n_test} class ids, got {pred.shape[0]}"
        if pred.dtype.kind == "f" and not (np.isfinite(pred).all() and (pred == np.round(pred)).all()):
            return None, "1-d predictions must be integer class ids"
        ids = pred.astype(np.int64)
        if ids.min(initial=0) < 0 or ids.max(initial=0) >= n_classes:
            return None, f"class ids must lie in [0, {n_classes - 1}]"
        return np.eye(n_classes, dtype=np.float64)[ids], None
    if pred.ndim != 2 or pred.shape != (n_test, n_classes):
        return None, f"expected shape ({n_test}, {n_classes}) or ({n_test},), got {pred.shape}"
    probs = pred.astype(np.float64)
    if not np.isfinite(probs).all():
        return None, "predictions contain NaN or inf"
    if probs.min() < 0 or probs.max() > 1:
        return None, "probabilities must lie in [0, 1] (apply softmax to logits)"
    if np.abs(probs.sum(axis=1) - 1).max() > ROW_SUM_TOLERANCE:
        return None, "each row of probabilities must sum to 1 (apply softmax to logits)"
    return probs, None


def degeneracy_warnings(probs: np.ndarray, weak_test_probs: np.ndarray) -> list[str]:
    n_classes = probs.shape[1]
    pred_hist = np.bincount(probs.argmax(1), minlength=n_classes) / len(probs)
    weak_hist = np.bincount(weak_test_probs.argmax(1), minlength=n_classes) / len(probs)
    warnings = []
    if pred_hist.max() >= 0.99:
        warnings.append(f"degenerate: predicts class {int(pred_hist.argmax())} for {pred_hist.max():.0%} of inputs")
    tv = 0.5 * float(np.abs(pred_hist - weak_hist).sum())
    if tv > FAR_FROM_WEAK_TV:
        warnings.append(f"class distribution far from the weak labels' (total variation {tv:.2f})")
    return warnings


class Evaluator:
    """Scores ideas on one task cache. Thread-safe. Seeds run on ``executor`` (default: the
    local pool, ``parallel`` at once, sharing ``slots`` with other evaluators); scoring always
    happens here, where the gold labels are."""

    def __init__(self, cache: TaskCache, *, isolation: str | Isolation = DEFAULT_ISOLATION,
                 budget: ScoringBudget | None = None, time_budget_s: float = SEED_TIME_S,
                 parallel: int | None = None, slots: threading.Semaphore | None = None,
                 executor: Executor | None = None, device: str = "cpu",
                 require_gap: bool = True) -> None:
        """``require_gap=False`` only for checks of the run mechanics on splits too small to have
        a weak-to-strong gap (PGR is then meaningless, but runs and accuracies are real)."""
        self.cache = cache
        self.isolation = get_isolation(isolation) if isinstance(isolation, str) else isolation
        self.budget = budget or ScoringBudget()
        self.remote = bool(executor is not None and executor.remote)
        self.device = resolve_device(device, remote=self.remote)
        # GPUs of this machine; a remote executor's nodes resolve their own (sandbox.execution.ray_node).
        self.gpus = host_gpus() if self.device == "cuda" and not self.remote else []
        # On GPUs, one seed per GPU at a time (seed i of a batch gets GPU i mod n; the local
        # executor queues seeds given the same GPU).
        self.parallel = max(1, min(parallel or os.cpu_count() or 1, len(self.gpus) or 1 << 16))
        self.time_budget_s = time_budget_s
        self.executor = executor or LocalExecutor(self.parallel, slots)
        self.card = cache.card()
        # Fine-tune tasks: the student's weights are mounted read-only into every run (with the
        # hub cache's blobs/ a snapshot's files link to).
        self.model_paths = model_mounts(self.card.student.model_dir) if self.card.student else []
        self.vanilla_idea = baseline_path(vanilla_name(self.card.kind))
        self.baselines = cache.baselines()
        b = self.baselines
        # The split with the smaller gap decides, and the message names that split's numbers.
        part, weak, ceiling = min(("dev", b.weak_dev.mean, b.ceiling_dev.mean),
                                  ("held-out", b.weak_heldout.mean, b.ceiling_heldout.mean),
                                  key=lambda p: p[2] - p[1])
        if require_gap and ceiling - weak <= 0:
            raise HarnessError(
                f"task {self.card.name}: the weak teacher ({weak:.3f} {part}) already matches or beats the "
                f"strong ceiling ({ceiling:.3f} {part}), so PGR is undefined; use a harder task, a weaker "
                "weak_model or a stronger strong_model (task.json), or larger --split-sizes")
        self._gold, self._roles = cache.gold_test(), cache.test_roles()
        self._vanilla_lock = threading.RLock()  # vanilla_pgrs -> evaluate -> _remember_vanilla
        self._probe_lock = threading.Lock()
        self._probed = False  # the sandboxed CUDA probe passed (check_gpus)

    def check_gpus(self) -> None:
        """The sandboxed CUDA probe before any seed, once: on every GPU this machine gives seeds,
        or on a node of a remote executor, through the executor and in the sandbox a seed gets.
        A broken set-up is then one line naming the missing piece, not N failed seeds."""
        with self._probe_lock:
            if self._probed:
                return
            positions = range(len(self.gpus)) if self.gpus else range(1)
            reqs = [replace(r, limits=replace(r.limits, time_s=PROBE_TIME_S))
                    for r in (self.request(PROBE_IDEA, self.card.weak_seeds[0], i) for i in positions)]
            for i, out in enumerate(self.executor.run(reqs)):
                where = f"GPU {self.gpus[i]}" if self.gpus else f"a {self.executor.name} node's GPU"
                problem = probe_verdict(out)
                if problem:
                    raise HarnessError(f"CUDA probe in the {self.isolation.name} sandbox of {where} failed: "
                                       f"{problem}; fix that, or run with --device cpu")
            self._probed = True

    def warm_up(self) -> None:
        """Start the executor's warm worker now (a session calls this before its first idea
        exists, so the sandbox start and the torch import overlap the proposer's work), and
        meanwhile import the statistics scoring needs on a thread of its own: scipy.stats costs
        ~1.2 s, which the first attempt's scoring would otherwise wait for while the cores idle."""
        threading.Thread(target=scipy_stats, name="stats-import", daemon=True).start()
        self.executor.warm(self.request(self.vanilla_idea, self.card.weak_seeds[0]))

    def _threads(self) -> int:
        """Threads per seed: this machine's cores split between the seeds it runs at once (on
        GPUs: cores / GPUs); on a remote executor what the task's seeds need, never a share of
        the head's cores, which a smaller node could not schedule (--seed-resources overrides)."""
        if self.remote:
            return REMOTE_SEED_THREADS[(self.card.kind, self.device)]
        return max(1, (os.cpu_count() or 1) // self.parallel)

    def _limits(self) -> Limits:
        limits = Limits(time_s=self.time_budget_s, threads=self._threads())
        if self.device == "cuda":
            limits.address_bytes = GPU_RUN_ADDRESS_BYTES
            limits.memory_bytes = gpu_seed_memory(max(1, len(self.gpus)))
        return limits

    def evaluate(self, idea: Path, seeds: list[int], name: str | None = None,
                 compare_vanilla: bool = True, charge: bool = True) -> IdeaResult:
        """Run and score ``idea`` on each seed; aggregate; compare with vanilla."""
        missing = [s for s in seeds if s not in self.card.weak_seeds]
        if missing:
            raise ValueError(f"seeds {missing} have no weak teacher; build the cache with more seeds")
        if self.device == "cuda":
            self.check_gpus()
        if charge:  # reserve up front, so researchers sharing a budget never overdraw it
            self.budget.charge(len(seeds))
        started = time.monotonic()
        outputs = self.executor.run([self.request(idea, s, i) for i, s in enumerate(seeds)])
        wall_s = time.monotonic() - started  # seeds run in parallel: not the sum of their times
        if charge:
            self.budget.refund(sum(1 for out in outputs if out.status != "ok" or out.predictions is None))
        results = [self.score(out, seed, charge=False) for out, seed in zip(outputs, seeds, strict=True)]
        if idea.resolve() == self.vanilla_idea.resolve():
            self._remember_vanilla(results)
        vanilla = (self.vanilla_pgrs(seeds) if compare_vanilla
                   and idea.resolve() != self.vanilla_idea.resolve() else None)
        result = self._aggregate(name or idea.stem, results, vanilla).model_copy(update={"runtime_s": wall_s})
        result.warnings = sorted({*result.warnings, *code_flags(idea.read_text(encoding="utf-8", errors="replace"))})
        return result

    def evaluate_code(self, code: str, seeds: list[int], name: str, compare_vanilla: bool = True,
                      charge: bool = True) -> IdeaResult:
        """``evaluate`` for an idea given as source text (written to a private temp file first)."""
        with tempfile.TemporaryDirectory(prefix="aar-idea-") as tmp:
            path = Path(tmp) / "idea.py"
            path.write_text(code, encoding="utf-8")
            return self.evaluate(path, seeds, name=name, compare_vanilla=compare_vanilla, charge=charge)

    def extend(self, result: IdeaResult, idea: Path, seeds: list[int]) -> IdeaResult:
        """``result`` with ``seeds`` run and scored too (racing: a promising idea earns seeds)."""
        more = self.evaluate(idea, seeds, name=result.idea, compare_vanilla=False)
        scored = result.seeds + more.seeds
        vanilla = (self.vanilla_pgrs([s.seed for s in scored])
                   if idea.resolve() != self.vanilla_idea.resolve() else None)
        merged = self._aggregate(result.idea, scored, vanilla)
        merged.warnings = sorted({*merged.warnings, *result.warnings, *more.warnings})
        return merged

    def request(self, idea: Path, seed: int, position: int = 0) -> SeedRequest:
        """One seed run: public inputs only (an executor may send it to another machine),
        plus the student's weights and, on GPUs, one GPU (``position`` mod the GPU count)."""
        gpu = self.gpus[position % len(self.gpus)] if self.gpus else None
        if self.remote and self.device == "cuda":  # the node that runs it resolves its own GPU
            passthrough = Passthrough(device="cuda").with_paths(*self.model_paths)
        else:
            passthrough = run_passthrough(self.device, self.model_paths, gpu)
        limits = self._limits()
        return SeedRequest(idea=idea.resolve(), seed=seed, public_dir=self.cache.public_dir,
                           limits=limits, isolation=self.isolation, cache_key=self.card.cache_key,
                           resources=SeedResources(cpus=float(limits.threads),
                                                   gpus=1.0 if self.device == "cuda" else 0.0),
                           passthrough=passthrough)

    def score(self, out: RunOutput, seed: int, charge: bool = True) -> SeedResult:
        base = SeedResult(seed=seed, status=out.status, runtime_s=out.runtime_s, error=out.error,
                          traceback=out.traceback, log_tail=out.log_tail, diagnostics=out.diagnostics,
                          limits_not_enforced=out.unenforced, limit_notes=out.limit_notes)
        if out.status != "ok" or out.predictions is None:
            return base
        if charge:
            self.budget.charge()
        probs, problem = validate_predictions(out.predictions, self.card.n_test, len(self.card.classes))
        if probs is None:
            return base.model_copy(update={"status": "invalid", "error": problem})
        correct = probs.argmax(1) == self._gold
        dev_acc = float(correct[self._roles == SELECTION].mean())
        ho_acc = float(correct[self._roles == HELDOUT].mean())
        b = self.baselines
        weak_test = np.load(weak_teacher_dir(self.cache.public_dir, seed) / "test_probs.npy")
        return base.model_copy(update={
            **self.dev_scores(dev_acc), "heldout_acc": ho_acc,
            "heldout_pgr": _gap_fraction(ho_acc, b.weak_heldout.mean, b.ceiling_heldout.mean),
            **self._confirmation_scores(correct),
            "warnings": [*degeneracy_warnings(probs, weak_test),
                         *class_balance_flag(probs.argmax(1), weak_test.argmax(1), self._gold, len(self.card.classes))],
            "test_probs_npy": _npy(probs),
        })

    def dev_scores(self, dev_acc: float) -> dict[str, float | None]:
        """A seed's dev accuracy and its dev PGR, which comes from the shown (rounded) accuracy:
        dev PGR and all it feeds (intervals, bounds, vs vanilla, the ranking) reach proposers."""
        b = self.baselines
        return {"dev_acc": dev_acc, "pgr": _gap_fraction(shown_acc(dev_acc), b.weak_dev.mean, b.ceiling_dev.mean)}

    def _confirmation_scores(self, correct: np.ndarray) -> dict[str, float | None]:
        """Accuracy and PGR on dev's confirmation part (none in a cache built without one)."""
        b, part = self.baselines, self._roles == CONFIRMATION
        if not part.any() or b.weak_confirm is None or b.ceiling_confirm is None:
            return {}
        acc = float(correct[part].mean())
        return {"confirm_acc": acc, "confirm_pgr": _gap_fraction(acc, b.weak_confirm.mean, b.ceiling_confirm.mean)}

    def vanilla_pgrs(self, seeds: list[int]) -> dict[int, float]:
        """Per-seed dev PGR of the vanilla baseline (computed once per cache, not charged)."""
        with self._vanilla_lock:
            known = self._known_vanilla()
            todo = [s for s in seeds if s not in known]
            if todo:  # evaluate() remembers what it scores
                self.evaluate(self.vanilla_idea, todo, compare_vanilla=False, charge=False)
                known = self._known_vanilla()
        return {s: known[s] for s in seeds if s in known}

    def _known_vanilla(self) -> dict[int, float]:
        path = self.cache.private_dir / "vanilla_pgr.json"
        return {int(k): v for k, v in json.loads(path.read_text()).items()} if path.exists() else {}

    def _remember_vanilla(self, seeds: list[SeedResult]) -> None:
        """Keep the per-seed dev PGR of a vanilla run, whoever asked for it (the baselines
        step's own vanilla row then serves as the reference: no second run)."""
        with self._vanilla_lock:
            known = self._known_vanilla()
            known.update({r.seed: r.pgr for r in seeds if r.pgr is not None and r.seed not in known})
            atomic_write(self.cache.private_dir / "vanilla_pgr.json", json.dumps(known))

    def _aggregate(self, name: str, seeds: list[SeedResult], vanilla: dict[int, float] | None) -> IdeaResult:
        ok = [r for r in seeds if r.status == "ok"]
        failing = next((r.status for r in seeds if r.status != "ok"), None)
        b = self.baselines
        result = IdeaResult(
            idea=name, task=self.card.name, cache_key=self.card.cache_key, status=failing or "ok",
            seeds=seeds, weak_acc_dev=b.weak_dev.mean, ceiling_acc_dev=b.ceiling_dev.mean,
            runtime_s=sum(r.runtime_s for r in seeds), isolation=self.isolation.name,
            warnings=sorted({*(w for r in seeds for w in r.warnings), *result_flags(seeds, b)}),
            scoring_calls=self.budget.used,
            limits_not_enforced=sorted({x for r in seeds for x in r.limits_not_enforced}),
            limit_notes=sorted({x for r in seeds for x in r.limit_notes}),
            isolation_not_enforced=self.isolation.open_channels(),
        )
        if not ok:
            return result
        if reaches_ceiling(ok, b):  # the check trains two heads once per cache, only when needed
            result.warnings = sorted({*result.warnings, at_ceiling_flag(ok, b, ceiling_check(self.cache))})
        pgrs = [r.pgr for r in ok if r.pgr is not None]
        if pgrs:  # none where the task has no gap (require_gap=False runs)
            half = t_half_width(pgrs)
            floor = rounding_floor(len(pgrs), b.ceiling_dev.mean - b.weak_dev.mean,
                                   int((self._roles == SELECTION).sum()))
            result.pgr, result.pgr_ci95 = stat(pgrs), None if half is None else max(half, floor)
        result.dev_acc = stat([r.dev_acc for r in ok if r.dev_acc is not None])
        result.heldout_acc = stat([r.heldout_acc for r in ok if r.heldout_acc is not None])
        heldout = [r.heldout_pgr for r in ok if r.heldout_pgr is not None]
        result.heldout_pgr = stat(heldout) if heldout else None
        confirm = [r.confirm_pgr for r in ok if r.confirm_pgr is not None]
        if len(confirm) == len(ok):
            result.confirm_pgr = stat(confirm)
            result.confirm_acc = stat([r.confirm_acc for r in ok if r.confirm_acc is not None])
        if vanilla:
            result.vs_vanilla = paired_difference({r.seed: r.pgr for r in ok if r.pgr is not None}, vanilla)
        return result


def rounding_floor(n: int, gap: float, dev_rows: int) -> float:
    """The narrowest 95% half-width of dev PGR that ``n`` seeds' rounded accuracies support: each
    accuracy is known only to ``ACC_STEP`` (a uniform error, sd step/sqrt(12)), so seeds that round
    alike do not show an idea without noise; without the floor their interval is 0 and the lower
    bound ranks them as certain. None where the dev rows are so few (one row is at least a step)
    that the rounding hides nothing."""
    if n < 2 or gap <= 0 or dev_rows * ACC_STEP <= 1:
        return 0.0
    step_sd = ACC_STEP / gap / np.sqrt(12)
    return float(scipy_stats().t.ppf(0.975, n - 1) * step_sd / np.sqrt(n))


def paired_difference(idea: dict[int, float], vanilla: dict[int, float]) -> PairedDiff | None:
    shared = sorted(set(idea) & set(vanilla))
    if not shared:
        return None
    diffs = [idea[s] - vanilla[s] for s in shared]
    p_value = None
    if len(diffs) >= 2:
        if np.std(diffs) == 0:
            p_value = 1.0 if diffs[0] == 0 else 0.0
        else:
            p_value = t_test_p_value(diffs)
    return PairedDiff(mean=float(np.mean(diffs)), ci95=t_half_width(diffs), p_value=p_value, n=len(diffs))


def _npy(probs: np.ndarray) -> bytes:
    """``probs`` as float32 .npy bytes (no pickle)."""
    buf = io.BytesIO()
    np.save(buf, probs.astype(np.float32), allow_pickle=False)
    return buf.getvalue()


def _gap_fraction(acc: float, weak: float, ceiling: float) -> float | None:
    """PGR; undefined (None) where there is no gap, which only ``require_gap=False`` runs meet."""
    return None if ceiling == weak else (acc - weak) / (ceiling - weak)

"""Builders shared by the history tests (no tests here): manifests, results and attempts."""

from __future__ import annotations

import random

from experiments.schemas import Attempt, SessionManifest, TokenUsage, new_attempt_id, utc_now
from sandbox.results import IdeaResult, PairedDiff, SeedResult, Stat

IDEA = '''"""Linear head on weak soft labels."""
from sandbox.runtime import train_head


def run(ctx):
    head = train_head(ctx.features("unlabeled"), ctx.weak_soft, seed=ctx.seed, epochs={epochs})
    return head.predict_proba(ctx.features("test"))
'''


def manifest(session_id: str, task: str = "wordnet-10", proposer: str = "offline",
             created_at: str | None = None) -> SessionManifest:
    return SessionManifest(
        session_id=session_id, task=task, cache_key="k" * 16, proposer=proposer, model=None,
        prompt_versions={"system": "abc123"}, seeds=[0, 1, 2], package_versions={"aar": "0.1.0"},
        direction="be bold", budgets={"max_attempts": 10, "split_sizes": "200,600,200,200"},
        created_at=created_at or utc_now())


def result(name: str, pgrs: list[float], task: str = "wordnet-10", status: str = "ok") -> IdeaResult:
    seeds = [SeedResult(seed=i, status=status, dev_acc=0.5 + p / 4, pgr=p, heldout_acc=0.49 + p / 4,
                        heldout_pgr=p - 0.01, runtime_s=1.5, log_tail=f"seed {i} done")
             for i, p in enumerate(pgrs)]
    mean = sum(pgrs) / len(pgrs)
    stat = Stat(mean=mean, sd=0.0, n=len(pgrs), values=pgrs)
    return IdeaResult(
        idea=name, task=task, cache_key="k" * 16, status=status, seeds=seeds, pgr=stat, pgr_ci95=0.05,
        dev_acc=Stat(mean=0.5 + mean / 4, sd=0.0, n=len(pgrs), values=[0.5 + p / 4 for p in pgrs]),
        heldout_acc=Stat(mean=0.49 + mean / 4, sd=0.0, n=len(pgrs), values=[0.49 + p / 4 for p in pgrs]),
        heldout_pgr=Stat(mean=mean - 0.01, sd=0.0, n=len(pgrs), values=[p - 0.01 for p in pgrs]),
        vs_vanilla=PairedDiff(mean=mean - 0.3, ci95=0.1, p_value=0.2, n=len(pgrs)),
        weak_acc_dev=0.5, ceiling_acc_dev=0.75, runtime_s=4.5, isolation="process",
        warnings=["class distribution far from the weak labels' (total variation 0.30)"] if mean < 0 else [])


def attempt(session_id: str, index: int, name: str | None = None, pgr: float | None = 0.3,
            attempt_id: str | None = None, parent_id: str | None = None, researcher: str = "r0",
            status: str = "ok", task: str = "wordnet-10") -> Attempt:
    name = name or f"idea {index}"
    res = None if pgr is None else result(name, [pgr, pgr + 0.02, pgr - 0.02], task=task, status=status)
    return Attempt(
        attempt_id=attempt_id or new_attempt_id(),
        session_id=session_id, index=index, name=name,
        rationale=f"Try {name}: fewer epochs may overfit less to weak errors.",
        code=IDEA.format(epochs=10 + index), parent_id=parent_id, result=res, status=status if res else "error",
        log=f"step {index} log\n" * 3, transcript=[{"request": {"messages": [{"role": "user", "content": "go"}]},
                                                    "response": {"content": [{"type": "text", "text": name}]}}],
        usage=TokenUsage(input_tokens=1000, output_tokens=200, cost_usd=0.012), created_at=utc_now(),
        researcher=researcher)


def random_pgrs(rng: random.Random, n: int = 3) -> list[float]:
    base = rng.uniform(-0.2, 0.9)
    return [base + rng.gauss(0, 0.03) for _ in range(n)]

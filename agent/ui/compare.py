"""Compare several attempts: one column per attempt, rows for dev and held-out figures and for
each seed (dev PGR and held-out PGR), the code of each against the first."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from experiments.schemas import Attempt
from experiments.views import num, pgr_ci, vs_text
from sandbox.results import IdeaResult, SeedResult

MAX_COMPARED = 8
LETTERS = "ABCDEFGH"


@dataclass(frozen=True)
class CompareRow:
    """One row of the comparison: a label, a group (for styling) and one cell per attempt."""

    label: str
    group: str
    cells: list[str]

    @property
    def differs(self) -> bool:
        return len(set(self.cells)) > 1


def compare_ids(values: list[str]) -> list[str]:
    """Attempt ids from ``?ids=a,b,c``, repeated ``?id=``, or ``?a=&b=``, in order, without repeats."""
    out: list[str] = []
    for raw in values:
        for text in raw.split(","):
            if text.strip() and text.strip() not in out:
                out.append(text.strip())
    return out


def _of(result: IdeaResult | None, fn: Callable[[IdeaResult], str]) -> str:
    return "—" if result is None else fn(result)


def _seed(result: IdeaResult | None, seed: int) -> SeedResult | None:
    return next((s for s in result.seeds if s.seed == seed), None) if result else None


def _seed_cell(result: IdeaResult | None, seed: int, field: str) -> str:
    found = _seed(result, seed)
    if found is None:
        return "—"
    return num(getattr(found, field), True) if found.status == "ok" else found.status


def compare_rows(attempts: list[Attempt]) -> list[CompareRow]:
    """The comparison table: identity, dev, held-out, cost, then per-seed dev and held-out PGR."""
    res = [a.result for a in attempts]

    def row(label: str, group: str, fn: Callable[[int], str]) -> CompareRow:
        return CompareRow(label, group, [fn(i) for i in range(len(attempts))])

    rows = [
        row("attempt", "id", lambda i: f"{attempts[i].attempt_id} #{attempts[i].index}"),
        row("idea", "id", lambda i: attempts[i].name),
        row("status", "id", lambda i: attempts[i].status),
        row("dev PGR", "dev", lambda i: _of(res[i], lambda r: pgr_ci(r.pgr.mean if r.pgr else None, r.pgr_ci95))),
        row("dev acc", "dev", lambda i: _of(res[i], lambda r: num(r.dev_acc.mean if r.dev_acc else None))),
        row("Δ vs vanilla", "dev", lambda i: _of(res[i], lambda r: vs_text(r.vs_vanilla.mean, r.vs_vanilla.p_value)
                                                   if r.vs_vanilla else "—")),
        row("held-out PGR", "heldout", lambda i: _of(res[i], lambda r: num(r.heldout_pgr.mean if r.heldout_pgr
                                                                             else None, True))),
        row("held-out acc", "heldout", lambda i: _of(res[i], lambda r: num(r.heldout_acc.mean if r.heldout_acc
                                                                             else None))),
        row("runtime", "cost", lambda i: _of(res[i], lambda r: f"{r.runtime_s:.1f}s")),
        row("model cost", "cost", lambda i: f"${attempts[i].usage.cost_usd:.4f}"),
    ]
    seeds = sorted({s.seed for r in res if r for s in r.seeds})
    for field, label, group in (("pgr", "dev PGR", "seed"), ("heldout_pgr", "held-out PGR", "seed-heldout")):
        for seed in seeds:
            cells = [_seed_cell(r, seed, field) for r in res]
            rows.append(CompareRow(f"{label} seed {seed}", group, cells))
    return rows

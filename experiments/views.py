"""Rich renderables for the history commands (tables, an attempt page, diffs)."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from rich.console import Group, RenderableType
from rich.markdown import Markdown
from rich.panel import Panel
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from experiments.checks import IdeaCheck
from experiments.ranking import BOUND_COLUMN, MEAN_COLUMN, RULE
from experiments.schemas import Attempt, AttemptSummary, CheckReport, Review, SessionSummary
from sandbox.results import IdeaResult
from sandbox.untrusted import rich_text

LOG_TAIL_LINES = 40


def num(value: float | None, signed: bool = False, digits: int = 3) -> str:
    if value is None:
        return "—"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def pgr_ci(pgr: float | None, ci: float | None) -> str:
    return "—" if pgr is None else num(pgr, True) + ("" if ci is None else f" ± {ci:.3f}")


def vs_text(mean: float | None, p: float | None) -> str:
    return "—" if mean is None else num(mean, True) + ("" if p is None else f" (p={p:.2f})")


def keep_whole(table: Table, *headers: str) -> Table:
    """Never cut or fold the named columns (ids): a narrow terminal wraps the other columns
    instead, so every id shown can be copied into the next command."""
    for column in table.columns:
        if column.header in headers:
            cells = [Text.from_markup(c).cell_len if isinstance(c, str) else 0 for c in column.cells]
            column.no_wrap = True
            column.min_width = max([len(str(column.header)), *cells])
    return table


def status_text(status: str) -> Text:
    return Text(status, style="green" if status == "ok" else "red")


def sessions_table(sessions: list[SessionSummary]) -> Table:
    table = Table("session", "task", "proposer", "attempts", "ok", f"best: {MEAN_COLUMN}", BOUND_COLUMN, "cost",
                  "status", "started", title=f"{len(sessions)} session(s)", caption=f"best: {RULE}")
    for s in sessions:
        proposer = s.proposer + (f" / {s.model}" if s.model else "")
        if len(s.researchers) > 1:
            proposer += f" ×{len(s.researchers)}"
        table.add_row(s.session_id, s.task, proposer, str(s.attempts), str(s.ok), num(s.best_pgr, True),
                      num(s.best_lower, True), f"${s.cost_usd:.2f}", s.status, s.created_at.replace("T", " ")[:19])
    return keep_whole(table, "session")


def ideas_table(rows: list[AttemptSummary], title: str) -> Table:
    # no session column: an attempt id starts with its session's id
    table = Table("attempt", "#", "idea", "status", "dev PGR ± 95% CI", "Δ vs vanilla", "dev acc",
                  "cost", "review", title=title)
    for r in rows:
        review = Text(r.review or "", style="green" if r.review == "accept" else "red")
        table.add_row(r.attempt_id, str(r.index), rich_text(r.name, 40), status_text(r.status),
                      pgr_ci(r.pgr, r.pgr_ci95), vs_text(r.vs_vanilla, r.vs_vanilla_p), num(r.dev_acc),
                      f"${r.cost_usd:.3f}", review)
    return keep_whole(table, "attempt")


def checks_text(checks: list[IdeaCheck]) -> str:
    """An attempt's end-of-session checks in a cell: fresh-seed and transfer held-out PGR, and the
    fresh seeds' PGR on dev's confirmation part (rows the search never saw scores of)."""
    parts = []
    for c in checks:
        where = "fresh seeds" if c.kind == "confirm" else f"on {c.task}"
        confirm = f" (confirmation part {num(c.confirm_pgr, True)})" if c.confirm_pgr is not None else ""
        parts.append(f"{where}: {num(c.heldout_pgr, True)}{confirm}" if c.status == "ok" else f"{where}: {c.status}")
    return "; ".join(parts)


def leaderboard_table(rows: list[AttemptSummary], task: str,
                      checks: dict[str, list[IdeaCheck]] | None = None) -> Table:
    shown = [r for r in rows if (checks or {}).get(r.attempt_id)]  # the column only when there are checks
    table = Table("rank", "attempt", "idea", f"dev PGR ± 95% CI\n{BOUND_COLUMN}", "Δ vs vanilla", "seeds", "dev acc",
                  "held-out acc", "held-out PGR", *(["checks (held-out PGR)"] if shown else []),
                  "review", title=f"leaderboard: {task}",
                  caption=f"{RULE}; dev figures: dev's selection part, the rows the search chose on (a dev-only "
                          "verdict); held-out and the checks' confirmation part were never shown to proposers")
    rank = 0
    for r in rows:
        rank += not r.rejected
        extra = [checks_text((checks or {}).get(r.attempt_id, []))] if shown else []
        review = rich_text(f"rejected: {r.review_note}", 60) if r.rejected else (r.review or "")
        table.add_row("—" if r.rejected else str(rank), r.attempt_id, rich_text(r.name, 40),
                      f"{pgr_ci(r.pgr, r.pgr_ci95)}\n≥ {num(r.pgr_lower, True)}", vs_text(r.vs_vanilla, r.vs_vanilla_p),
                      str(r.n_seeds), num(r.dev_acc), num(r.heldout_acc), num(r.heldout_pgr, True), *extra, review)
    return keep_whole(table, "attempt")


def diagnostics_text(values: dict[str, float | int | str | bool]) -> str:
    """An idea's ``ctx.report`` values in a cell, numbers at four significant digits."""
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())


def seeds_table(attempt: Attempt) -> Table | None:
    if attempt.result is None:
        return None
    diagnostics = any(s.diagnostics for s in attempt.result.seeds)
    table = Table("seed", "status", "dev acc", "dev PGR", "held-out acc", "held-out PGR", "runtime",
                  *(["ctx.report"] if diagnostics else []), "warnings / error", title="per seed")
    for s in attempt.result.seeds:
        note = "; ".join([*s.warnings, *([s.error] if s.error else [])])
        extra = [rich_text(diagnostics_text(s.diagnostics), 90)] if diagnostics else []
        table.add_row(str(s.seed), status_text(s.status), num(s.dev_acc), num(s.pgr, True), num(s.heldout_acc),
                      num(s.heldout_pgr, True), f"{s.runtime_s:.1f}s", *extra, rich_text(note, 90))
    return table


def _header(attempt: Attempt, summary: AttemptSummary) -> Table:
    grid = Table.grid(padding=(0, 2))
    res = attempt.result
    facts = [
        ("attempt", f"{attempt.attempt_id}  (#{attempt.index} of {attempt.session_id}, {attempt.researcher})"),
        ("status", attempt.status), ("commit", summary.commit), ("parent", attempt.parent_id or "—"),
        ("dev PGR", pgr_ci(res.pgr.mean if res and res.pgr else None, res.pgr_ci95 if res else None)),
        ("held-out PGR", num(res.heldout_pgr.mean if res and res.heldout_pgr else None, True)
         + "  (people only: never shown to the proposer)"),
        ("Δ vs vanilla", vs_text(res.vs_vanilla.mean, res.vs_vanilla.p_value) if res and res.vs_vanilla else "—"),
        ("model", f"${attempt.usage.cost_usd:.4f}, {attempt.usage.total_tokens:,} tokens, "
                  f"{len(attempt.transcript)} call(s)"),
        ("time", attempt.created_at + (f", ran {res.runtime_s:.1f}s ({res.isolation})" if res else "")),
    ]
    for key, value in facts:
        grid.add_row(Text(key, style="bold"), value)
    return grid


def code_diff(old: str, new: str, old_name: str, new_name: str) -> str:
    return "".join(difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                        old_name, new_name))


def reviews_group(reviews: Iterable[Review]) -> RenderableType | None:
    lines = [Text.assemble((r.verdict, "green" if r.verdict == "accept" else "red"),
                           f" by {r.reviewer}" + (f" <{r.email}>" if r.email else "") + f" at {r.created_at}: "
                           f"{r.note}") for r in reviews]
    return Panel(Group(*lines), title="reviews") if lines else None


def attempt_page(attempt: Attempt, summary: AttemptSummary, parent: Attempt | None,
                 reviews: list[Review]) -> list[RenderableType]:
    """What ``aar show`` prints."""
    parts: list[RenderableType | None] = [
        Panel(_header(attempt, summary), title=f"{attempt.name}"),
        Panel(Markdown(attempt.rationale or "_no rationale_"), title="rationale"),
        seeds_table(attempt),
    ]
    if attempt.result and attempt.result.warnings:
        parts.append(Panel("\n".join(attempt.result.warnings), title="warnings", style="yellow"))
    tail = "\n".join(attempt.log.rstrip().splitlines()[-LOG_TAIL_LINES:])
    parts.append(Panel(Text(tail or "(empty)"), title=f"log (last {LOG_TAIL_LINES} lines)"))
    parts.append(Panel(Syntax(attempt.code, "python", line_numbers=True), title="idea.py"))
    if parent is not None:
        diff = code_diff(parent.code, attempt.code, f"{parent.attempt_id}/idea.py", f"{attempt.attempt_id}/idea.py")
        parts.append(Panel(Syntax(diff or "(identical code)", "diff"), title=f"diff against parent {parent.name}"))
    parts.append(reviews_group(reviews))
    return [p for p in parts if p is not None]


def _vs_vanilla(r: IdeaResult) -> str:
    return vs_text(r.vs_vanilla.mean, r.vs_vanilla.p_value) if r.vs_vanilla else "—"


def _metric_rows(a: Attempt, b: Attempt) -> list[tuple[str, str, str]]:
    ra, rb = a.result, b.result

    def get(res: IdeaResult | None, fn: Callable[[IdeaResult], str]) -> str:
        return fn(res) if res is not None else "—"

    rows = [("attempt", f"{a.attempt_id} #{a.index}", f"{b.attempt_id} #{b.index}"), ("idea", a.name, b.name),
            ("status", a.status, b.status),
            ("dev PGR", get(ra, lambda r: pgr_ci(r.pgr.mean if r.pgr else None, r.pgr_ci95)),
             get(rb, lambda r: pgr_ci(r.pgr.mean if r.pgr else None, r.pgr_ci95))),
            ("dev acc", get(ra, lambda r: num(r.dev_acc.mean if r.dev_acc else None)),
             get(rb, lambda r: num(r.dev_acc.mean if r.dev_acc else None))),
            ("Δ vs vanilla", get(ra, _vs_vanilla), get(rb, _vs_vanilla)),
            ("runtime", get(ra, lambda r: f"{r.runtime_s:.1f}s"), get(rb, lambda r: f"{r.runtime_s:.1f}s")),
            ("model cost", f"${a.usage.cost_usd:.4f}", f"${b.usage.cost_usd:.4f}")]
    seeds = sorted({s.seed for r in (ra, rb) if r for s in r.seeds})
    for seed in seeds:
        rows.append((f"PGR seed {seed}", _seed_pgr(ra, seed), _seed_pgr(rb, seed)))
    return rows


def _seed_pgr(result: IdeaResult | None, seed: int) -> str:
    for s in result.seeds if result else []:
        if s.seed == seed:
            return num(s.pgr, True) if s.status == "ok" else s.status
    return "—"


@dataclass(frozen=True)
class SideRow:
    """One row of a side-by-side diff."""

    tag: str
    left_no: int | None
    left: str
    right_no: int | None
    right: str


def side_by_side_rows(old: str, new: str) -> list[SideRow]:
    """The two files aligned line by line; ``tag`` is equal, replace, delete or insert."""
    a, b = old.splitlines(), new.splitlines()
    rows: list[SideRow] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        for k in range(max(i2 - i1, j2 - j1)):
            left = i1 + k < i2
            right = j1 + k < j2
            rows.append(SideRow(tag, i1 + k + 1 if left else None, a[i1 + k] if left else "",
                                j1 + k + 1 if right else None, b[j1 + k] if right else ""))
    return rows


MARKS = {"equal": (" ", " "), "replace": ("-", "+"), "delete": ("-", " "), "insert": (" ", "+")}


def side_by_side(old: str, new: str) -> Table:
    """The two files in two columns; changed lines carry ``-``/``+`` marks (readable without
    colour: piped, NO_COLOR) and are coloured where the terminal has colour."""
    table = Table(show_header=False, box=None, padding=(0, 1), expand=True)
    for ratio in (None, 1, None, 1):
        table.add_column(ratio=ratio, overflow="fold", no_wrap=ratio is None, width=1 if ratio is None else None)
    for row in side_by_side_rows(old, new):
        style_l, style_r = ("", "") if row.tag == "equal" else ("red", "green")
        mark_l, mark_r = MARKS[row.tag]
        if not row.left and mark_l == "-":
            mark_l = " "
        table.add_row(Text(mark_l, style=style_l), Text(row.left, style=style_l),
                      Text(mark_r if row.right or row.tag == "insert" else " ", style=style_r),
                      Text(row.right, style=style_r))
    return table


def diff_page(a: Attempt, b: Attempt, unified: bool) -> list[RenderableType]:
    """What ``aar diff A B`` prints: results side by side, then the code."""
    metrics = Table("", a.attempt_id, b.attempt_id, title="results")
    for row in _metric_rows(a, b):
        metrics.add_row(*row)
    if unified:
        diff = code_diff(a.code, b.code, f"{a.attempt_id}/idea.py", f"{b.attempt_id}/idea.py")
        code: RenderableType = Syntax(diff or "(identical code)", "diff")
    else:
        code = side_by_side(a.code, b.code)
    return [metrics, Panel(code, title=f"idea.py: {a.name} | {b.name}")]


def check_page(report: CheckReport) -> list[RenderableType]:
    head = Text("healthy" if report.ok else "PROBLEMS FOUND", style="green" if report.ok else "bold red")
    lines: list[RenderableType] = [Text.assemble(head, f": {report.lab}, {report.sessions} session(s), "
                                                 f"{report.attempts} attempt(s) read back from git"
                                                 + (", index rebuilt" if report.index_rebuilt else ""))]
    lines += [Text(f"  problem: {p}", style="red") for p in report.problems]
    lines += [Text(f"  note: {n}", style="dim") for n in report.notes]
    return lines

"""Prior work as the researcher sees it: the session's leaderboard by the one ranking, and any
attempt of the lab (found by id or prefix), shown or copied (entry file and workspace snapshot)
into its workspace to build on."""

from __future__ import annotations

import re

from agent.progress import Reporter
from agent.proposers.base import AttemptView, ImportReply, LeaderboardRow
from agent.session_setup import SessionContext
from experiments.layout import StoreError
from experiments.ranking import result_bound, result_key
from experiments.schemas import Attempt
from experiments.workspace import Workspace
from sandbox.errors import HarnessError
from sandbox.results import IdeaResult


def leaderboard(ctx: SessionContext, limit: int) -> list[LeaderboardRow]:
    """The session's leaders by the one ranking; rejected attempts follow, unranked, with their notes."""
    rejected = [a for a in ctx.attempts if a.attempt_id in ctx.rejected and result_key(a.result)]
    return [_row(ctx, a) for a in ctx.ranked_attempts()[:limit]] + [_row(ctx, a) for a in rejected]


def _row(ctx: SessionContext, a: Attempt) -> LeaderboardRow:
    r = a.result
    assert r is not None and r.pgr is not None  # only ranked (scored) attempts reach here
    verdict, note = ctx.reviews.get(a.attempt_id, (None, None))
    return LeaderboardRow(
        attempt_id=a.attempt_id, name=a.name, status=a.status, pgr=r.pgr.mean, pgr_ci95=r.pgr_ci95,
        pgr_lower=result_bound(r), dev_acc=_shown_dev_acc(r),
        vs_vanilla=r.vs_vanilla.mean if r.vs_vanilla else None,
        vs_vanilla_p=r.vs_vanilla.p_value if r.vs_vanilla else None, review=verdict, review_note=note)


def find_attempt(ctx: SessionContext, attempt_id: str) -> Attempt:
    """An attempt of this session by id or prefix, else one of any session of the lab."""
    match = [a for a in ctx.attempts if a.attempt_id.startswith(attempt_id)]
    if len(match) > 1:
        raise HarnessError(f"attempt prefix {attempt_id!r} is ambiguous: give more characters")
    if match:
        return match[0]
    try:
        return ctx.store.get_attempt(attempt_id)
    except StoreError as exc:
        raise HarnessError(f"no attempt {attempt_id!r} in this lab: give an attempt_id from a result, the "
                           "leaderboard or a finding") from exc


def attempt_view(a: Attempt) -> AttemptView:
    """What the researcher is shown of an attempt (its dev figures, never anything gold-derived beyond them)."""
    return AttemptView(attempt_id=a.attempt_id, name=a.name, hypothesis=a.rationale, code=a.code,
                       parent_id=a.parent_id, status=a.status, result=a.result.for_proposer() if a.result else None)


def import_attempt(ctx: SessionContext, workspace: Workspace, reporter: Reporter, attempt_id: str) -> ImportReply:
    """Copy an attempt's entry file and workspace snapshot into ``workspace`` under imported/."""
    found = find_attempt(ctx, attempt_id)
    files: dict[str, bytes] = {"idea.py": found.code.encode("utf-8")}
    tree = ctx.store.attempt_workspace(found.attempt_id) if found.extra.get("workspace") else None
    if tree is not None:
        files.update({f"workspace/{rel}": data
                      for rel, data in Workspace.from_tree(ctx.store.objects, tree).files.items()})
    folder = "imported/a_" + re.sub(r"[^A-Za-z0-9_]", "_", found.attempt_id)  # an importable package name
    written = workspace.add_files(folder, files)
    reporter.line(f"imported attempt {found.attempt_id} ({len(written)} files) into {folder}")
    return ImportReply(attempt=attempt_view(found), session_id=found.session_id, folder=folder, files=written,
                       workspace=workspace.usage_line())


__all__ = ["attempt_view", "find_attempt", "import_attempt", "leaderboard"]


def _shown_dev_acc(result: IdeaResult) -> float | None:
    """Mean dev accuracy as proposers see it (over the seeds' rounded accuracies)."""
    view = result.for_proposer()
    return view.dev_acc.mean if view.dev_acc else None

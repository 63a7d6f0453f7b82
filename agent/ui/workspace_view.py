"""The attempt page's workspace part: the files the attempt ran with (its committed workspace
snapshot) and the analysis runs of its step (code, output, reported values, figures), read
from the attempt's own commit, so the page shows exactly what the lab holds.

The analysis runs of a step are those committed after the session's previous attempt and up to
this one (the commits are the order of events); their figures are served by
``/attempts/{aid}/analyses/{folder}/figures/{name}`` as checked PNGs (sandbox/execution/analysis.py),
only under a name the run's ``analysis.json`` lists.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agent.ui.findings import round_floats
from agent.ui.lab import NotFound
from agent.ui.render import python_html
from experiments.gitobjects import TREE_MODE
from experiments.layout import ANALYSES_DIR, ANALYSIS_FILE, ATTEMPTS_DIR, WORKSPACE_DIR, StoreError
from experiments.schemas import AttemptSummary
from experiments.store import LabStore
from experiments.workspace import Workspace, WorkspaceError
from sandbox.execution.analysis import check_png

MAX_SHOWN_BYTES = 64 * 1024  # a file or an output larger than this is cut on the page (the lab keeps it whole)


@dataclass(frozen=True)
class FileView:
    """One workspace file, ready for the template."""

    path: str
    size: int
    html: Markup | None  # highlighted Python, or None when shown as plain text
    text: str | None  # plain text (cut), or None for a binary file
    cut: bool = False


@dataclass(frozen=True)
class AnalysisView:
    """One analysis run of the attempt's step."""

    folder: str
    name: str
    status: str
    runtime_s: float
    source: str
    code: Markup
    output: str
    reports: dict[str, Any]
    figures: list[tuple[str, str]]  # (name, URL)
    dropped: list[str]
    error: str | None


@dataclass(frozen=True)
class WorkspaceSection:
    """What the attempt page shows of the workspace; empty lists when the attempt had none."""

    entry: str | None = None
    files: list[FileView] = field(default_factory=list)
    analyses: list[AnalysisView] = field(default_factory=list)
    problem: str | None = None  # a committed snapshot that could not be read, in one line


def workspace_section(store: LabStore, summary: AttemptSummary, previous: AttemptSummary | None,
                      entry: str | None = None) -> WorkspaceSection:
    """The attempt's workspace files and the analysis runs of its step (since ``previous``)."""
    try:
        files = _files(store, summary)
        problem = None
    except WorkspaceError as exc:
        files, problem = [], f"the committed workspace could not be read: {exc}"
    return WorkspaceSection(entry=entry, files=files, analyses=_analyses(store, summary, previous), problem=problem)


def _files(store: LabStore, summary: AttemptSummary) -> list[FileView]:
    tree = _subtree(store, summary.commit, f"{ATTEMPTS_DIR}/{summary.folder}/{WORKSPACE_DIR}")
    if tree is None:
        return []
    views = []
    for path, data in sorted(Workspace.from_tree(store.objects, tree).files.items()):
        try:
            text = data[:MAX_SHOWN_BYTES].decode("utf-8")
        except UnicodeDecodeError:
            views.append(FileView(path, len(data), None, None))
            continue
        cut = len(data) > MAX_SHOWN_BYTES
        html = python_html(text) if path.endswith(".py") and not cut else None
        views.append(FileView(path, len(data), html, None if html is not None else text, cut))
    return views


def _analyses(store: LabStore, summary: AttemptSummary, previous: AttemptSummary | None) -> list[AnalysisView]:
    now = _folders(store, summary.commit)
    before = set(_folders(store, previous.commit)) if previous is not None else set()
    return [_analysis(store, summary.attempt_id, folder, sha) for folder, sha in now.items() if folder not in before]


def _analysis(store: LabStore, attempt_id: str, folder: str, tree: bytes) -> AnalysisView:
    entries = store.objects.read_tree(tree)

    def text(name: str) -> str:
        entry = entries.get(name)
        data = store.objects.read(entry[0], "blob") if entry else b""
        return data[:MAX_SHOWN_BYTES].decode("utf-8", errors="replace")

    meta = json.loads(text(ANALYSIS_FILE) or "{}")
    base = f"/attempts/{quote(attempt_id)}/analyses/{quote(folder)}/figures/"
    return AnalysisView(
        folder=folder, name=str(meta.get("name", folder)), status=str(meta.get("status", "?")),
        runtime_s=float(meta.get("runtime_s", 0.0)), source=str(meta.get("source", "inline")),
        code=python_html(text("code.py")), output=text("output.txt"), reports=_rounded(meta.get("reports") or {}),
        figures=[(str(n), base + quote(str(n))) for n in meta.get("figures") or []],
        dropped=[str(d) for d in meta.get("dropped") or []], error=meta.get("error"))


def _rounded(reports: dict[str, Any]) -> dict[str, Any]:
    """ctx.report values as the forum shows numbers: long decimals rounded, the rest as written."""
    return {str(k): round_floats(str(v)) for k, v in reports.items()}


def _subtree(store: LabStore, commit: str, path: str) -> bytes | None:
    entry = store.objects.lookup(store.objects.commit_tree(commit), path)
    return entry[0] if entry is not None and entry[1] == TREE_MODE else None


def _folders(store: LabStore, commit: str) -> dict[str, bytes]:
    """``folder -> tree`` of the analysis runs committed on the branch up to ``commit``."""
    tree = _subtree(store, commit, ANALYSES_DIR)
    found = store.objects.read_tree(tree) if tree is not None else {}
    return {name: sha for name, (sha, mode) in sorted(found.items()) if mode == TREE_MODE}


# -- the figure route ----------------------------------------------------------------------
def analysis_figure(request: Request) -> Response:
    aid, folder, name = (request.path_params[k] for k in ("aid", "folder", "name"))
    with request.app.state.lab.open() as store:
        try:
            summary = store.index.find(aid)
        except StoreError as exc:
            raise NotFound(str(exc)) from exc
        tree = _folders(store, summary.commit).get(folder)
        view = _analysis(store, summary.attempt_id, folder, tree) if tree is not None else None
        if view is None or name not in [n for n, _ in view.figures]:
            raise NotFound(f"attempt {summary.attempt_id} has no analysis figure {folder}/{name}")
        entry = store.objects.lookup(tree, f"figures/{name}")
        data = store.objects.read(entry[0], "blob") if entry else b""
    if check_png(data)[0] is not None:  # checked when recorded; a lab edited since is not trusted
        raise NotFound(f"analysis figure {folder}/{name} is not a well-formed PNG")
    return Response(data, media_type="image/png", headers={"X-Content-Type-Options": "nosniff"})


ROUTES = [Route("/attempts/{aid}/analyses/{folder}/figures/{name}", analysis_figure, name="analysis_figure")]

__all__ = ["ROUTES", "WorkspaceSection", "workspace_section"]

"""The attempt page's workspace part (agent/ui/workspace_view.py) through Starlette's test
client: the files the attempt ran with, the analysis runs of its step (code, output, reported
values, figures), the figure route and what it refuses, and escaping of what a model wrote."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from agent.ui import create_app
from experiments.store import LabStore
from experiments.workspace import Workspace
from sandbox.runtime.analysis import encode_png
from tests.test_history_support import attempt, manifest

BASE = "http://127.0.0.1:8765"
SID = "ws-session"
HELPERS = "def fit(ctx):\n    return ctx.weak_test_probs  # HELPERS_MARK\n"
PNG = encode_png([[0, 128, 255], [255, 128, 0]])


def analysis(store: LabStore, folder: str, ws: Workspace, output: str, figures: dict[str, bytes] | None = None,
             meta: dict | None = None) -> None:
    """One analysis run as agent/analysis_runs.py commits it."""
    figures = figures or {}
    info = {"name": folder.split("-", 1)[1], "source": "inline", "status": "ok", "runtime_s": 0.25,
            "reports": {"agreement": 0.75}, "figures": sorted(figures), "dropped": [], "error": None, **(meta or {})}
    files: dict[str, bytes | str] = {"analysis.json": json.dumps(info), "code.py": f"print('{folder}')\n",
                                     "output.txt": output, **{f"figures/{n}": d for n, d in figures.items()}}
    store.record_analysis(SID, folder, files, ws.to_tree(store.objects), f"analysis {folder}: ok")


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """analysis 0001 → attempt 1 (helpers.py) → analyses 0002, 0003 → attempt 2 (helpers.py, main.py);
    and a session whose attempt had no workspace."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("USER", "tester")
    monkeypatch.setenv("AAR_CACHE_DIR", str(tmp_path / "cache"))
    store = LabStore.open(tmp_path / "lab")
    store.create_session(manifest(SID))
    ws = Workspace({"helpers.py": HELPERS.encode()})
    analysis(store, "0001-first-look", ws, "first look output\n")
    one = attempt(SID, 1, "via helper")
    one.extra["workspace"] = {"entry": None, "files": ["helpers.py"], "modules": True}
    store.record_attempt(one, workspace=ws.to_tree(store.objects))
    ws.create("main.py", "from helpers import fit\n\n\ndef run(ctx):\n    return fit(ctx)\n")
    ws.create("notes.md", "<script>alert('notes')</script>\n")
    ws.add_files("data", {"blob.bin": b"\xff\xfe\x00"})
    analysis(store, "0002-confidence", ws, "\x1b[31m<script>alert(1)</script>\n", {"confidence.png": PNG})
    analysis(store, "0003-second-look", ws, "second look output\n")
    two = attempt(SID, 2, "entry file")
    two.extra["workspace"] = {"entry": "main.py", "files": sorted(ws.files), "modules": True}
    store.record_attempt(two, workspace=ws.to_tree(store.objects))
    store.create_session(manifest("plain-session"))
    plain = attempt("plain-session", 1, "no workspace")
    store.record_attempt(plain)
    return store, one.attempt_id, two.attempt_id, plain.attempt_id


@pytest.fixture
def client(lab) -> TestClient:
    return TestClient(create_app(lab[0].path, live_poll_s=0.05, live_max_s=1.0), base_url=BASE)


def section(html: str) -> str:
    return html.split('id="workspace"', 1)[1].split("</section>", 1)[0]


def test_the_attempt_page_shows_the_files_it_ran_with_and_its_steps_analyses(client, lab):
    _, one, two, _ = lab
    first = section(client.get(f"/attempts/{one}").text)
    assert "<code>helpers.py</code>" in first and "HELPERS_MARK" in first and "main.py" not in first
    assert "0001-first-look" in first and "first look output" in first and "0002-confidence" not in first
    page = client.get(f"/attempts/{two}")
    assert page.status_code == 200
    second = section(page.text)
    assert "entry <code>main.py</code>" in second and "<code>notes.md</code>" in second
    assert "Not UTF-8 text (3 bytes)" in second  # data/blob.bin named, not dumped
    assert "0001-first-look" not in second  # an earlier step's analysis belongs to attempt 1
    assert second.index("0002-confidence") < second.index("0003-second-look")
    assert "<code>agreement</code>=0.75" in second and "second look output" in second
    url = f"/attempts/{two}/analyses/0002-confidence/figures/confidence.png"
    assert f'<img src="{url}" alt="confidence.png">' in second


def test_what_a_model_wrote_is_escaped(client, lab):
    html = section(client.get(f"/attempts/{lab[2]}").text)
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;script&gt;alert(&#39;notes&#39;)&lt;/script&gt;" in html


def test_the_figure_route_serves_listed_well_formed_pngs_only(client, lab):
    store, one, two, _ = lab
    good = client.get(f"/attempts/{two}/analyses/0002-confidence/figures/confidence.png")
    assert good.status_code == 200 and good.content == PNG
    assert good.headers["content-type"] == "image/png" and good.headers["x-content-type-options"] == "nosniff"
    for path in (f"/attempts/{two}/analyses/0002-confidence/figures/other.png",  # not listed
                 f"/attempts/{two}/analyses/0009-none/figures/confidence.png",  # no such run
                 f"/attempts/{one}/analyses/0002-confidence/figures/confidence.png",  # committed after attempt 1
                 f"/attempts/{two}/analyses/0002-confidence/figures/..%2Fanalysis.json",
                 "/attempts/nosuchattempt/analyses/0002-confidence/figures/confidence.png"):
        assert client.get(path).status_code == 404, path


def test_a_listed_figure_that_is_not_a_png_is_refused(client, lab):
    store, _, _, _ = lab
    ws = Workspace({"x.py": b"X = 1\n"})
    analysis(store, "0004-bad", ws, "", {"bad.png": b"<svg onload=alert(1)>"})
    late = attempt(SID, 3, "after a bad figure")
    store.record_attempt(late, workspace=ws.to_tree(store.objects))
    page = section(client.get(f"/attempts/{late.attempt_id}").text)
    assert "0004-bad" in page
    bad = client.get(f"/attempts/{late.attempt_id}/analyses/0004-bad/figures/bad.png")
    assert bad.status_code == 404 and b"<svg" not in bad.content and "not a well-formed PNG" in bad.text


def test_an_attempt_without_a_workspace_has_no_workspace_section(client, lab):
    page = client.get(f"/attempts/{lab[3]}")
    assert page.status_code == 200 and 'id="workspace"' not in page.text

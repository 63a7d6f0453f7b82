"""Stars and tags on attempts: set from the attempt page (CSRF-checked posts), stored in the lab
as git notes, shown in the tables and filterable with ?tag=."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from agent.ui import create_app
from experiments.layout import StoreError
from experiments.store import LabStore
from experiments.tags import TAGS_REF, parse_tags, read_all_tags, set_tags
from tests.test_ui import BASE, rows_of
from tests.test_ui_support import RUNNING, small_lab


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("USER", "tester")
    monkeypatch.setenv("AAR_CACHE_DIR", str(tmp_path / "cache"))
    return small_lab(tmp_path / "lab")[0]


@pytest.fixture
def app(lab):
    return create_app(lab.path)


@pytest.fixture
def client(app) -> TestClient:
    return TestClient(app, base_url=BASE)


def post(client: TestClient, app, aid: str, **data: str):
    return client.post(f"/attempts/{aid}/tags", data={"csrf": app.state.access.csrf, **data},
                       follow_redirects=False)


def test_star_and_tag_an_attempt_from_its_page_stored_as_git_notes(lab, app, client):
    page = client.get("/attempts/att0004aaaa").text
    assert 'id="star-button"' in page and 'action="/attempts/att0004aaaa/tags"' in page
    done = post(client, app, "att0004aaaa", star="1")
    assert done.status_code == 303 and done.headers["location"] == "/attempts/att0004aaaa?tagged=1#tags"
    post(client, app, "att0004aaaa", tags="Promising, label-noise promising")
    assert read_all_tags(lab) == [("att0004aaaa", ["star", "promising", "label-noise"])]
    commit = lab.index.find("att0004aaaa").commit
    note = subprocess.run(["git", "notes", "--ref", TAGS_REF, "show", commit], cwd=lab.path,
                          capture_output=True, text=True, check=True).stdout
    assert '"label-noise"' in note
    page = client.get("/attempts/att0004aaaa").text
    assert "★ starred" in page and 'value="promising, label-noise"' in page
    post(client, app, "att0004aaaa", star="0")
    assert read_all_tags(LabStore(lab.path)) == [("att0004aaaa", ["promising", "label-noise"])]


def test_tables_show_stars_and_tags_and_filter_by_them(lab, client):
    set_tags(lab, "att0002aaaa", ["star", "promising"])
    set_tags(lab, "att0006aaaa", ["promising"])
    session = client.get(f"/sessions/{RUNNING}").text
    row = next(r for r in rows_of(session, "attempts-table") if ">idea 2<" in r)
    assert 'class="star"' in row and 'href="?tag=promising"' in row
    tagged = client.get(f"/sessions/{RUNNING}?tag=promising").text
    assert [re.search(r">(idea \d)</a>", r).group(1) for r in rows_of(tagged, "attempts-table")] == ["idea 2", "idea 6"]
    starred = client.get("/leaderboard?task=wordnet-10&tag=star").text
    assert [re.search(r">(idea \d)</a>", r).group(1) for r in rows_of(starred, "leaderboard")] == ["idea 2"]
    set_tags(lab, "att0002aaaa", [])
    assert "No attempts match" in client.get(f"/sessions/{RUNNING}?tag=star").text


def test_bad_tags_and_stale_forms_are_refused_with_a_clear_message(lab, app, client):
    bad = post(client, app, "att0004aaaa", tags="ok, <script>")
    assert bad.status_code == 400 and "is not allowed" in bad.text
    stale = client.post("/attempts/att0004aaaa/tags", data={"csrf": "forged", "star": "1"})
    assert stale.status_code == 400 and "stale" in stale.text
    assert client.get(f"/sessions/{RUNNING}?tag=NOT A TAG").status_code == 400
    assert read_all_tags(lab) == []
    with pytest.raises(StoreError, match="at most"):
        parse_tags(",".join(f"t{i}" for i in range(20)))

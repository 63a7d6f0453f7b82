"""Sortable, filterable dashboard tables: the order and filters live in the URL, column headers
toggle the order, unknown sort keys are a 400 page, baselines are marked leaderboard rows."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from agent.ui import create_app
from tests.test_ui import BASE, rows_of
from tests.test_ui_support import FINISHED, RUNNING, small_lab


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("USER", "tester")
    monkeypatch.setenv("AAR_CACHE_DIR", str(tmp_path / "cache"))
    return small_lab(tmp_path / "lab")[0]


@pytest.fixture
def client(lab) -> TestClient:
    return TestClient(create_app(lab.path), base_url=BASE)


def names(html: str, table: str) -> list[str]:
    return [re.search(r'class="attempt-link"[^>]*>([^<]+)</a>', r).group(1) for r in rows_of(html, table)]


def test_attempts_sort_by_any_column_both_ways_and_headers_toggle(client):
    up = client.get(f"/sessions/{RUNNING}?sort=dev_pgr").text
    assert names(up, "attempts-table") == ["idea 5", "idea 1", "idea 7", "idea 2", "idea 4", "idea 6", "idea 3"]
    down = client.get(f"/sessions/{RUNNING}?sort=-dev_pgr").text
    assert names(down, "attempts-table")[:2] == ["idea 6", "idea 4"] and names(down, "attempts-table")[-1] == "idea 3"
    # the sorted header links to the other direction; the others to their first direction
    assert 'href="/sessions/' + RUNNING + '?sort=dev_pgr"' in down and 'aria-sort="descending"' in down
    assert f'href="/sessions/{RUNNING}?sort=-heldout_pgr"' in down and f'href="/sessions/{RUNNING}?sort=name"' in down


def test_sort_keeps_the_filters_and_the_filters_keep_the_sort(client):
    page = client.get(f"/sessions/{RUNNING}?status=ok&q=idea&sort=-dev_acc&page=1").text
    assert f'href="/sessions/{RUNNING}?status=ok&amp;q=idea&amp;sort=dev_acc"' in page  # page dropped, filters kept
    form = page.split('id="filters"', 1)[1].split("</form>", 1)[0]
    assert 'name="sort" value="-dev_acc"' in form and 'name="q" value="idea"' in form


def test_text_search_filters_attempts(client):
    page = client.get(f"/sessions/{RUNNING}?q=IDEA 6").text
    assert names(page, "attempts-table") == ["idea 6"]
    by_id = client.get(f"/sessions/{RUNNING}?q=att0002").text
    assert names(by_id, "attempts-table") == ["idea 2"]
    assert "No attempts match" in client.get(f"/sessions/{RUNNING}?q=nothing-like-this").text


def test_unknown_sort_keys_and_filters_are_clear_400_pages(client):
    for url in (f"/sessions/{RUNNING}?sort=bogus", "/leaderboard?sort=-cost_per_seed", "/?sort=nope",
                "/?status=paused", "/?task=nowhere"):
        page = client.get(url)
        assert page.status_code == 400, url
        assert "Traceback" not in page.text and "use one of" in page.text
    text = client.get("/?sort=nope").text
    assert "cannot sort this table by &#39;nope&#39;" in text and "click a column header" in text
    long = client.get(f"/sessions/{RUNNING}?q=" + "x" * 300)
    assert long.status_code == 400 and "keep it under 200" in long.text


def test_sessions_list_sorts_and_filters_by_status_task_and_text(client):
    def sids(url: str) -> list[str]:
        return re.findall(r'class="session-link" href="/sessions/([^"]+)"', client.get(url).text)

    assert sids("/") == [RUNNING, FINISHED]
    assert sids("/?sort=started") == [FINISHED, RUNNING]
    assert sids("/?sort=-best") == [RUNNING, FINISHED]  # lower bounds 0.56 and 0.38
    assert sids("/?sort=best") == [FINISHED, RUNNING]
    assert sids("/?status=finished") == [FINISHED]
    assert sids("/?task=wordnet-10") == [RUNNING]
    assert sids("/?q=SST2") == [FINISHED]
    empty = client.get("/?q=zzz").text
    assert "No session matches these filters" in empty and "0 shown of 2" in empty


def test_leaderboard_shows_baselines_as_marked_rows_in_rank_order(lab, client, tmp_path):
    m = lab.manifest(RUNNING)
    private = tmp_path / "cache" / "private" / f"wordnet-10-{m.cache_key}"
    private.mkdir(parents=True)
    (private / "baseline_summary_0-1-2.json").write_text(json.dumps([
        {"name": "vanilla_soft", "status": "ok", "pgr": 0.35, "pgr_ci95": 0.05, "heldout_pgr": 0.33,
         "pgr_values": [0.3, 0.35, 0.4]},
        {"name": "aux_confidence", "status": "ok", "pgr": 0.7, "pgr_ci95": 0.05, "heldout_pgr": 0.66,
         "pgr_values": [0.65, 0.7, 0.75]}]))
    page = client.get("/leaderboard?task=wordnet-10").text
    body = page.split('id="leaderboard"', 1)[1].split("</table>", 1)[0]
    order = re.findall(r'attempt-link"[^>]*>(idea \d)</a>|<td>(\w+) <small>built-in', body)
    labels = [a or b for a, b in order]
    # lower bounds: aux 0.65, idea 6 0.56, 4 0.47, 2 0.40, 7 0.35, vanilla 0.30, idea 1 0.25, 5 -0.15
    assert labels == ["aux_confidence", "idea 6", "idea 4", "idea 2", "idea 7", "vanilla_soft", "idea 1", "idea 5"]
    assert body.count('class="baseline"') == 2 and "+0.660" in body  # held-out PGR of the baseline
    ranks = re.findall(r'<td class="n">(\d+)</td>', body)
    assert ranks == ["1", "2", "3", "4", "5", "6"]  # baselines take no rank
    hidden = client.get("/leaderboard?task=wordnet-10&baselines=0").text
    assert 'class="baseline"' not in hidden and "Show the built-in baselines" in hidden
    paged = client.get("/leaderboard?task=wordnet-10&per=2&page=2").text
    assert paged.count('class="baseline"') == 0  # both sort outside idea 4 and idea 2
    last = client.get("/leaderboard?task=wordnet-10&per=2&page=3").text
    assert last.count('class="baseline"') == 1 and "vanilla_soft" in last


def test_leaderboard_sorted_by_heldout_places_baselines_by_that_column(lab, client, tmp_path):
    m = lab.manifest(RUNNING)
    private = tmp_path / "cache" / "private" / f"wordnet-10-{m.cache_key}"
    private.mkdir(parents=True)
    (private / "baseline_summary_0-1-2.json").write_text(json.dumps([
        {"name": "aux_confidence", "status": "ok", "pgr": 0.1, "pgr_ci95": 0.05, "heldout_pgr": 0.9}]))
    body = client.get("/leaderboard?task=wordnet-10&sort=-heldout_pgr").text.split('id="leaderboard"', 1)[1]
    assert body.index("aux_confidence") < body.index(">idea 6<")
    assert "back to the ranking" in client.get("/leaderboard?task=wordnet-10&sort=-heldout_pgr").text

"""Dashboard pages beyond the tables: the held-out vs dev scatter and per-seed strips, the chart's
best line leaving rejected attempts out, compare of several attempts, readable forum posts, and
the export's baseline lines and scatter."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from agent.ui import create_app
from agent.ui.findings import finding_html, round_floats
from experiments.forum import Forum
from experiments.report import load, to_html, to_markdown
from experiments.reviews import add_review
from tests.test_ui import BASE, rows_of
from tests.test_ui_support import RUNNING, small_lab


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("USER", "tester")
    monkeypatch.setenv("AAR_CACHE_DIR", str(tmp_path / "cache"))
    return small_lab(tmp_path / "lab")[0]


@pytest.fixture
def client(lab) -> TestClient:
    return TestClient(create_app(lab.path), base_url=BASE)


def write_baselines(lab, tmp_path: Path) -> None:
    m = lab.manifest(RUNNING)
    private = tmp_path / "cache" / "private" / f"wordnet-10-{m.cache_key}"
    private.mkdir(parents=True)
    (private / "baseline_summary_0-1-2.json").write_text(json.dumps([
        {"name": "vanilla_soft", "status": "ok", "pgr": 0.25, "pgr_ci95": 0.05, "heldout_pgr": 0.2},
        {"name": "aux_confidence", "status": "ok", "pgr": 0.4, "pgr_ci95": 0.05, "heldout_pgr": 0.35}]))


def test_session_page_has_a_scatter_of_every_scored_attempt_and_seed_strips(client):
    page = client.get(f"/sessions/{RUNNING}").text
    scatter = page.split('id="scatter"', 1)[1].split("</svg>", 1)[0]
    dots = re.findall(r'<g class="dot" data-attempt="(\w+)">', scatter)
    assert sorted(dots) == ["att0001aaaa", "att0002aaaa", "att0004aaaa", "att0005aaaa", "att0006aaaa",
                            "att0007aaaa"]  # the errored attempt 3 has no score
    assert 'href="/attempts/att0006aaaa"' in scatter and 'class="diagonal"' in scatter
    assert scatter.count('stroke="#2a9d8f"') == 1  # one best, ringed
    strips = page.split('id="seed-strips"', 1)[1].split("</svg>", 1)[0]
    assert strips.count('class="seed-dev"') == 18 and strips.count('class="seed-heldout"') == 18  # 6 x 3 seeds
    assert strips.index("#6 idea 6") < strips.index("#4 idea 4")  # leading attempts first


def test_a_rejected_attempt_is_never_the_best_on_the_chart_or_the_scatter(lab, client):
    add_review(lab, "att0006aaaa", "reject", "leaks labels")
    page = client.get(f"/sessions/{RUNNING}").text
    figure = json.loads(re.search(r'id="pgr-figure">(.*?)</script>', page, re.S).group(1))
    best = next(t for t in figure["data"] if t["name"] == "best so far")
    assert max(best["y"]) == pytest.approx(0.52)  # idea 4, not the rejected idea 6 (0.61)
    scatter = page.split('id="scatter"', 1)[1].split("</svg>", 1)[0]
    rejected = scatter.split('data-attempt="att0006aaaa"', 1)[1].split("</g>", 1)[0]
    assert 'fill="none" stroke="#c0392b"' in rejected and "(rejected)" in rejected
    ringed = scatter.split('data-attempt="att0004aaaa"', 1)[1].split("</g>", 1)[0]
    assert 'stroke="#2a9d8f"' in ringed


def test_compare_three_attempts_with_heldout_and_per_seed_rows(client):
    page = client.get("/compare?ids=att0001aaaa,att0004aaaa,att0006aaaa")
    assert page.status_code == 200
    table = page.text.split('id="compare-metrics"', 1)[1].split("</table>", 1)[0]
    assert re.findall(r"<th>([A-H])</th>", table) == ["A", "B", "C"]
    rows = {re.search(r"<th>([^<]+)</th>", r).group(1): re.findall(r"<td[^>]*>([^<]*)</td>", r)
            for r in re.findall(r"<tr class=.*?</tr>", table, re.S)}
    assert rows["idea"] == ["idea 1", "idea 4", "idea 6"]
    assert rows["dev PGR seed 1"] == ["+0.320", "+0.540", "+0.630"]
    assert "held-out PGR" in rows and "held-out PGR seed 2" in rows
    assert rows["held-out PGR seed 0"][2] != "—"
    assert page.text.count('class="source diff"') == 2  # B and C against A
    same = client.get("/compare?id=att0001aaaa&id=att0004aaaa&id=att0006aaaa").text
    assert same.count("<th>C</th>") == 1
    for bad in ("/compare?ids=att0001aaaa", "/compare?ids=" + ",".join(f"att000{i}aaaa" for i in range(1, 10))):
        answer = client.get(bad)
        assert answer.status_code == 400 and "pick two to 8 attempts" in answer.text


def test_forum_rounds_long_floats_and_shows_json_as_a_key_value_list(lab, client):
    body = ('Paired test p=0.044343478871442125. Over 5 seeds, gain 0.12 (tiny: 0.0000123).\n\n'
            '{"lr": 0.00031622776601683794, "epochs": 12, "loss": "soft", "aux": {"w": 0.5}}\n\n'
            'Inline: {"temperature": 2.0}.')
    Forum(lab).post(RUNNING, "r0", "Soft labels at p=0.0123456789 help", body)
    page = client.get("/forum").text
    assert "0.044343478871442125" not in page and "p=0.044" in page and "1.2e-05" in page
    assert "gain 0.12 " in page  # short numbers as written
    assert "p=0.012 help" in page
    kv = page.split('<dl class="kv">', 1)[1]
    assert "<dt>lr</dt><dd>3.2e-04</dd>" in kv and "<dt>epochs</dt><dd>12</dd>" in kv
    assert '<dt>aux</dt><dd><dl class="kv"><dt>w</dt><dd>0.500</dd>' in kv
    assert '<span class="kv-inline">temperature=2.000</span>' in page
    assert "{&#34;lr&#34;" not in page and '{"lr"' not in page


def test_finding_html_keeps_markup_disabled_and_leaves_broken_json_alone():
    html = str(finding_html('<script>alert(1)</script> {"a": 1'))
    assert "<script>" not in html and '{"a": 1' in html.replace("&quot;", '"')
    assert round_floats("v1.2.3456 and x=1.23456.") == "v1.2.3456 and x=1.235."


def test_export_draws_baseline_lines_and_a_heldout_vs_dev_scatter(lab, tmp_path):
    write_baselines(lab, tmp_path)
    data = load(lab, RUNNING)
    chart = data.chart()
    assert "vanilla +0.25" in chart and "best baseline +0.40" in chart
    md = to_markdown(data)
    assert "## Held-out vs dev PGR" in md and 'class="diagonal"' in md
    assert md.count('<g class="dot"') == 6
    html = to_html(data)
    assert html.count("<svg") == 2 and "best baseline +0.40" in html


def test_export_best_line_leaves_rejected_attempts_out(lab):
    add_review(lab, "att0006aaaa", "reject", "leaks labels")
    chart = load(lab, RUNNING).chart()
    assert "best +0.520" in chart and "best +0.610" not in chart


def test_attempt_tables_show_heldout_pgr(client):
    row = rows_of(client.get(f"/sessions/{RUNNING}").text, "attempts-table")[5]
    assert "idea 6" in row and re.search(r'<td class="n">\+0\.\d{3}</td>\s*<td class="n lo">\$', row)

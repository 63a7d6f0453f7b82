"""The dashboard through Starlette's test client: pages, pagination, filters, errors, access
rules, reviews written to git, the forum, live events."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from agent.ui import create_app
from agent.ui.chart import best_so_far
from agent.ui.queries import ChartPoint
from agent.ui.references import references
from experiments.store import LabStore
from tests.test_history_support import attempt
from tests.test_ui_support import FINISHED, GROUP, RUNNING, add_group, small_lab

BASE = "http://127.0.0.1:8765"


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("USER", "tester")
    monkeypatch.setenv("AAR_CACHE_DIR", str(tmp_path / "cache"))
    store, made = small_lab(tmp_path / "lab")
    return store, made


@pytest.fixture
def client(lab) -> TestClient:
    store, _ = lab
    return TestClient(create_app(store.path, live_poll_s=0.05, live_max_s=1.0), base_url=BASE)


def rows_of(html: str, table_id: str) -> list[str]:
    body = html.split(f'id="{table_id}"', 1)[1].split("</table>", 1)[0]
    return re.findall(r"<tr>.*?</tr>", body.split("<tbody>", 1)[1], flags=re.S)


def test_sessions_list_links_every_session_and_task(client):
    page = client.get("/")
    assert page.status_code == 200
    for sid in (RUNNING, FINISHED):
        assert f'href="/sessions/{sid}"' in page.text
    assert 'href="/leaderboard?task=wordnet-10"' in page.text and 'href="/leaderboard?task=sst2"' in page.text
    assert len(rows_of(page.text, "sessions")) == 2
    assert "+0.610" in page.text  # best PGR of the running session, linked to its attempt
    assert 'href="/attempts/att0006aaaa"' in page.text
    one = client.get("/?per=1&page=2")
    assert len(rows_of(one.text, "sessions")) == 1 and "page 2 of 2" in one.text and FINISHED in one.text


def test_session_timeline_chart_table_and_live_marker(client):
    page = client.get(f"/sessions/{RUNNING[:15]}")  # a unique prefix is enough
    assert page.status_code == 200
    assert len(rows_of(page.text, "attempts-table")) == 7
    assert 'id="live"' in page.text and "/static/plotly.min.js" in page.text
    figure = json.loads(re.search(r'id="pgr-figure">(.*?)</script>', page.text, re.S).group(1))
    traces = {t["name"]: t for t in figure["data"]}
    assert traces["attempts"]["x"] == [1, 2, 4, 5, 6, 7]
    assert traces["failed"]["x"] == [3]
    assert traces["best so far"]["y"] == pytest.approx([0.30, 0.45, 0.45, 0.52, 0.52, 0.61, 0.61])
    lines = sorted(s["y0"] for s in figure["layout"]["shapes"])
    assert lines[0] == 0.0 and lines[-1] == 1.0
    assert pytest.approx(0.30) in lines  # vanilla from the lab: pgr - paired difference (builders: 0.3)
    finished = client.get(f"/sessions/{FINISHED}")
    assert 'id="live"' not in finished.text and "status-finished" in finished.text


def test_session_table_paginates_and_filters_by_status(client):
    first = client.get(f"/sessions/{RUNNING}?per=3")
    numbers = [re.search(r'class="n">(\d+)<', r).group(1) for r in rows_of(first.text, "attempts-table")]
    assert numbers == ["1", "2", "3"]
    assert "page 1 of 3" in first.text and 'rel="next"' in first.text
    last = client.get(f"/sessions/{RUNNING}?per=3&page=3")
    assert len(rows_of(last.text, "attempts-table")) == 1 and "page 3 of 3" in last.text
    errors = client.get(f"/sessions/{RUNNING}?status=error")
    rows = rows_of(errors.text, "attempts-table")
    assert len(rows) == 1 and "idea 3" in rows[0]
    assert client.get(f"/sessions/{RUNNING}?status=bogus").status_code == 400


def test_leaderboard_ranks_by_dev_pgr_with_ci_heldout_and_filters(client):
    page = client.get("/leaderboard?task=wordnet-10")
    rows = rows_of(page.text, "leaderboard")
    names = [re.search(r">(idea \d)</a>", r).group(1) for r in rows]
    assert names == ["idea 6", "idea 4", "idea 2", "idea 7", "idea 1", "idea 5"]  # ok only, best first
    assert "+0.610 ± 0.050" in rows[0] and "0.642" in rows[0]  # CI and held-out acc (0.49 + 0.61/4)
    everything = rows_of(client.get("/leaderboard?task=wordnet-10&status=all").text, "leaderboard")
    assert len(everything) == 7 and "idea 3" in everything[-1]
    paged = client.get("/leaderboard?task=wordnet-10&per=2&page=2")
    assert [re.search(r'class="n">(\d+)<', r).group(1) for r in rows_of(paged.text, "leaderboard")] == ["3", "4"]
    assert client.get("/leaderboard?task=nope").status_code == 404


def test_attempt_page_shows_code_rationale_seeds_warnings_log_diff_and_transcript(client):
    page = client.get("/attempts/att0004aaaa")
    assert page.status_code == 200
    text = page.text
    assert 'class="hl"' in text and "linenos" in text and "train_head" in text  # highlighted code
    assert "fewer epochs may overfit" in text  # rationale
    assert len(rows_of(text, "seeds")) == 3
    assert "Diff against parent" in text and "epochs=13" in text and "epochs=14" in text
    assert "step 4 log" in text
    assert "Raising the confidence threshold should help." in text and "tool: run_experiment" in text
    assert 'href="/attempts/att0003aaaa"' in text and 'href="/attempts/att0005aaaa"' in text  # prev / next
    warned = client.get("/attempts/att0005aaaa").text
    assert 'id="warnings"' in warned and "class distribution far from" in warned
    failed = client.get("/attempts/att0003aaaa").text
    assert "never ran" in failed


def test_missing_attempt_and_session_are_404_pages(client):
    for url in ("/attempts/zzzz9999", f"/sessions/{'x' * 20}", "/attempts/att0001aaaa/files/secrets.txt", "/nope"):
        page = client.get(url)
        assert page.status_code == 404, url
        assert "<h1>404" in page.text and "Traceback" not in page.text


def test_attempt_files_are_served_raw(client, lab):
    _, made = lab
    idea = client.get("/attempts/att0002aaaa/files/idea.py")
    assert idea.status_code == 200 and idea.text == made["att0002aaaa"].code
    assert client.get("/attempts/att0002aaaa/files/result.json").json()["task"] == "wordnet-10"


def test_missing_or_corrupt_lab_gives_a_clear_page(tmp_path):
    missing = TestClient(create_app(tmp_path / "nowhere"), base_url=BASE).get("/")
    assert missing.status_code == 503 and "no lab repository at" in missing.text
    empty = LabStore.open(tmp_path / "empty").path
    for url in ("/", "/leaderboard", "/forum"):
        page = TestClient(create_app(empty), base_url=BASE).get(url)
        assert page.status_code == 200 and 'class="empty"' in page.text
    junk = tmp_path / "junk"
    (junk / ".git").mkdir(parents=True)
    (junk / ".git" / "HEAD").write_text("garbage")
    page = TestClient(create_app(junk), base_url=BASE).get("/leaderboard")
    assert page.status_code == 503 and "not a lab repository" in page.text and "Traceback" not in page.text


def test_a_damaged_attempt_is_a_clear_page_not_a_stack_trace(lab, client):
    store, _ = lab
    commit = store.index.find("att0002aaaa").commit
    blob = store.repo.commit(commit).tree / f"attempts/{store.index.find('att0002aaaa').folder}/idea.py"
    (store.git_dir / "objects" / blob.hexsha[:2] / blob.hexsha[2:]).unlink()  # a lost object
    page = client.get("/attempts/att0002aaaa")
    assert page.status_code == 503 and "aar check" in page.text and "Traceback" not in page.text
    assert client.get(f"/sessions/{RUNNING}").status_code == 200  # the rest of the session still shows


def test_binding_elsewhere_needs_a_token_and_every_request_checks_it(lab):
    store, _ = lab
    with pytest.raises(ValueError, match="--token"):
        create_app(store.path, host="0.0.0.0")
    app = create_app(store.path, host="0.0.0.0", token="s3cret")
    client = TestClient(app, base_url="http://lab.example:8765")
    assert client.get("/").status_code == 401
    assert client.get("/?token=wrong").status_code == 401
    assert client.get("/attempts/att0001aaaa/files/idea.py").status_code == 401
    assert client.get("/", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    entry = client.get("/leaderboard?token=s3cret&task=sst2", follow_redirects=False)
    assert entry.status_code == 303 and entry.headers["location"] == "/leaderboard?task=sst2"
    assert "httponly" in entry.headers["set-cookie"].lower()
    assert client.get("/leaderboard?task=sst2").status_code == 200  # the cookie carries it now
    post = TestClient(app, base_url="http://lab.example:8765").post(
        "/attempts/att0001aaaa/review", data={"verdict": "accept", "note": "x", "csrf": app.state.access.csrf})
    assert post.status_code == 401


def test_loopback_server_refuses_foreign_host_headers(client):
    assert client.get("/", headers={"host": "attacker.example"}).status_code == 400
    assert client.get("/", headers={"host": "localhost:8765"}).status_code == 200


def test_cli_refuses_a_public_bind_without_token(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "agent.cli", "ui", "--lab", str(tmp_path), "--host", "0.0.0.0"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--token" in proc.stderr


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def test_review_post_writes_a_git_note_the_cli_reads(client, lab):
    store, _ = lab
    token = csrf_of(client.get("/attempts/att0006aaaa").text)
    assert client.post("/attempts/att0006aaaa/review", data={"verdict": "accept", "note": "x"}).status_code == 400
    assert client.post("/attempts/att0006aaaa/review", headers={"origin": "http://evil.example"},
                       data={"verdict": "accept", "note": "x", "csrf": token}).status_code == 400
    assert client.post("/attempts/att0006aaaa/review",
                       data={"verdict": "maybe", "note": "x", "csrf": token}).status_code == 400
    done = client.post("/attempts/att0006aaaa/review", follow_redirects=False,
                       data={"verdict": "accept", "note": "checked the seeds by hand", "csrf": token})
    assert done.status_code == 303 and done.headers["location"].startswith("/attempts/att0006aaaa?reviewed=accept")
    commit = LabStore(store.path).index.find("att0006aaaa").commit
    note = subprocess.run(["git", "notes", "--ref", "aar-reviews", "show", commit], cwd=store.path,
                          capture_output=True, text=True, check=True).stdout
    assert "checked the seeds by hand" in note and '"accept"' in note
    page = client.get(done.headers["location"]).text
    assert "checked the seeds by hand" in page and "review-accept" in page
    assert "accepted" in client.get(f"/sessions/{RUNNING}").text


def test_compare_two_attempts(client):
    page = client.get("/compare?id=att0001aaaa&id=att0006aaaa")
    assert page.status_code == 200
    metrics = page.text.split('id="compare-metrics"', 1)[1].split("</table>", 1)[0]
    assert "idea 1" in metrics and "idea 6" in metrics and "PGR seed 2" in metrics
    assert "sbs-replace" in page.text and "epochs=11" in page.text and "epochs=16" in page.text
    assert client.get("/compare?id=att0001aaaa").status_code == 400


def test_forum_empty_state_then_posts(client, lab):
    store, _ = lab
    assert "No findings posted" in client.get("/forum").text
    forum = pytest.importorskip("experiments.forum")
    forum.Forum(store).post(RUNNING, "r1", "Confidence filtering beats vanilla", "Seen on *3 seeds*.", "att0006aaaa")
    page = client.get("/forum").text
    assert "Confidence filtering beats vanilla" in page and "<em>3 seeds</em>" in page
    assert 'href="/attempts/att0006aaaa"' in page


def test_live_events_announce_new_attempts_and_end_when_the_session_stops(client, lab):
    store, _ = lab

    def later() -> None:
        time.sleep(0.3)
        writer = LabStore(store.path)
        writer.record_attempt(attempt(RUNNING, 8, name="idea 8", attempt_id="att0008aaaa"))
        time.sleep(0.3)
        writer.set_session_status(RUNNING, "finished")

    thread = threading.Thread(target=later)
    thread.start()
    events = []
    with client.stream("GET", f"/sessions/{RUNNING}/events") as stream:
        for line in stream.iter_lines():
            if line.startswith("event:"):
                events.append(line.split(":", 1)[1].strip())
            if line.startswith("data:"):
                events.append(json.loads(line[5:]))
    thread.join()
    heads = [e for e in events if isinstance(e, dict)]
    assert [h["attempts"] for h in heads][:1] == [8] and heads[-1]["status"] == "finished"
    assert events[-2] == "end"
    assert client.get(f"/sessions/{FINISHED}/events?head=0").text.count("event: end") == 1
    assert client.get("/sessions/nope-nope-nope/events").status_code == 404


def test_best_so_far_and_reference_lines_from_the_cache(lab, tmp_path):
    points = [ChartPoint(f"a{i}", i, "r0", "x", s, p, None, "") for i, (s, p) in
              enumerate([("ok", 0.2), ("error", None), ("ok", 0.1), ("ok", 0.5)], start=1)]
    assert best_so_far(points) == ([1, 2, 3, 4], [0.2, 0.2, 0.2, 0.5])
    store, _ = lab
    m = store.manifest(RUNNING)
    private = tmp_path / "cache" / "private" / f"wordnet-10-{m.cache_key}"
    private.mkdir(parents=True)
    (private / "baseline_summary_0-1-2.json").write_text(json.dumps([
        {"name": "vanilla_soft", "status": "ok", "pgr": 0.25}, {"name": "aux_confidence", "status": "ok", "pgr": 0.4},
        {"name": "broken", "status": "error", "pgr": None}]))
    refs = {r.name: r.pgr for r in references(m, store.index, tmp_path / "cache")}
    assert refs == {"weak": 0.0, "ceiling": 1.0, "vanilla": 0.25, "best baseline (aux_confidence)": 0.4}


def test_static_files_are_local(client):
    js = client.get("/static/plotly.min.js")
    assert js.status_code == 200 and len(js.content) > 1_000_000 and "plotly" in js.text[:2000].lower()
    assert client.get("/static/app.js").status_code == 200
    assert ".hl" in client.get("/static/pygments.css").text
    page = client.get(f"/sessions/{RUNNING}").text
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing from another host


def test_parallel_researchers_have_a_group_page_with_one_chart(client, lab):
    store, _ = lab
    members = add_group(store)
    listing = client.get("/").text
    assert f'href="/groups/{GROUP}"' in listing and "(×2)" in listing
    page = client.get(f"/groups/{GROUP}")
    assert page.status_code == 200
    assert len(rows_of(page.text, "researchers")) == 2 and "direction 1" in page.text
    assert len(rows_of(page.text, "attempts-table")) == 6
    figure = json.loads(re.search(r'id="pgr-figure">(.*?)</script>', page.text, re.S).group(1))
    assert {t["name"] for t in figure["data"]} == {"attempts r0", "attempts r1", "best so far"}
    assert f'/groups/{GROUP}/events?head=' in page.text
    assert f'href="/groups/{GROUP}"' in client.get(f"/sessions/{members[1]}").text
    assert client.get("/groups/nothing-here").status_code == 404
    store.set_session_status(members[0], "finished")
    store.set_session_status(members[1], "finished")
    events = client.get(f"/groups/{GROUP}/events?head=old").text
    assert "event: head" in events and "event: end" in events and '"attempts": 6' in events


def test_an_unexpected_error_is_a_page_and_a_log_line(lab, monkeypatch, caplog):
    store, _ = lab
    from agent.ui import routes

    def broken(*args, **kwargs):
        raise RuntimeError("index exploded")

    monkeypatch.setattr(routes, "attempt_rows", broken)
    client = TestClient(create_app(store.path), base_url=BASE, raise_server_exceptions=False)
    page = client.get(f"/sessions/{RUNNING}")
    assert page.status_code == 500
    assert "RuntimeError: index exploded" in page.text and "aar check" in page.text
    assert "Traceback" not in page.text and "Traceback" in caplog.text

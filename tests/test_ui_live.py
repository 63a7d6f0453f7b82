"""The live view: the attempt in flight (published by the research loop beside the lab's git
data) with its seeds, start time and an estimate, over server-sent events; the sessions list's
own stream."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from agent.ui import create_app
from agent.ui.live import typical_gap_s
from experiments.live_status import Running, clear_running, now_iso, publish_running, read_running
from experiments.store import LabStore
from tests.test_history_support import attempt
from tests.test_ui import BASE
from tests.test_ui_support import FINISHED, RUNNING, small_lab


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("AAR_CACHE_DIR", str(tmp_path / "cache"))
    return small_lab(tmp_path / "lab")[0]


@pytest.fixture
def client(lab) -> TestClient:
    return TestClient(create_app(lab.path, live_poll_s=0.05, live_max_s=1.0), base_url=BASE)


def running(index: int = 8, idea: str = "label propagation") -> Running:
    return Running(session_id=RUNNING, researcher="r0", index=index, idea=idea, seeds=[0, 1, 2],
                   started_at=now_iso())


def events_of(client: TestClient, url: str) -> list[tuple[str, dict]]:
    out, name = [], None
    with client.stream("GET", url) as stream:
        for line in stream.iter_lines():
            if line.startswith("event:"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                out.append((name, json.loads(line[5:])))
    return out


def test_the_session_page_shows_the_idea_in_flight_its_seeds_and_an_estimate(lab, client):
    publish_running(lab.git_dir, running())
    page = client.get(f"/sessions/{RUNNING}").text
    panel = page.split('id="live"', 1)[1].split("</section>", 1)[0]
    assert "#8 label propagation" in panel and "0, 1, 2" in panel and 'data-started="' in panel
    typical = typical_gap_s([r["created_at"] for r in lab.index.chart_rows([RUNNING])])
    if typical is None:  # the test lab's attempts are written within a second of each other
        assert "no estimate before two attempts" in panel
    else:  # a slow machine
        assert f"attempts take about {round(typical)} s here" in panel
    clear_running(lab.git_dir, RUNNING, "r0")
    assert read_running(lab.git_dir, RUNNING) == []
    assert "the proposer is choosing the next idea" in client.get(f"/sessions/{RUNNING}").text
    assert 'id="live"' not in client.get(f"/sessions/{FINISHED}").text


def test_events_announce_a_new_idea_in_flight_without_a_commit(lab):
    client = TestClient(create_app(lab.path, live_poll_s=0.05, live_max_s=30.0), base_url=BASE)
    key = client.get(f"/sessions/{RUNNING}").text.split("/events?head=", 1)[1].split('"', 1)[0]

    def later() -> None:
        time.sleep(0.3)
        publish_running(lab.git_dir, running())
        time.sleep(0.3)
        LabStore(lab.path).set_session_status(RUNNING, "finished")

    thread = threading.Thread(target=later)
    thread.start()
    events = events_of(client, f"/sessions/{RUNNING}/events?head={key}")
    thread.join()
    first = events[0]
    assert first[0] == "head" and first[1]["running"][0]["idea"] == "label propagation"
    assert first[1]["attempts"] == 7
    assert first[1]["typical_s"] == typical_gap_s([r["created_at"] for r in lab.index.chart_rows([RUNNING])])
    assert events[-1][0] == "end" and events[-1][1]["running"] == []  # a finished session runs nothing


def test_a_damaged_live_file_means_nothing_in_flight(lab):
    (lab.git_dir / "aar-live").mkdir()
    (lab.git_dir / "aar-live" / f"{RUNNING}.r0.json").write_text("{half a fi")
    assert read_running(lab.git_dir, RUNNING) == []


def test_typical_gap_is_the_median_time_between_attempts():
    times = ["2026-01-01T00:00:00+00:00", "2026-01-01T00:00:10+00:00", "2026-01-01T00:00:40+00:00",
             "2026-01-01T00:00:50+00:00"]
    assert typical_gap_s(times) == 10.0
    assert typical_gap_s(times[:1]) is None
    assert typical_gap_s(["2026-01-01T00:00:00+00:00", "2026-01-01T00:00:00.2+00:00"]) is None  # one batch


def test_the_sessions_list_stream_sends_an_event_when_a_session_commits(lab, client):
    assert 'data-live="/events/sessions"' in client.get("/").text

    def later() -> None:
        time.sleep(0.3)
        LabStore(lab.path).record_attempt(attempt(RUNNING, 8, name="idea 8", attempt_id="att0008aaaa"))

    thread = threading.Thread(target=later)
    thread.start()
    events = events_of(client, "/events/sessions")
    thread.join()
    assert events and events[0][0] == "head" and events[0][1]["sessions"] == 2

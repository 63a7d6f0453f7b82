"""The dashboard's steering parts through the real Starlette app: the steer box, the queue panel,
a rejected attempt on the leaderboard, CSRF, size caps, escaping, and pages that refuse framing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from agent.ui.app import create_app
from experiments.queue import directions
from experiments.reviews import add_review
from experiments.steering import steer_messages
from experiments.store import LabStore
from tests.test_ui_support import RUNNING, small_lab

BASE = "http://127.0.0.1:8765"
HOSTILE = "<script>alert('steer')</script> try label propagation"


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LabStore:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("USER", "tester")
    monkeypatch.setenv("AAR_CACHE_DIR", str(tmp_path / "cache"))
    return small_lab(tmp_path / "lab")[0]


@pytest.fixture
def client(lab: LabStore) -> TestClient:
    return TestClient(create_app(lab.path), base_url=BASE)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no form on the page"
    return found.group(1)


@pytest.mark.parametrize("path", ["/", f"/sessions/{RUNNING}", "/queue", "/leaderboard", "/no-such-page"])
def test_every_page_refuses_to_be_framed(client: TestClient, path: str):
    page = client.get(path)
    assert page.headers["content-security-policy"] == "frame-ancestors 'none'"
    assert page.headers["x-frame-options"] == "DENY"


def test_a_refused_host_is_not_framable_either(lab: LabStore):
    page = TestClient(create_app(lab.path), base_url="http://evil.example:8765").get("/")
    assert page.status_code == 400 and page.headers["x-frame-options"] == "DENY"


def test_the_steer_box_sends_an_escaped_message_and_needs_its_token(client: TestClient, lab: LabStore):
    page = client.get(f"/sessions/{RUNNING}")
    assert 'id="steer-form"' in page.text
    refused = client.post(f"/sessions/{RUNNING}/steer", data={"text": HOSTILE, "csrf": "forged"})
    assert refused.status_code == 400 and steer_messages(lab) == []  # nothing saved
    too_long = client.post(f"/sessions/{RUNNING}/steer", data={"text": "x" * 4001, "csrf": csrf_of(page.text)})
    assert too_long.status_code == 400 and "limit is 4,000" in too_long.text and steer_messages(lab) == []
    sent = client.post(f"/sessions/{RUNNING}/steer", data={"text": HOSTILE, "csrf": csrf_of(page.text)})
    assert sent.status_code == 200 and "delivered at the researcher" in sent.text  # after the redirect
    assert [m.text for m in steer_messages(lab, RUNNING)] == [HOSTILE]
    assert "<script>alert" not in sent.text and "&lt;script&gt;alert" in sent.text
    other_site = client.post(f"/sessions/{RUNNING}/steer", data={"text": "x", "csrf": csrf_of(page.text)},
                             headers={"origin": "http://other.example"})
    assert other_site.status_code == 400 and len(steer_messages(lab)) == 1


def test_the_queue_panel_adds_lists_and_drops(client: TestClient, lab: LabStore):
    page = client.get("/queue")
    assert "The queue is empty" in page.text
    token = csrf_of(page.text)
    added = client.post("/queue", data={"text": HOSTILE, "task": "wordnet-10", "csrf": token})
    assert added.status_code == 200 and "&lt;script&gt;" in added.text and "<script>alert" not in added.text
    (queued,) = directions(lab)
    assert queued.text == HOSTILE and queued.task == "wordnet-10" and queued.status == "open"
    assert client.post("/queue", data={"text": "y", "task": "t" * 301, "csrf": token}).status_code == 400
    assert client.post(f"/queue/{queued.id}/drop", data={"csrf": "forged"}).status_code == 400
    dropped = client.post(f"/queue/{queued.id}/drop", data={"csrf": token})
    assert dropped.status_code == 200 and directions(lab) == []
    assert client.post(f"/queue/{queued.id}/drop", data={"csrf": token}).status_code == 400  # said once, clearly


def test_a_rejected_attempt_stays_on_the_leaderboard_unranked_with_its_note(client: TestClient, lab: LabStore):
    top = lab.index.leaderboard("wordnet-10")[0]
    add_review(lab, top.attempt_id, "reject", "forces the class balance")
    html = client.get("/leaderboard?task=wordnet-10").text
    body = html.split('id="leaderboard"', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr.*?</tr>", body.split("<tbody>", 1)[1], flags=re.S)
    assert top.name not in rows[0] and top.attempt_id in rows[-1]  # first no more; last, marked
    assert 'class="rejected"' in rows[-1] and "forces the class balance" in rows[-1]
    assert '<td class="n">—</td>' in rows[-1]
    assert "lower 95% bound" in html

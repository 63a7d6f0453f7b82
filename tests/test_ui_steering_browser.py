"""The steering parts in a real headless Chromium against the real `aar ui` server: queue a
direction from the panel, steer a session from its box, see a rejected attempt on the
leaderboard. Screenshots are saved under docs/screenshots/ (the README shows them)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from experiments.queue import directions
from experiments.reviews import add_review
from experiments.steering import steer_messages
from experiments.store import LabStore
from tests.test_ui_browser import CHROMIUM, CHROMIUM_ARGS, _wait_for_address, env  # noqa: F401 (a fixture)
from tests.test_ui_support import RUNNING, small_lab

SHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
DIRECTION = "label propagation over the strong features"
MESSAGE = "stop tuning epochs; try cleaning the weak labels with kNN"
NOTE = "reward hack: forces the class balance"

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).is_file(),
                                reason=f"no chromium binary at {CHROMIUM}: apt-get install chromium")


def test_queue_steer_and_a_rejected_attempt_in_the_browser(tmp_path: Path, env: dict[str, str],  # noqa: F811
                                                          monkeypatch: pytest.MonkeyPatch):
    from playwright.sync_api import expect, sync_playwright

    monkeypatch.setenv("HOME", env["HOME"])
    store, _ = small_lab(tmp_path / "lab")
    subprocess.run(["git", "config", "user.name", "Ada Reviewer"], cwd=store.path, check=True)
    top = store.index.leaderboard("wordnet-10")[0]
    add_review(store, top.attempt_id, "reject", NOTE)
    proc = subprocess.Popen([sys.executable, "-m", "agent.cli", "ui", "--lab", str(store.path), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    SHOTS.mkdir(parents=True, exist_ok=True)
    try:
        url = _wait_for_address(proc)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            try:
                page.goto(url + "queue")
                page.fill("#queue-text", DIRECTION)
                page.fill("#queue-task", "wordnet-10")
                page.click("#queue-button")
                expect(page.locator("#queue-table")).to_contain_text(DIRECTION)
                page.fill("#queue-text", "ensembles of views of the strong model")
                page.click("#queue-button")
                expect(page.locator(".flash")).to_contain_text("Queued")
                page.screenshot(path=SHOTS / "queue-panel.png", full_page=True)

                page.goto(url + f"sessions/{RUNNING}")
                page.fill("#steer-text", MESSAGE)
                page.click("#steer-button")
                expect(page.locator("#steer .flash")).to_contain_text("delivered at the researcher's next turn")
                expect(page.locator(".steer-text")).to_have_text(MESSAGE)
                page.locator("#steer").screenshot(path=SHOTS / "steer-box.png")

                page.goto(url + "leaderboard?task=wordnet-10")
                expect(page.locator("#leaderboard tr.rejected")).to_contain_text(NOTE)
                page.screenshot(path=SHOTS / "leaderboard-rejected.png", full_page=True)
            finally:
                browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    lab = LabStore(store.path)
    assert [d.text for d in directions(lab)][0] == DIRECTION
    assert [m.text for m in steer_messages(lab, RUNNING)] == [MESSAGE]

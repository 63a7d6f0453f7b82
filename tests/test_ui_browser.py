"""End to end in a real headless Chromium (Debian's, driven by Playwright): the real `aar ui`
server, open a session, watch it update live, open an attempt, accept it with a note, and find
the note in `aar show`. Screenshots are kept in tests/artifacts/ui/."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from experiments.store import LabStore
from tests.test_history_support import attempt
from tests.test_ui_support import RUNNING, small_lab

CHROMIUM = os.environ.get("AAR_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parent / "artifacts" / "ui"
# Debian's Chromium as root, on a machine with no outside network (see the machine notes).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
NOTE = "Checked seeds 0-2 by hand; the gain holds on held-out too."

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).is_file(),
                                reason=f"no chromium binary at {CHROMIUM}: apt-get install chromium "
                                       "chromium-driver (./dev test installs it)")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "HOME": str(tmp_path), "USER": "tester", "PYTHONUNBUFFERED": "1", "COLUMNS": "200",
            "AAR_CACHE_DIR": str(tmp_path / "cache"), "GIT_CONFIG_NOSYSTEM": "1"}


@pytest.fixture
def server(tmp_path: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Path]]:
    monkeypatch.setenv("HOME", env["HOME"])
    store, _ = small_lab(tmp_path / "lab")
    subprocess.run(["git", "config", "user.name", "Ada Reviewer"], cwd=store.path, check=True)
    proc = subprocess.Popen([sys.executable, "-m", "agent.cli", "ui", "--lab", str(store.path), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        url = _wait_for_address(proc)
        yield url, store.path
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _wait_for_address(proc: subprocess.Popen) -> str:
    deadline = time.monotonic() + 180
    seen = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline() if proc.stdout else ""
        if not line and proc.poll() is not None:
            break
        seen.append(line)
        found = re.search(r"(http://\S+/)", line)
        if found:
            return found.group(1)
    raise AssertionError("aar ui did not print its address:\n" + "".join(seen))


def test_review_an_attempt_in_the_browser_and_see_it_in_aar_show(server, env):
    from playwright.sync_api import expect, sync_playwright

    url, lab = server
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    foreign: list[str] = []
    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("request", lambda r: foreign.append(r.url) if not r.url.startswith(url) else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        try:
            page.goto(url)
            expect(page.locator("#sessions")).to_be_visible()
            page.screenshot(path=ARTIFACTS / "01-sessions.png", full_page=True)

            page.click(f"a.session-link:text('{RUNNING}')")
            expect(page.locator("#pgr-chart")).to_have_attribute("data-ready", "1", timeout=20_000)
            expect(page.locator("#pgr-chart .main-svg").first).to_be_visible()
            expect(page.locator("#live")).to_contain_text("live")
            page.screenshot(path=ARTIFACTS / "02-session.png", full_page=True)

            # live progress: a new attempt committed by the research loop shows up without a click
            LabStore(lab).record_attempt(attempt(RUNNING, 8, name="idea 8", pgr=0.7, attempt_id="att0008aaaa"))
            expect(page.locator("#attempts-table")).to_contain_text("idea 8", timeout=30_000)
            page.screenshot(path=ARTIFACTS / "03-session-live.png", full_page=True)

            page.click("a.attempt-link:text-is('idea 6')")
            expect(page).to_have_url(re.compile(r"/attempts/att0006aaaa$"))
            expect(page.locator("#code .linenos").first).to_be_visible()
            page.screenshot(path=ARTIFACTS / "04-attempt.png", full_page=True)

            page.fill("#review-note", NOTE)
            page.click("#accept-button")
            expect(page.locator(".flash")).to_contain_text("accepted")
            expect(page.locator(".review-note")).to_have_text(NOTE)
            page.screenshot(path=ARTIFACTS / "05-reviewed.png", full_page=True)
        finally:
            browser.close()
    assert not errors, errors
    assert not foreign, f"the pages fetched from other hosts: {foreign[:5]}"

    shown = subprocess.run([sys.executable, "-m", "agent.cli", "show", "att0006aaaa", "--lab", str(lab)],
                           capture_output=True, text=True, env=env, timeout=180)
    assert shown.returncode == 0, shown.stderr
    text = " ".join(shown.stdout.split())
    assert "accept by Ada Reviewer" in text and " ".join(NOTE.split()) in text


SHOTS = Path(__file__).parent.parent / "docs" / "screenshots"
WIDTHS = {"desktop": 1280, "820": 820}


def _dress_lab(lab: Path, cache: Path) -> None:
    """What the screenshots need beyond the small lab: the task's built-in baselines, findings
    with raw floats and a genome, a starred and tagged attempt, an attempt in flight."""
    import json as _json

    from experiments.forum import Forum
    from experiments.live_status import Running, now_iso, publish_running

    store = LabStore(lab)
    m = store.manifest(RUNNING)
    private = cache / "private" / f"wordnet-10-{m.cache_key}"
    private.mkdir(parents=True, exist_ok=True)
    (private / "baseline_summary_0-1-2.json").write_text(_json.dumps([
        {"name": "vanilla_soft", "status": "ok", "pgr": 0.3, "pgr_ci95": 0.04, "heldout_pgr": 0.27,
         "pgr_values": [0.27, 0.3, 0.33]},
        {"name": "aux_confidence", "status": "ok", "pgr": 0.5, "pgr_ci95": 0.05, "heldout_pgr": 0.44,
         "pgr_values": [0.46, 0.5, 0.54]}]))
    Forum(store).post(RUNNING, "r0", "Confidence filtering beats vanilla (p=0.044343478871442125)",
                      "Paired over 3 seeds: +0.16 PGR, p=0.044343478871442125.\n\nGenome:\n\n"
                      '{"lr": 0.00031622776601683794, "epochs": 12, "loss": "soft", "threshold": 0.7250000000000001}',
                      "att0006aaaa")
    from experiments.tags import set_tags

    set_tags(store, "att0006aaaa", ["star", "promising"])
    publish_running(store.git_dir, Running(session_id=RUNNING, researcher="r0", index=8, idea="label propagation",
                                           seeds=[0, 1, 2], started_at=now_iso()))


def _no_overflow(page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"], f"{page.url} is {width}px wide at {page.viewport_size['width']}px"


def test_screenshots_at_desktop_and_820px(server, env):
    from playwright.sync_api import expect, sync_playwright

    url, lab = server
    _dress_lab(lab, Path(env["AAR_CACHE_DIR"]))
    SHOTS.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            for label, width in WIDTHS.items():
                page = browser.new_page(viewport={"width": width, "height": 900})
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.goto(url + "?sort=-best")
                expect(page.locator("#sessions")).to_be_visible()
                _no_overflow(page)
                page.screenshot(path=SHOTS / f"sessions-{label}.png")

                page.goto(url + f"sessions/{RUNNING}")
                expect(page.locator("#live-running .idea")).to_have_text("#8 label propagation")
                expect(page.locator("#live-running .elapsed")).to_contain_text(" s", timeout=5_000)
                expect(page.locator("#pgr-chart")).to_have_attribute("data-ready", "1", timeout=20_000)
                _no_overflow(page)
                page.screenshot(path=SHOTS / f"live-{label}.png")
                page.locator("#scatter").scroll_into_view_if_needed()
                expect(page.locator("#scatter svg g.dot")).to_have_count(6)
                page.screenshot(path=SHOTS / f"session-scatter-{label}.png")

                page.goto(url + "leaderboard?task=wordnet-10")
                expect(page.locator("#leaderboard tr.baseline")).to_have_count(2)
                expect(page.locator("#leaderboard a.tag")).to_have_text("promising")
                held_out = page.locator("#leaderboard th", has_text="held-out PGR")
                expect(held_out).to_be_visible()
                box = held_out.bounding_box()
                assert box and box["x"] + box["width"] <= width, "held-out PGR is off screen"
                _no_overflow(page)
                page.screenshot(path=SHOTS / f"leaderboard-baselines-{label}.png")

                page.goto(url + "forum")
                expect(page.locator("dl.kv")).to_be_visible()
                expect(page.locator("article.finding")).not_to_contain_text("0.044343478871442125")
                _no_overflow(page)
                page.screenshot(path=SHOTS / f"forum-{label}.png")

                page.goto(url + "compare?ids=att0001aaaa,att0004aaaa,att0006aaaa")
                expect(page.locator("#compare-metrics thead th")).to_have_text(["", "A", "B", "C"])
                _no_overflow(page)
                page.screenshot(path=SHOTS / f"compare-three-{label}.png")
                page.close()
        finally:
            browser.close()
    assert not errors, errors


def test_tables_sort_and_filter_by_clicking_and_the_url_keeps_it(server):
    from playwright.sync_api import expect, sync_playwright

    url, _ = server
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(url + f"sessions/{RUNNING}")
            page.click("#attempts-table th a:text('held-out PGR')")
            expect(page).to_have_url(re.compile(r"sort=-heldout_pgr"))
            expect(page.locator("#attempts-table tbody tr").first).to_contain_text("idea 6")
            page.fill("#filters input[name=q]", "idea 2")
            page.click("#filters button[type=submit]")
            expect(page).to_have_url(re.compile(r"q=idea\+2.*|.*sort=-heldout_pgr.*q=idea"))
            expect(page.locator("#attempts-table tbody tr")).to_have_count(1)
            assert "sort=-heldout_pgr" in page.url
        finally:
            browser.close()

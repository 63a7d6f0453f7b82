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

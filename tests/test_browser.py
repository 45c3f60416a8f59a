"""The app in a real browser (Debian's Chromium driven by Playwright): type a goal, click a
quick-reply option, see the recommendation card. Screenshots go to test-artifacts/."""
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing at /usr/bin/chromium: run `bash scripts/setup.sh test` (apt package 'chromium')")
    port = free_port()
    tmp = tmp_path_factory.mktemp("app")
    env = dict(os.environ, GRADIO_SERVER_PORT=str(port), GRADIO_ANALYTICS_ENABLED="False",
               GRADIO_TEMP_DIR=str(tmp / "gradio"), HF_HUB_OFFLINE="1", FTA_CACHE_DIR=str(tmp / "cache"),
               FTA_RUNLOG=str(tmp / "runlog.sqlite"), FTA_RUNS_DIR=str(tmp / "runs"))
    log = open(tmp / "app.log", "w")
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    for _ in range(240):  # wait for HTTP, not for log text
        try:
            urllib.request.urlopen(url, timeout=1)
            break
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("the app did not answer within 120 s")
    if proc.poll() is not None:
        pytest.fail(f"the app exited: {(tmp / 'app.log').read_text()[-2000:]}")
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture
def page(app_url):
    from playwright.sync_api import sync_playwright
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        pg = browser.new_page(viewport={"width": 1400, "height": 1000})
        pg.goto(app_url)
        yield pg
        browser.close()


def test_goal_option_recommendation(page):
    from playwright.sync_api import expect
    box = page.locator("#chat-input textarea")
    expect(box).to_be_visible(timeout=60_000)
    # the greeting arrives with its quick replies
    expect(page.locator("#chatbot").get_by_role("button", name="Not sure").first).to_be_visible(timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "advisor-0-start.png"), full_page=True)

    box.fill("30 pictures of my cat, 12GB card")
    box.press("Enter")
    known = page.locator("#known-panel")
    expect(known).to_contain_text("30", timeout=30_000)
    # the advisor now asks about accuracy; answer by clicking an option instead of typing
    option = page.locator("#chatbot").get_by_role("button", name="4: must look like it")
    expect(option).to_be_visible(timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "advisor-1-question.png"), full_page=True)
    option.click()

    card = page.locator("#rec-card")
    expect(card.locator("h3")).to_be_visible(timeout=30_000)
    expect(card).to_contain_text("Settings")
    expect(card).to_contain_text("Sources")
    expect(known).to_contain_text("assumed")
    expect(page.locator("#train-button")).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "advisor-2-recommendation.png"), full_page=True)


def test_question_answered_with_sources(page):
    from playwright.sync_api import expect
    box = page.locator("#chat-input textarea")
    expect(box).to_be_visible(timeout=60_000)
    box.fill("what is prior preservation?")
    box.press("Enter")
    bot = page.locator("#chatbot")
    expect(bot).to_contain_text("Sources", timeout=90_000)
    expect(bot).to_contain_text("Prior preservation")
    page.screenshot(path=str(ARTIFACTS / "advisor-3-question-answered.png"), full_page=True)

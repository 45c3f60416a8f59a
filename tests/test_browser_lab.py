"""The whole path in a real browser on the tiny model: chat, recommendation, 'Train this
recommendation', upload, train a few steps, samples, scores, rating, the Runs tab.
A screenshot of each stage goes to test-artifacts/."""
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from helpers import make_images

pytestmark = [pytest.mark.browser, pytest.mark.slow]

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
def lab_app(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing at /usr/bin/chromium: run `bash scripts/setup.sh test`")
    tmp = tmp_path_factory.mktemp("lab")
    port = free_port()
    env = dict(os.environ, GRADIO_SERVER_PORT=str(port), GRADIO_ANALYTICS_ENABLED="False",
               GRADIO_TEMP_DIR=str(tmp / "gradio"), HF_HUB_OFFLINE="1", FTA_EMBEDDER="none",
               FTA_RUNLOG=str(tmp / "runlog.sqlite"), FTA_RUNS_DIR=str(tmp / "runs"),
               FTA_UPLOADS_DIR=str(tmp / "uploads"), FTA_DATA_ROOTS=str(tmp))
    log = open(tmp / "app.log", "w")
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    for _ in range(240):
        try:
            urllib.request.urlopen(url, timeout=1)
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"the app exited: {(tmp / 'app.log').read_text()[-2000:]}")
            time.sleep(0.5)
    images = make_images(tmp / "photos", 5)
    yield url, images, tmp
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def test_whole_path_on_the_tiny_model(lab_app):
    from playwright.sync_api import expect, sync_playwright
    url, images, tmp = lab_app
    ARTIFACTS.mkdir(exist_ok=True)
    shot = lambda page, name: page.screenshot(path=str(ARTIFACTS / f"lab-{name}.png"), full_page=True)  # noqa: E731
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        box = page.locator("#chat-input textarea")
        expect(box).to_be_visible(timeout=60_000)
        box.fill("I want a LoRA of my dog, 5 photos, 12GB card, recommend now")
        box.press("Enter")
        expect(page.locator("#rec-card h3")).to_be_visible(timeout=60_000)
        shot(page, "1-recommendation")

        train = page.locator("#train-button")
        expect(train).to_be_enabled(timeout=30_000)
        train.click()
        expect(page.locator("#settings-msg")).to_contain_text("Settings are valid", timeout=30_000)
        page.locator("#upload input[type=file]").set_input_files([str(p) for p in images])
        expect(page.locator("#dataset-report")).to_contain_text("5", timeout=60_000)
        expect(page.locator("#settings-msg")).not_to_contain_text("Choose a dataset", timeout=30_000)
        shot(page, "2-dataset")

        page.locator("#start").click()
        status = page.locator("#train-status")
        expect(status).to_contain_text("completed", timeout=300_000)
        expect(page.locator("#samples img").first).to_be_visible(timeout=60_000)
        shot(page, "3-trained")

        expect(page.locator("#scores-md")).to_contain_text("accuracy", timeout=300_000)
        expect(page.locator("#compare img").first).to_be_visible(timeout=60_000)
        expect(page.locator("#downloads")).to_contain_text("safetensors", timeout=60_000)
        shot(page, "4-results")

        page.locator("#save-rating").click()
        expect(page.locator("#rating-msg")).to_contain_text("Saved your rating", timeout=30_000)

        page.get_by_role("tab", name="Runs").click()
        page.locator("#runs-refresh").click()
        table = page.locator("#runs-table")
        expect(table).to_contain_text("completed", timeout=30_000)
        expect(table).to_contain_text("lora")
        expect(table).to_contain_text("3/3/3")
        shot(page, "5-runs")

        # a page reload reattaches to the same run
        page.reload()
        page.get_by_role("tab", name="Lab").click()
        expect(page.locator("#train-status")).to_contain_text("completed", timeout=60_000)
        browser.close()

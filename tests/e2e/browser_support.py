"""Shared by the browser tests: Debian's Chromium, and `python app.py` served on a free port."""
import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_app(tmp: Path, **env_overrides: str):
    """Start `python app.py` with its state under `tmp`; yield its URL once HTTP answers."""
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing at /usr/bin/chromium: run `bash scripts/setup.sh test` (apt package 'chromium')")
    port = free_port()
    env = dict(os.environ, GRADIO_SERVER_PORT=str(port), GRADIO_ANALYTICS_ENABLED="False",
               GRADIO_TEMP_DIR=str(tmp / "gradio"), HF_HUB_OFFLINE="1", FTA_RUNLOG=str(tmp / "runlog.sqlite"),
               FTA_RUNS_DIR=str(tmp / "runs"), FTA_UPLOADS_DIR=str(tmp / "uploads"), **env_overrides)
    log = open(tmp / "app.log", "w")
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(240):  # wait for HTTP, not for log text
            try:
                urllib.request.urlopen(url, timeout=1)
                break
            except OSError:
                if proc.poll() is not None:
                    pytest.fail(f"the app exited: {(tmp / 'app.log').read_text()[-2000:]}")
                time.sleep(0.5)
        else:
            pytest.fail("the app did not answer within 120 s")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@contextlib.contextmanager
def browser_page(url: str):
    from playwright.sync_api import sync_playwright
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        try:
            yield page
        finally:
            browser.close()


@contextlib.contextmanager
def app_with_photos(tmp: Path, n_images: int = 5):
    """The app (TF-IDF search, `tmp` a data root) and `n_images` photos to upload: (url, photos, tmp)."""
    from helpers import make_images

    photos = make_images(tmp / "photos", n_images)
    with running_app(tmp, FTA_EMBEDDER="none", FTA_DATA_ROOTS=str(tmp)) as url:
        yield url, photos, tmp

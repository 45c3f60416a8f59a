"""Hostile requests against a running app (gradio_client and plain HTTP on a local port): two
browsers, one trying to reach the other's ids, jobs, runs and files."""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from gradio_client import Client, handle_file

from helpers import make_images


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("security")
    mp = pytest.MonkeyPatch()
    for name, value in {"GRADIO_TEMP_DIR": tmp / "gradio", "FTA_EMBEDDER": "none", "FTA_RUNS_DIR": tmp / "runs",
                        "FTA_UPLOADS_DIR": tmp / "uploads", "FTA_RUNLOG": tmp / "runlog.sqlite",
                        "FTA_CACHE_DIR": tmp / "cache", "FTA_DATA_ROOTS": tmp / "shared-data"}.items():
        mp.setenv(name, str(value))
    import app
    from advisor import chat
    mp.setattr(chat, "_retriever", None)
    mp.setattr(app, "_queue", None)
    mp.setattr(app, "_secret", None)
    demo = app.build_demo()
    _, url, _ = demo.launch(prevent_thread_lock=True, **app.launch_options(None))
    clients = []

    def make():
        c = Client(url, verbose=False)
        clients.append(c)
        return c
    yield make, url, tmp
    for c in clients:
        c.close()
    demo.close()
    if app._queue is not None:
        app._queue.close()
    mp.undo()


def get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


@pytest.fixture(scope="module")
def ana(served):
    """Ana's browser: an id, an upload, and a short training on the tiny model."""
    make, url, tmp = served
    c = make()
    token = c.predict(None, api_name="/hello")
    photos = make_images(tmp / "ana-photos", 3)
    report, _, data_dir = c.predict([handle_file(str(p)) for p in photos], token, api_name="/upload")
    assert "3 image(s) added" in report
    settings = {"base_model": "tiny", "method": "lora", "data_dir": data_dir, "resolution": 64,
                "max_train_steps": 2, "validation_steps": 0, "checkpointing_steps": 0}
    message = c.predict(json.dumps(settings), token, api_name="/start_training")
    assert message.startswith("Submitted"), message
    queue = json.loads((tmp / "runs" / "queue.json").read_text())
    (job_id, owner), = queue["sessions"].items()
    # the page names her folder my-uploads/...: no server path reaches the browser
    assert data_dir.startswith("my-uploads/datasets/") and str(tmp) not in report
    server_dir = json.loads((tmp / "runs" / job_id / "config.json").read_text())["data_dir"]
    return {"client": c, "token": token, "job": job_id, "owner": owner, "data_dir": data_dir,
            "server_dir": server_dir}


def test_ids_in_the_queue_file_open_nothing(served, ana):
    """The bare id (as queue.json holds it), the owner string or a made-up signature: a new
    browser, never Ana's."""
    make, url, tmp = served
    bare = ana["token"].partition(".")[0]
    assert ana["owner"] == f"browser:{bare}"
    for forged in (bare, ana["owner"], f"{bare}.{'0' * 64}"):
        b = make()
        token = b.predict(forged, api_name="/hello")
        assert token != ana["token"] and token.partition(".")[0] != bare
        assert b.predict(forged, api_name="/stop_training").startswith("**This page has no valid id")
        assert b.predict(token, api_name="/stop_training") == "No training to stop."
        assert "no valid id" in b.predict(forged, api_name="/resume_training")


def test_another_browser_cannot_see_or_rate_the_run(served, ana):
    make, url, tmp = served
    deadline = time.time() + 240
    while time.time() < deadline:  # wait for Ana's run to end (the timer would do this in a page)
        table, *_ = ana["client"].predict("", ana["token"], api_name="/runs")
        if any(row[0] == ana["job"] and row[1] != "running" for row in table["data"]):
            break
        time.sleep(2)
    assert any(row[0] == ana["job"] for row in table["data"]), "Ana sees her own run"
    b = make()
    token = b.predict(None, api_name="/hello")
    table, *_ = b.predict("", token, api_name="/runs")
    assert table["data"] == []
    said = b.predict(token, ana["job"], 1, 1, 1, "bad", api_name="/rate_logged")
    assert said.startswith("**Not saved.** You have no run")
    assert "Saved" in ana["client"].predict(ana["token"], ana["job"], 4, 4, 4, "mine", api_name="/rate_logged")


def test_no_run_or_upload_file_is_served_by_path(served, ana):
    """Before: allowed_paths served all of runs/ and uploads/ (queue.json listed every session id)."""
    make, url, tmp = served
    runs, uploads = tmp / "runs", tmp / "uploads"
    files = [runs / "queue.json", runs / ana["job"] / "config.json", runs / ana["job"] / "lab.json",
             runs / ".server-secret", next(Path(ana["server_dir"]).glob("*.png"))]
    for f in files:
        assert f.is_file(), f
        assert get(f"{url}gradio_api/file={f}") == 403, f
    assert uploads in Path(ana["server_dir"]).parents


def test_settings_cannot_reach_another_users_folders_or_the_apps(served, ana):
    """Before: data_dir read any folder the server could read, class_data_dir wrote anywhere, and
    sizes had no upper bound."""
    make, url, tmp = served
    b = make()
    token = b.predict(None, api_name="/hello")
    report, _, _ = b.predict(ana["server_dir"], token, api_name="/use_folder")
    assert "app's own folders" in report
    base = {"base_model": "tiny", "method": "lora", "resolution": 64, "max_train_steps": 2}
    (tmp / "shared-data" / "mine").mkdir(parents=True, exist_ok=True)
    make_images(tmp / "shared-data" / "mine", 2)
    for settings, why in (({"data_dir": ana["server_dir"]}, "app's own folders"),
                          ({"data_dir": "/etc"}, "outside the folders this server allows"),
                          ({"data_dir": str(tmp / "shared-data" / "mine"), "method": "dreambooth",
                            "prior_preservation": True, "class_prompt": "a dog",
                            "class_data_dir": str(tmp / "runs" / "planted")}, "class_data_dir"),
                          ({"data_dir": str(tmp / "shared-data" / "mine"), "resolution": 65536}, "limit of 2048"),
                          ({"data_dir": str(tmp / "shared-data" / "mine"), "num_class_images": 10**9},
                           "limit of 1000")):
        message = b.predict(json.dumps({**base, **settings}), token, api_name="/start_training")
        assert message.startswith("**Not started.**") and why in message, message
    assert not (tmp / "runs" / "planted").exists()


def test_logins_are_throttled_and_each_user_is_their_own_owner(served):
    """Before: 40 wrong passwords in 0.3 s and no throttling; one shared login for everyone."""
    import urllib.parse

    import app
    from lab.page import LabState

    make, _, tmp = served
    demo = app.build_demo()
    _, url, _ = demo.launch(prevent_thread_lock=True, **app.launch_options([("ana", "pw-a"), ("bo", "pw-b")]))
    try:
        def login(user, password) -> int:
            body = urllib.parse.urlencode({"username": user, "password": password}).encode()
            try:
                with urllib.request.urlopen(urllib.request.Request(f"{url}login", data=body), timeout=30) as r:
                    return r.status
            except urllib.error.HTTPError as e:
                return e.code
        assert [login("ana", f"guess{i}") for i in range(40)] == [400] * 40
        assert login("ana", "pw-a") == 400  # locked for a minute, the right password too
        assert login("bo", "pw-b") == 200
        bo = Client(url, auth=("bo", "pw-b"), verbose=False)
        try:
            assert bo.predict(None, api_name="/hello") is None  # a login needs no browser token
            table, *_ = bo.predict("", "forged", api_name="/runs")
            assert table["data"] == []
        finally:
            bo.close()
        # the owner of a login's events is its user name, whatever token the page sends
        request = type("Request", (), {"username": "bo"})()
        assert app.who("anything", request).owner == "user:bo"
        assert app.load_lab(None, LabState(), request)[0] is None
    finally:
        demo.close()


def test_gradio_refuses_an_upload_over_the_limit(served, monkeypatch):
    """Before: Gradio accepted anonymous uploads of any size (stored before any check of ours)."""
    import httpx

    import app
    from lab import uploads

    monkeypatch.setattr(uploads, "MAX_UPLOAD_MB", 1)
    demo = app.build_demo()
    _, url, _ = demo.launch(prevent_thread_lock=True, **app.launch_options(None))
    try:
        big = httpx.post(f"{url}gradio_api/upload", files={"files": ("big.png", b"\0" * 2_000_000)}, timeout=60)
        small = httpx.post(f"{url}gradio_api/upload", files={"files": ("small.png", b"\0" * 1000)}, timeout=60)
        assert big.status_code == 413 and small.status_code == 200
    finally:
        demo.close()


def test_only_an_admin_login_sees_everyones_runs_and_stops_them(served, ana, monkeypatch):
    """Issue 13's admin view: a login named in FTA_ADMIN; anyone else (a login or a browser) is refused."""
    import app

    make, _, tmp = served
    monkeypatch.setenv("FTA_ADMIN", "root")
    demo = app.build_demo()
    _, url, _ = demo.launch(prevent_thread_lock=True, **app.launch_options([("root", "pw-r"), ("cy", "pw-c")]))
    try:
        root = Client(url, auth=("root", "pw-r"), verbose=False)
        cy = Client(url, auth=("cy", "pw-c"), verbose=False)
        try:
            summary, jobs, usage = root.predict(None, api_name="/admin")[-3:]   # the tab itself has no value
            assert "runs by" in summary and ana["job"] in [row[0] for row in jobs["data"]]
            assert ana["owner"] in [row[0] for row in usage["data"]]
            assert root.predict("../../etc", None, api_name="/admin_stop") == "**No such job.**"
            summary, jobs, _ = cy.predict(None, api_name="/admin")[-3:]
            assert summary == "" and jobs["data"] == []          # nothing of anyone's
            assert cy.predict(ana["job"], None, api_name="/admin_stop").startswith("**Not allowed.**")
            browser = make()
            assert browser.predict(ana["job"], browser.predict(None, api_name="/hello"),
                                   api_name="/admin_stop").startswith("**Not allowed.**")
        finally:
            root.close()
            cy.close()
    finally:
        demo.close()

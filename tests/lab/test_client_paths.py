"""Server paths are not shown to users: their own upload folder is `my-uploads/...` in the settings
and messages, turned back into the server's path only on the server, and checked like any folder."""
import json

from lab import page
from lab.paths import OWN_ALIAS, client_path, server_path, settings_paths


def test_the_users_folder_is_named_by_an_alias_both_ways(tmp_path):
    own = tmp_path / "uploads" / "browser-abc"
    (own / "datasets" / "d1").mkdir(parents=True)
    shown = client_path(own / "datasets" / "d1", own)
    assert shown == f"{OWN_ALIAS}/datasets/d1" and str(tmp_path) not in shown
    assert server_path(shown, own) == str((own / "datasets" / "d1").resolve())
    assert client_path(own, own) == OWN_ALIAS and client_path("/data/photos", own) == "/data/photos"
    assert server_path("/data/photos", own) == "/data/photos" and client_path("", own) == ""
    settings = json.dumps({"data_dir": str(own / "datasets" / "d1"), "class_data_dir": "", "method": "lora"})
    for_client = settings_paths(settings, own, client_path)
    assert str(tmp_path) not in for_client and json.loads(for_client)["data_dir"] == f"{OWN_ALIAS}/datasets/d1"
    assert json.loads(settings_paths(for_client, own, server_path))["data_dir"] == str((own / "datasets" / "d1").resolve())
    assert settings_paths("{not json", own, server_path) == "{not json"


def test_start_takes_the_alias_and_still_refuses_another_users_folder(tmp_path):
    own = tmp_path / "uploads" / "browser-ana"
    other = tmp_path / "uploads" / "browser-bo" / "datasets" / "d"
    for folder in (own / "datasets" / "d", other):
        folder.mkdir(parents=True)
        (folder / "a.png").write_bytes(b"x")

    class Queue:
        def __init__(self):
            self.submitted = []

        def submit(self, config, *, session_id, profile=None):
            self.submitted.append(config)
            return "job-1"

        def pump(self):
            pass

    q = Queue()
    base = {"base_model": "tiny", "method": "lora", "resolution": 64, "max_train_steps": 10}
    job, message = page.start_training(q, json.dumps({**base, "data_dir": f"{OWN_ALIAS}/datasets/d"}),
                                       session_id="browser:ana", own=own)
    assert job == "job-1" and q.submitted[0].data_dir == str((own / "datasets" / "d").resolve())
    for escape in (f"{OWN_ALIAS}/../browser-bo/datasets/d", f"{OWN_ALIAS}/../../uploads/browser-bo/datasets/d"):
        job, message = page.start_training(q, json.dumps({**base, "data_dir": escape}), session_id="browser:ana",
                                           own=own)
        assert job is None and message.startswith("**Not started.**") and len(q.submitted) == 1


def test_status_and_log_lines_name_the_servers_folders_instead_of_showing_them(tmp_path, monkeypatch):
    from lab.paths import redact

    monkeypatch.setenv("FTA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("FTA_UPLOADS_DIR", str(tmp_path / "uploads"))
    monkeypatch.setenv("FTA_RUNS_DIR", str(tmp_path / "runs"))
    own = tmp_path / "uploads" / "browser-ana"
    log = (f"loading {tmp_path / 'cache' / 'tiny-sd15'}\nchecking images in {own / 'datasets' / 'd'}\n"
           f"saved {tmp_path / 'runs' / 'job-1' / 'output'}; other {tmp_path / 'uploads' / 'browser-bo'}")
    shown = redact(log, own)
    assert str(tmp_path) not in shown
    assert "loading <cache>/tiny-sd15" in shown and "checking images in my-uploads/datasets/d" in shown
    assert "saved <runs>/job-1/output" in shown and "<uploads>/browser-bo" in shown
    assert redact("", own) == "" and redact(None, own) is None

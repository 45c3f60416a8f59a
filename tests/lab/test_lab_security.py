"""Security of the lab's back end: identities the server issues and checks, and every button
checked against the owner of the run, upload or rating it touches."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from helpers import make_images
from lab import page
from lab.identity import identify, issue_token, load_secret, read_auth_file, verify_token
from lab.jobs import JobQueue
from lab.ownership import record_imports, run_owner

from test_lab_jobs import FakeLauncher


# --- identities --------------------------------------------------------------------------------------
def test_the_secret_is_private_and_kept(tmp_path):
    path = tmp_path / "state" / ".server-secret"
    key = load_secret(path)
    assert len(key) == 32 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_secret(path) == key  # the same secret after a restart: browsers keep their ids
    os.chmod(path, 0o644)
    assert load_secret(path) == key and stat.S_IMODE(path.stat().st_mode) == 0o600  # tightened
    path.write_text("not hex\n")
    with pytest.raises(ValueError, match="damaged"):
        load_secret(path)


def test_a_browser_id_cannot_be_forged_or_guessed(tmp_path):
    key = load_secret(tmp_path / "s")
    token = issue_token(key)
    browser_id, _, sig = token.partition(".")
    assert verify_token(key, token) == browser_id
    assert verify_token(key, browser_id) is None                      # the bare id (as queue.json held it)
    assert verify_token(key, f"{browser_id}.{'0' * len(sig)}") is None  # a made-up signature
    other = issue_token(key).partition(".")[0]
    assert verify_token(key, f"{other}.{sig}") is None                # another id with this signature
    assert verify_token(load_secret(tmp_path / "t"), token) is None   # another server's token
    for junk in (None, 42, "", "x" * 97, ["a"], token + "0"):
        assert verify_token(key, junk) is None


def test_identify_login_first_then_signed_browser(tmp_path):
    key = load_secret(tmp_path / "s")
    assert identify(key, "anything", "ana").owner == "user:ana"
    assert identify(key, "forged.token") is None  # an event without a genuine id is refused
    new = identify(key, "forged.token", issue=True)
    assert new.issued and new.owner == f"browser:{new.token.partition('.')[0]}"
    again = identify(key, new.token)
    assert again.owner == new.owner and not again.issued


def test_auth_file_of_several_users(tmp_path):
    f = tmp_path / "users.txt"
    f.write_text("# the lab's users\nana:s3cret\n\nbo:pw:with:colons\n")
    assert read_auth_file(f) == [("ana", "s3cret"), ("bo", "pw:with:colons")]
    for text, why in (("ana\n", "line 1"), ("ana:a\nana:b\n", "twice"), ("# nobody\n", "no 'user:password'")):
        f.write_text(text)
        with pytest.raises(ValueError, match=why):
            read_auth_file(f)
    import app
    assert app.logins(None, None) is None
    f.write_text("ana:1\nbo:2\n")
    assert app.logins("root:x", str(f)) == [("root", "x"), ("ana", "1"), ("bo", "2")]
    with pytest.raises(SystemExit, match="cannot be read"):
        app.logins(None, str(tmp_path / "missing"))


# --- owner checks --------------------------------------------------------------------------------------
@pytest.fixture
def two_jobs(tmp_path):
    """A queue with one stopped job of ana's and one of bo's (fake launcher: no training)."""
    make_images(tmp_path / "data", 2)
    launcher = FakeLauncher()
    queue = JobQueue(tmp_path / "runs", gpus=0, slots=2, launcher=launcher, attacher=launcher.attach)
    cfg = {"base_model": "tiny", "data_dir": str(tmp_path / "data"), "resolution": 64, "max_train_steps": 3}
    ana = queue.submit(cfg, session_id="user:ana")
    bo = queue.submit(cfg, session_id="user:bo")
    for job in launcher.jobs.values():
        job.state = "stopped"
    return queue, ana, bo


def test_only_the_owner_stops_resumes_follows_and_rates(two_jobs, tmp_path):
    queue, ana, bo = two_jobs
    assert page.owned_job(queue, ana, "user:bo") is None
    assert page.stop_job(queue, ana, "user:bo") == "No training to stop."
    assert page.resume_job(queue, ana, "user:bo") == (False, "No run to resume.")
    assert page.rate_job(queue, ana, "user:bo", (5, 5, 5), "", runlog=tmp_path / "log.sqlite") \
        == "No finished run to rate yet."
    # a page that names someone else's job follows its owner's own newest job instead
    assert page.current_job(queue, ana, "user:bo").job_id == bo
    assert page.current_job(queue, ana, "browser:nobody") is None
    assert queue.status(ana).state == "stopped"  # untouched
    resumed, message = page.resume_job(queue, ana, "user:ana")
    assert resumed and "Resuming" in message


def test_runs_tab_lists_and_rates_only_your_runs(two_jobs, tmp_path):
    from advisor.runlog.records import RunRecord
    from advisor.runlog.store import RunLog

    queue, ana, bo = two_jobs
    log_path = tmp_path / "log.sqlite"
    with RunLog(log_path) as log:
        log.upsert_run(RunRecord(run_id="cli-run", method="lora", base_model="sd15", status="completed"))
    frame, _, _ = page.runs_view(log_path, queue.runs_dir, owner="user:ana")
    assert list(frame["id"]) == [ana]  # not bo's, not the CLI's ownerless run
    assert page.rate_logged(log_path, queue.runs_dir, bo, "user:ana", (1, 1, 1), "") \
        == f"**Not saved.** You have no run `{bo}`."
    assert "Not saved" in page.rate_logged(log_path, queue.runs_dir, "cli-run", "user:ana", (1, 1, 1), "")
    assert "Not saved" in page.rate_logged(log_path, queue.runs_dir, "../" + bo, "user:ana", (1, 1, 1), "")
    assert page.rate_logged(log_path, queue.runs_dir, ana, "user:ana", (4, 3, 2), "ok") == f"Saved the rating of `{ana}`."
    with RunLog(log_path) as log:
        assert not (log.get(bo).rating or {}).get("accuracy")
    everything, _, _ = page.runs_view(log_path, queue.runs_dir)  # no owner: the CLI's view, all runs
    assert {ana, bo, "cli-run"} <= set(everything["id"])


def test_imports_belong_to_the_importer_and_never_overwrite(two_jobs, tmp_path):
    from advisor.runlog.records import RunRecord
    from advisor.runlog.store import RunLog
    from advisor.runlog.csvio import write_csv

    queue, ana, bo = two_jobs
    log_path = tmp_path / "log.sqlite"
    page.runs_view(log_path, queue.runs_dir)  # bo's run is in the log
    csv = tmp_path / "mine.csv"
    write_csv(csv, [RunRecord(run_id="imported-1", method="lora", base_model="sd15", status="completed"),
                    RunRecord(run_id=bo, method="dreambooth", base_model="hijacked", status="completed")])
    out = page.import_runs(log_path, queue.runs_dir, [str(csv)], "user:ana", tmp_path / "scratch.sqlite")
    assert "1 run(s) not imported" in out
    assert run_owner(queue.runs_dir, "imported-1") == "user:ana"
    with RunLog(log_path) as log:
        assert log.get(bo).base_model != "hijacked"
    record_imports(queue.runs_dir, ["imported-1"], "user:bo")  # a later import does not take it over
    assert run_owner(queue.runs_dir, "imported-1") == "user:ana"
    exported = page.export_runs(log_path, queue.runs_dir, "user:ana", tmp_path / "ana" / "export.csv")
    text = exported.read_text()
    assert "imported-1" in text and ana in text and bo not in text


# --- files reach a browser only as an owner-checked return value ---------------------------------------
def test_servable_copies_what_gradio_would_refuse(tmp_path):
    from lab.serving import servable, servable_items

    inside, outside = tmp_path / "cwd", tmp_path / "data" / "runs"
    inside.mkdir()
    outside.mkdir(parents=True)
    here = inside / "a.png"
    here.write_bytes(b"png")
    there = outside / "w.safetensors"
    there.write_bytes(b"weights")
    box = tmp_path / "outbox"
    assert servable(here, [inside], box) == str(here.resolve())  # Gradio copies it itself
    copy = Path(servable(there, [inside], box))
    assert copy.is_relative_to(box) and copy.name == "w.safetensors" and copy.read_bytes() == b"weights"
    assert servable(there, [inside], box) == str(copy)  # once
    dot = inside / ".secret"
    dot.write_text("x")
    assert Path(servable(dot, [inside], box)).is_relative_to(box)  # Gradio refuses dotfiles: a plain copy
    assert servable_items(None) is None
    assert servable_items([(str(here), "cap")]) == [(str(here.resolve()), "cap")]


def test_the_app_serves_no_folder_by_path():
    import app
    assert not app.launch_options(None).get("allowed_paths")


# --- settings checked on the server -----------------------------------------------------------------------
@pytest.mark.parametrize("field, value", [("resolution", 16384), ("train_batch_size", 4096),
                                          ("num_class_images", 10**6), ("max_train_steps", 10**9),
                                          ("num_validation_images", 500), ("validation_inference_steps", 10**5),
                                          ("rank", 100_000), ("seed", 10**30),
                                          ("gradient_accumulation_steps", 10**7)])
def test_sizes_and_counts_have_upper_bounds(field, value):
    import json
    cfg, error = page.check_config_text(json.dumps({"base_model": "tiny", field: value}))
    assert cfg is None and error == f"Invalid setting: {field}={value} is over this server's limit of " \
                                    f"{__import__('lab.policy').policy.LIMITS[field]}"
    assert "\n" not in error


def test_prompt_lists_and_texts_are_bounded():
    import json
    cfg, error = page.check_config_text(json.dumps({"validation_prompts": ["a"] * 100}))
    assert cfg is None and "at most 8" in error
    cfg, error = page.check_config_text(json.dumps({"instance_prompt": "x" * 100_000}))
    assert cfg is None and "instance_prompt is 100000 characters" in error


@pytest.fixture
def roots(tmp_path, monkeypatch):
    """A data root that (like the default working directory) also holds the app's own folders."""
    root = tmp_path / "root"
    monkeypatch.setenv("FTA_DATA_ROOTS", str(root))
    for name, sub in {"FTA_RUNS_DIR": "runs", "FTA_UPLOADS_DIR": "uploads", "FTA_CACHE_DIR": "cache"}.items():
        monkeypatch.setenv(name, str(root / sub))
    make_images(root / "shared" / "dogs", 2)
    make_images(root / "uploads" / "user_bo-x" / "dataset", 2)
    make_images(tmp_path / "private", 1)
    own = root / "uploads" / "ana"
    make_images(own / "dataset", 2)
    return root, own, tmp_path


def test_settings_folders_must_be_yours_or_in_a_data_root(roots):
    from lab.policy import path_problem
    from trainer.config import TrainConfig

    root, own, tmp = roots
    ok = lambda **kw: path_problem(TrainConfig(**kw), own)  # noqa: E731
    assert ok(data_dir=str(own / "dataset")) is None
    assert ok(data_dir=str(root / "shared" / "dogs")) is None
    assert ok(data_dir=str(own / "dataset"), class_data_dir=str(own / "class-images")) is None
    assert ok(data_dir=str(own / "dataset"), base_model="stabilityai/stable-diffusion-xl-base-1.0") is None
    assert ok(data_dir=str(own / "dataset"), base_model="tiny") is None
    assert "outside the folders this server allows" in ok(data_dir=str(tmp / "private"))
    assert "outside" in ok(data_dir="/etc")
    assert "outside" in ok(data_dir=str(own / ".." / ".." / ".." / "private"))
    assert "app's own folders" in ok(data_dir=str(root / "uploads" / "user_bo-x" / "dataset"))  # bo's upload
    assert "app's own folders" in ok(data_dir=str(root / "runs"))
    assert "class_data_dir" in ok(data_dir=str(own / "dataset"), class_data_dir=str(root / "runs" / "x"))
    assert "class_data_dir" in ok(data_dir=str(own / "dataset"), class_data_dir="/etc/cron.d")
    assert "base_model" in ok(data_dir=str(own / "dataset"), base_model=str(tmp / "private"))
    assert "base_model" in ok(data_dir=str(own / "dataset"), base_model=str(root / "cache" / "tiny-sd15"))


def test_use_folder_never_reads_the_apps_folders(roots):
    from lab.uploads import dataset_from_folder

    root, own, tmp = roots
    assert dataset_from_folder(root / "shared" / "dogs") == (root / "shared" / "dogs").resolve()
    assert dataset_from_folder(own / "dataset", own=own) == (own / "dataset").resolve()
    for theirs in (root / "uploads" / "user_bo-x" / "dataset", root / "runs", root / "uploads", own / "dataset"):
        with pytest.raises(ValueError, match="app's own folders"):
            dataset_from_folder(theirs)  # without own=, even your own upload is the app's folder
    (root / "shared" / "dogs" / "peek.png").symlink_to(root / "uploads" / "user_bo-x" / "dataset" / "img_000.png")
    with pytest.raises(ValueError, match="peek.png links outside"):
        dataset_from_folder(root / "shared" / "dogs")


def test_start_refuses_someone_elses_folder(roots):
    import json

    root, own, tmp = roots

    class Queue:
        def submit(self, config, **kw):
            raise AssertionError("must not be queued")

    text = json.dumps({"base_model": "tiny", "data_dir": str(root / "uploads" / "user_bo-x" / "dataset")})
    job, why = page.start_training(Queue(), text, session_id="user:ana", own=own)
    assert job is None and why.startswith("**Not started.** data_dir") and "app's own folders" in why


# --- images too large to decode ---------------------------------------------------------------------------
def huge_png(path: Path, side: int = 13_000) -> Path:
    """A valid greyscale PNG of side x side black pixels in a few hundred KB (written row block
    by row block, never held in memory)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    z = zlib.compressobj(9)
    row = b"\0" * (side + 1)  # filter byte + one byte a pixel
    idat = b"".join(z.compress(row * 500) for _ in range(side // 500)) + z.compress(row * (side % 500)) + z.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def bomb(tmp_path_factory) -> Path:
    return huge_png(tmp_path_factory.mktemp("bomb") / "huge.png")


def test_a_huge_png_is_refused_from_its_header(bomb, tmp_path):
    """Before: 13,000 x 13,000 passed the upload and cost 9 s and 1 GB in the dataset report."""
    import time

    from lab.datasets import dataset_report
    from lab.uploads import ingest_uploads

    assert bomb.stat().st_size < 400_000
    make_images(tmp_path / "photos", 2)
    t = time.perf_counter()
    report = ingest_uploads([bomb, *sorted((tmp_path / "photos").iterdir())], tmp_path / "dest")
    assert time.perf_counter() - t < 5
    assert report.images == ["img_000.png", "img_001.png"]
    assert report.rejected == ["huge.png: 13000x13000 is 169 megapixels, over the limit of 64; scale it down first"]
    assert "refused huge.png: 13000x13000 is 169 megapixels" in report.summary()
    # a folder on the server: the report names it and skips it without decoding
    (tmp_path / "photos" / "huge.png").symlink_to(bomb)
    t = time.perf_counter()
    described = dataset_report(tmp_path / "photos")
    assert time.perf_counter() - t < 5
    assert described["count"] == 2 and any("huge.png: 13000x13000" in p for p in described["problems"])


# --- login throttling ---------------------------------------------------------------------------------------
def test_wrong_passwords_lock_the_name_for_a_while():
    """Before: 40 wrong passwords in 0.3 s, no throttling."""
    from lab.identity import LoginGuard

    now = [1000.0]
    guard = LoginGuard([("ana", "right"), ("bo", "pw")], clock=lambda: now[0])
    assert guard("ana", "right") and not guard("ana", "Right") and not guard("eve", "right")
    results = [guard("ana", f"guess{i}") for i in range(40)]
    assert not any(results)
    assert not guard("ana", "right")  # locked: the right password waits too
    assert guard("bo", "pw")          # other users are not locked out by one name's guesses
    now[0] += 61
    assert guard("ana", "right")
    for i in range(60):               # many names at once: everyone waits
        guard(f"user{i}", "x")
    assert not guard("bo", "pw")
    now[0] += 61
    assert guard("bo", "pw")


def test_two_first_page_loads_at_once_share_one_whole_secret(tmp_path, monkeypatch):
    """Two browsers opening a fresh app at once: one read the secret while the other was still
    writing it and got 'server secret ... is damaged' (seen in the two-user browser test)."""
    import secrets
    import time
    from concurrent.futures import ThreadPoolExecutor

    import lab.identity as identity
    from lab.identity import load_secret

    real_token_hex = secrets.token_hex

    def slow_token(n):   # a slow writer widens the window in which a reader could see half a file
        time.sleep(0.05)
        return real_token_hex(n)
    monkeypatch.setattr(identity.secrets, "token_hex", slow_token)
    for attempt in range(5):
        path = tmp_path / f"fresh-{attempt}" / ".server-secret"
        with ThreadPoolExecutor(8) as pool:
            keys = list(pool.map(lambda _: load_secret(path), range(8)))
        assert len(set(keys)) == 1 and len(keys[0]) >= 16
        assert [p.name for p in path.parent.iterdir()] == [".server-secret"]   # no temporary file left

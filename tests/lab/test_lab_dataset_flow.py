"""The Lab's dataset column (issue 13): each upload starts a new dataset unless the user adds to
the current one, "Clear dataset" empties it, an identical file is never stored twice, a dataset a
run trained on is kept, and no one reaches another user's dataset. Driven through app.py's
handlers, with a logged-in user's request as Gradio passes it."""
from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from helpers import make_images
from lab.page import LabState

ANA = SimpleNamespace(username="ana")
BO = SimpleNamespace(username="bo")


@pytest.fixture
def app_module():
    import app

    return app


def images_in(folder: str | Path) -> list[str]:
    return sorted(p.name for p in Path(folder).iterdir() if p.suffix in (".png", ".jpg"))


def upload(app, paths, lab=None, add=False, who=ANA):
    lab, md, thumbs, data_dir = app.upload_dataset([str(p) for p in paths], None, add, lab or LabState(), who)
    return lab, md, thumbs, data_dir


def test_a_new_upload_starts_a_new_dataset(app_module, tmp_path):
    first = make_images(tmp_path / "first", 6)
    lab, md, thumbs, data_dir = upload(app_module, first)
    one = Path(lab.data_dir)
    # the page names the folder my-uploads/...; the server keeps its own path
    assert data_dir == "my-uploads/" + one.relative_to(one.parents[1]).as_posix() and str(tmp_path) not in md
    assert images_in(one) == [p.name for p in first] and len(thumbs) == 6
    assert md.startswith("New dataset.") and "**6 image(s)**" in md
    lab, md, _, _ = upload(app_module, first, lab)            # the same six again: still six, not twelve
    two = Path(lab.data_dir)
    assert two != one and images_in(two) == [p.name for p in first] and "**6 image(s)**" in md
    assert not one.exists(), "the replaced upload, which no run used, is removed"
    assert "earlier upload was removed" in md
    other = make_images(tmp_path / "other", 2, seed=20, fmt="jpg")
    lab, md, _, _ = upload(app_module, other, lab)
    assert images_in(lab.data_dir) == ["img_000.jpg", "img_001.jpg"] and not two.exists()


def test_adding_to_the_current_dataset_skips_identical_files(app_module, tmp_path):
    first = make_images(tmp_path / "first", 3)
    lab, *_ = upload(app_module, first)
    folder = lab.data_dir
    more = make_images(tmp_path / "more", 2, seed=10, fmt="jpg")
    lab, md, _, _ = upload(app_module, more + [first[0]], lab, add=True)
    assert lab.data_dir == folder
    # a name already taken gets a suffix, so no old caption pairs with a new image
    assert images_in(folder) == ["img_000.png", "img_000_1.jpg", "img_001.png", "img_001_1.jpg", "img_002.png"]
    assert md.startswith("Added to the current dataset.") and "img\\_000.png: identical to img\\_000.png" in md


def test_an_upload_with_nothing_usable_keeps_the_current_dataset(app_module, tmp_path):
    lab, *_ = upload(app_module, make_images(tmp_path / "good", 3))
    folder = lab.data_dir
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "notes.exe").write_bytes(b"MZ")
    (bad / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 cut")
    lab, md, thumbs, data_dir = upload(app_module, sorted(bad.iterdir()), lab)
    assert lab.data_dir == folder and images_in(folder) == ["img_000.png", "img_001.png", "img_002.png"]
    assert md.startswith("Nothing was added; the current dataset is unchanged.")
    assert "broken.jpg" in md and "notes.exe" in md and "**3 image(s)**" in md and len(thumbs) == 3
    fresh, md, thumbs, data_dir = upload(app_module, sorted(bad.iterdir()))   # no dataset yet
    assert fresh.data_dir == "" and data_dir == "" and thumbs == [] and md.startswith("Nothing was added.")


def test_clear_dataset_empties_it_and_resets_the_report(app_module, tmp_path, _private_lab_state):
    lab, *_ = upload(app_module, make_images(tmp_path / "a", 2))
    bo_lab, *_ = upload(app_module, make_images(tmp_path / "b", 2, seed=5), who=BO)
    folder = Path(lab.data_dir)
    lab, md, thumbs, data_dir, files = app_module.clear_dataset(None, lab, ANA)
    assert lab.data_dir == "" and data_dir == "" and thumbs == [] and files is None
    assert not folder.exists() and md.startswith("Dataset cleared")
    assert images_in(bo_lab.data_dir) == ["img_000.png", "img_001.png"], "bo's dataset is bo's"
    lab, md, *_ = app_module.clear_dataset(None, lab, ANA)                   # nothing left: says so
    assert md.startswith("Dataset cleared") and lab.data_dir == ""


def test_a_dataset_a_run_trained_on_is_kept(app_module, tmp_path, _private_lab_state):
    lab, *_ = upload(app_module, make_images(tmp_path / "a", 2))
    used = Path(lab.data_dir)
    run = _private_lab_state / "runs" / "lora-ana-1"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"data_dir": str(used), "method": "lora"}))
    lab, md, *_ = upload(app_module, make_images(tmp_path / "b", 2, seed=9), lab)
    assert used.is_dir() and images_in(used) == ["img_000.png", "img_001.png"], "Resume still finds its images"
    lab, md, *_ = app_module.clear_dataset(None, LabState(data_dir=str(used)), ANA)
    assert used.is_dir() and "kept" in md and "lora-ana-1" in md


def test_no_one_adds_to_or_clears_someone_elses_dataset(app_module, tmp_path):
    ana_lab, *_ = upload(app_module, make_images(tmp_path / "a", 2))
    ana_folder = ana_lab.data_dir
    # bo's page state pointing at ana's folder (or at a folder on the server): adding starts bo's own
    for foreign in (ana_folder, str(tmp_path / "a")):
        bo_lab, md, _, _ = upload(app_module, make_images(tmp_path / "b", 1, seed=7), LabState(data_dir=foreign),
                                  add=True, who=BO)
        assert bo_lab.data_dir != foreign and md.startswith("New dataset.")
        assert images_in(ana_folder) == ["img_000.png", "img_001.png"]
        assert images_in(tmp_path / "a") == ["img_000.png", "img_001.png"]
    app_module.clear_dataset(None, LabState(data_dir=ana_folder), BO)
    assert images_in(ana_folder) == ["img_000.png", "img_001.png"]
    assert app_module.upload_dataset([], "forged.token", False, LabState(), None)[1].startswith("**This page has no")


def test_the_upload_box_takes_captions_and_there_is_a_clear_button(app_module):
    demo = app_module.build_demo()
    comps = {c["props"].get("elem_id"): c for c in demo.config["components"] if c.get("props")}
    assert ".txt" in comps["upload"]["props"]["file_types"]
    assert comps["clear-dataset"]["type"] == "button"
    assert comps["add-to-dataset"]["type"] == "checkbox" and comps["add-to-dataset"]["props"]["value"] is False

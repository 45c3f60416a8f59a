"""lab.uploads and lab.datasets: every bad upload is refused with a reason and nothing lands
outside the session's folder; folders on the server only inside the allowed roots; the dataset
report says what training will see and what the advisor thinks of it."""
from __future__ import annotations

import io
import os
import stat
import struct
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from helpers import make_images, pattern_image
from lab.datasets import dataset_report, report_markdown
from lab.uploads import (clean_session_id, dataset_from_folder, ingest_uploads, new_session_dir,
                         safe_name)
from trainer.data import scan_dataset


# --- helpers ------------------------------------------------------------------------------------------
def png_bytes(seed: int = 0, size=(64, 64), fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    pattern_image(size, seed).save(buf, fmt)
    return buf.getvalue()


def write_zip(path: Path, entries: dict[str, bytes] | list[tuple[object, bytes]]) -> Path:
    """A zip with exactly these entry names (a ZipInfo is written as given: symlinks, odd names)."""
    items = entries.items() if isinstance(entries, dict) else entries
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in items:
            zf.writestr(name, data)
    return path


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.fixture
def dest(tmp_path) -> Path:
    # deep enough that "../../evil.png" from dest would still land inside tmp_path, where we look
    return tmp_path / "sessions" / "abc" / "data"


@pytest.fixture
def outside_snapshot(tmp_path):
    """Checks at the end that the only new paths under tmp_path are inside dest (and the inputs)."""
    before = files_under(tmp_path)

    def check(dest: Path, inputs: Path):
        new = files_under(tmp_path) - before
        stray = [p for p in new if not (tmp_path / p).resolve().is_relative_to(dest.resolve())
                 and not (tmp_path / p).resolve().is_relative_to(inputs.resolve())
                 and (tmp_path / p).resolve() not in {dest.resolve(), *dest.resolve().parents}]
        assert stray == []
        assert not list(dest.glob(".upload-*")), "temporary files left behind"
    return check


# --- names ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("raw, expected", [
    ("photo.JPG", "photo.jpg"),
    ("../../etc/passwd.png", "passwd.png"),
    ("..\\..\\windows\\evil.png", "evil.png"),
    ("/abs/path/x.webp", "x.webp"),
    ("bad\x00name\x07\x1b.png", "badname.png"),
    ("exe.\u202egnp.png", "exe.gnp.png"),         # right-to-left override dropped
    ('a<b>c:d"e|f?g*h.png', "a_b_c_d_e_f_g_h.png"),
    ("   .hidden.png  ", "hidden.png"),
    ("..", "file"),
    ("", "file"),
    ("CON.png", "_CON.png"),
    ("many   spaces\tand\ttabs.png", "many spaces and tabs.png"),
])
def test_safe_name(raw, expected):
    assert safe_name(raw) == expected


def test_safe_name_limits_length_in_bytes_and_keeps_the_extension():
    name = safe_name("é" * 300 + ".png")
    assert name.endswith(".png") and len(name.encode()) <= 120
    name.encode("utf-8").decode("utf-8")  # not cut inside a character


def test_session_dirs_are_separate_and_inside_the_root(tmp_path):
    a = new_session_dir(tmp_path, "abc123")
    assert a == tmp_path / "abc123" and a.is_dir()
    dotted, plain = clean_session_id("a.b"), clean_session_id("ab")
    assert dotted != plain  # cleaning never merges two sessions
    evil = new_session_dir(tmp_path, "../../escape")
    assert evil.parent == tmp_path and "/" not in evil.name and ".." not in evil.name
    with pytest.raises(ValueError, match="session_id"):
        new_session_dir(tmp_path, "  ")


# --- good uploads --------------------------------------------------------------------------------------
def test_images_and_captions_are_copied_by_content(tmp_path, dest, outside_snapshot):
    src = tmp_path / "in"
    make_images(src, 2, fmt="png", captions=True)
    make_images(src, 1, fmt="jpg", seed=10)           # img_000.jpg: loose files are one flat folder,
    (src / "photo.WEBP").write_bytes(png_bytes(20, fmt="WEBP"))  # so it shares img_000.txt as there
    again = src / "other-tab" / "img_001.png"           # the same name from another upload: renamed
    again.parent.mkdir()
    again.write_bytes(png_bytes(30))
    paths = sorted(p for p in src.iterdir() if p.is_file()) + [again]
    rep = ingest_uploads(paths, dest)
    assert rep.rejected == []
    assert sorted(rep.images) == ["img_000.jpg", "img_000.png", "img_001.png", "img_001_1.png", "photo.webp"]
    assert sorted(rep.captions) == ["img_000.txt", "img_001.txt"]
    assert (dest / "img_001_1.png").read_bytes() == again.read_bytes()
    assert rep.bytes_written == sum(p.stat().st_size for p in dest.iterdir())
    captions = {it.path.name: it.caption for it in scan_dataset(dest).images}
    assert captions["img_001.png"] == "a photo of pattern 1" and captions["img_001_1.png"] is None
    assert rep.ok and "5 image(s) added" in rep.summary()
    outside_snapshot(dest, src)


# --- bad loose files -----------------------------------------------------------------------------------
def test_wrong_types_are_rejected_by_content(tmp_path, dest, outside_snapshot):
    src = tmp_path / "in"
    src.mkdir()
    (src / "notes.exe").write_bytes(b"MZ\x90\x00")
    (src / "fake.png").write_text("I am a text file, not a picture")
    buf = io.BytesIO()
    pattern_image((16, 16)).save(buf, "GIF")
    (src / "anim.png").write_bytes(buf.getvalue())            # a real image, but a GIF
    (src / "broken.jpg").write_bytes(png_bytes(1, fmt="JPEG")[:40])  # truncated
    (src / "notazip.zip").write_bytes(b"PK but not really")
    (src / "readme.md").write_text("# hello")
    (src / "binary.txt").write_bytes(b"\x00\x01\x02caption")
    (src / "folder.png").mkdir()
    rep = ingest_uploads(sorted(src.iterdir()), dest)
    reasons = dict(r.split(": ", 1) for r in rep.rejected)
    assert reasons["notes.exe"] == "not an image, caption or zip"
    assert "not a JPEG, PNG or WebP" in reasons["fake.png"]
    assert "GIF" in reasons["anim.png"]
    assert "corrupt or truncated" in reasons["broken.jpg"] or "not a JPEG" in reasons["broken.jpg"]
    assert reasons["notazip.zip"] == "not a valid zip archive"
    assert reasons["readme.md"] == "not an image, caption or zip"
    assert reasons["binary.txt"].startswith("no image named binary")  # a caption needs its image first
    assert reasons["folder.png"] == "not a regular file"
    assert rep.images == [] and rep.captions == [] and list(dest.iterdir()) == []
    assert not rep.ok
    outside_snapshot(dest, src)


def test_a_name_with_separators_and_control_characters_is_sanitised(tmp_path, dest):
    src = tmp_path / "in"
    src.mkdir()
    weird = src / "my\x1b[31m\u202edog\x07 photo?.PNG"
    weird.write_bytes(png_bytes())
    rep = ingest_uploads([weird], dest)
    assert rep.images == ["my[31mdog photo_.png"]
    assert (dest / "my[31mdog photo_.png").is_file()


def test_hidden_and_system_files_are_ignored(tmp_path, dest):
    src = tmp_path / "in"
    src.mkdir()
    (src / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (src / "._img.png").write_bytes(b"\x00\x05\x16\x07")  # a macOS resource fork
    (src / "Thumbs.db").write_bytes(b"\xd0\xcf")
    rep = ingest_uploads(sorted(src.iterdir()), dest)
    assert rep.rejected == [] and rep.images == [] and len(rep.ignored) == 3


def test_total_size_cap_counts_what_is_already_there(tmp_path, dest):
    src = tmp_path / "in"
    big = make_images(src, 3, size=(256, 256), fmt="png")  # ~100 KB+ each (random blocks + gradient)
    size = big[0].stat().st_size
    cap_mb = (size * 1.5) / (1 << 20)
    rep = ingest_uploads(big, dest, max_total_mb=cap_mb)
    assert len(rep.images) == 1
    assert len(rep.rejected) == 2 and all("over the upload limit" in r for r in rep.rejected)
    again = ingest_uploads(big[:1], dest, max_total_mb=cap_mb)  # a second upload is still capped
    assert again.images == [] and "over the upload limit" in again.rejected[0]
    assert sum(p.stat().st_size for p in dest.iterdir()) <= cap_mb * (1 << 20)


def test_file_count_cap(tmp_path, dest):
    paths = make_images(tmp_path / "in", 5)
    rep = ingest_uploads(paths, dest, max_files=3)
    assert len(rep.images) == 3
    assert [r.split(": ", 1)[1] for r in rep.rejected] == ["too many files (the limit is 3)"] * 2


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="max_total_mb"):
        ingest_uploads([], tmp_path / "d", max_total_mb=0)
    with pytest.raises(ValueError, match="max_files"):
        ingest_uploads([], tmp_path / "d", max_files=0)


# --- zips ----------------------------------------------------------------------------------------------
def test_zip_with_nested_folders_captions_and_metadata_is_flattened(tmp_path, dest, outside_snapshot):
    src = tmp_path / "in"
    src.mkdir()
    z = write_zip(src / "dogs.zip", {
        "dogs/": b"",
        "dogs/a/img.png": png_bytes(1),
        "dogs/a/img.txt": b"a photo of sks dog in folder a",
        "dogs/b/deeper/img.png": png_bytes(2),
        "dogs/b/deeper/img.txt": b"a photo of sks dog in folder b",
        "dogs/solo.jpg": png_bytes(3, fmt="JPEG"),
        "dogs/metadata.jsonl": b'{"file_name": "solo.jpg", "text": "solo caption"}\n',
        "__MACOSX/dogs/._img.png": b"\x00\x05\x16\x07",
        "dogs/.DS_Store": b"\x00",
        "dogs/.git/config": b"[core]",
    })
    rep = ingest_uploads([z], dest)
    assert rep.rejected == []
    assert sorted(os.listdir(dest)) == ["img.png", "img.txt", "img_1.png", "img_1.txt", "metadata.jsonl", "solo.jpg"]
    assert len(rep.ignored) == 3
    caps = {it.path.name: it.caption for it in scan_dataset(dest).images}
    assert caps == {"img.png": "a photo of sks dog in folder a", "img_1.png": "a photo of sks dog in folder b",
                    "solo.jpg": "solo caption"}
    outside_snapshot(dest, src)


def test_zip_slip_absolute_and_symlink_entries_are_rejected(tmp_path, dest, outside_snapshot):
    src = tmp_path / "in"
    src.mkdir()
    link = zipfile.ZipInfo("link.png")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    fifo = zipfile.ZipInfo("pipe.png")
    fifo.external_attr = (stat.S_IFIFO | 0o644) << 16
    z = write_zip(src / "evil.zip", [
        ("../../evil.png", png_bytes(1)),
        ("ok/../../../evil2.png", png_bytes(2)),
        ("..\\..\\evil3.png", png_bytes(3)),
        ("/tmp/abs_evil.png", png_bytes(4)),
        ("C:/Windows/evil.png", png_bytes(5)),
        (link, b"/etc/passwd"),
        (fifo, b""),
        ("good.png", png_bytes(6)),
        ("nested.zip", b"PK\x05\x06" + b"\x00" * 18),
        ("run.sh", b"#!/bin/sh\nrm -rf /\n"),
    ])
    rep = ingest_uploads([z], dest)
    assert rep.images == ["good.png"]
    reasons = {r.split(": ")[1]: r.split(": ", 2)[2] for r in rep.rejected}
    assert reasons["../../evil.png"] == "path leaves the archive ('..')"
    assert reasons["ok/../../../evil2.png"] == "path leaves the archive ('..')"
    assert reasons["..\\..\\evil3.png"] == "path leaves the archive ('..')"
    assert reasons["/tmp/abs_evil.png"] == "absolute path in the archive"
    assert reasons["C:/Windows/evil.png"] == "absolute path in the archive"
    assert reasons["link.png"] == "symbolic link"
    assert reasons["pipe.png"] == "not a regular file"
    assert "archives inside archives" in reasons["nested.zip"]
    assert reasons["run.sh"] == "not an image or caption"
    assert sorted(os.listdir(dest)) == ["good.png"]
    assert not list(tmp_path.rglob("evil*.png")) and not Path("/tmp/abs_evil.png").exists()
    outside_snapshot(dest, src)


def test_zip_bomb_over_the_size_cap_is_refused_before_extracting(tmp_path, dest, outside_snapshot):
    src = tmp_path / "in"
    src.mkdir()
    z = write_zip(src / "bomb.zip", {f"zeros{i}.png": b"\x00" * (3 << 20) for i in range(4)})
    assert z.stat().st_size < 200_000  # 12 MB of zeros compress to almost nothing
    rep = ingest_uploads([z], dest, max_total_mb=5)
    assert len(rep.rejected) == 1 and "unpacks to 12.0 MB, over the upload limit of 5 MB" in rep.rejected[0]
    assert list(dest.iterdir()) == []
    outside_snapshot(dest, src)


def test_zip_entry_larger_than_its_header_says_is_rejected(tmp_path, dest):
    """A forged header declares 100 bytes; reading more than that never happens, and the entry fails."""
    src = tmp_path / "in"
    src.mkdir()
    z = write_zip(src / "liar.zip", {"big.png": png_bytes(1, size=(256, 256))})
    data = bytearray(z.read_bytes())
    assert data[:4] == b"PK\x03\x04"
    struct.pack_into("<I", data, 22, 100)                     # local header: uncompressed size
    cd = data.find(b"PK\x01\x02")
    struct.pack_into("<I", data, cd + 24, 100)                # central directory: uncompressed size
    z.write_bytes(bytes(data))
    rep = ingest_uploads([z], dest, max_total_mb=1)
    assert rep.images == [] and len(rep.rejected) == 1
    assert list(dest.iterdir()) == []


def test_zip_with_too_many_files_is_refused(tmp_path, dest):
    src = tmp_path / "in"
    src.mkdir()
    z = write_zip(src / "many.zip", {f"img_{i}.png": png_bytes(i) for i in range(6)})
    rep = ingest_uploads([z], dest, max_files=5)
    assert rep.images == [] and "6 files inside, more than the 5 still allowed" in rep.rejected[0]


def test_empty_zip_and_duplicate_names_across_uploads(tmp_path, dest):
    src = tmp_path / "in"
    src.mkdir()
    empty = write_zip(src / "empty.zip", {})
    rep = ingest_uploads([empty], dest)
    assert rep.rejected == ["empty.zip: the archive holds no images"]
    one = write_zip(src / "one.zip", {"x/dog.png": png_bytes(1), "x/dog.txt": b"first"})
    two = write_zip(src / "two.zip", {"y/dog.png": png_bytes(2), "y/dog.txt": b"second", "y/metadata.jsonl": b"{}\n"})
    ingest_uploads([one], dest)
    three = write_zip(src / "three.zip", {"z/dog.png": png_bytes(3), "z/dog.txt": b"third"})
    rep = ingest_uploads([two, two, three], dest)  # every name stays unique; the same zip again adds nothing
    assert sorted(os.listdir(dest)) == ["dog.png", "dog.txt", "dog_1.png", "dog_1.txt", "dog_2.png", "dog_2.txt",
                                        "metadata.jsonl"]
    assert any("only one is used" in r for r in rep.rejected)
    assert rep.duplicates == ["two.zip: y/dog.png: identical to dog_1.png"]
    assert (dest / "dog_1.txt").read_text() == "second" and (dest / "dog.txt").read_text() == "first"
    assert (dest / "dog_2.txt").read_text() == "third"


# --- folders on the server -------------------------------------------------------------------------------
def test_folder_on_the_server_must_be_inside_an_allowed_root(tmp_path, monkeypatch):
    root = tmp_path / "data"
    make_images(root / "dogs", 2)
    other = tmp_path / "private"
    make_images(other, 1)
    assert dataset_from_folder(root / "dogs", [root]) == (root / "dogs").resolve()
    assert dataset_from_folder("dogs", [root]) == (root / "dogs").resolve()  # relative: inside the first root
    for bad in (other, root / ".." / "private", "../private", "/etc"):
        with pytest.raises(ValueError, match="outside the folders this server allows"):
            dataset_from_folder(bad, [root])
    (root / "escape").symlink_to(other)
    with pytest.raises(ValueError, match="outside"):
        dataset_from_folder(root / "escape", [root])
    (root / "dogs" / "leak.png").symlink_to(other / "img_000.png")
    with pytest.raises(ValueError, match="leak.png links outside"):
        dataset_from_folder(root / "dogs", [root])
    with pytest.raises(ValueError, match="does not exist"):
        dataset_from_folder(root / "cats", [root])
    with pytest.raises(ValueError, match="is empty"):
        dataset_from_folder("  ", [root])
    # the default roots come from FTA_DATA_ROOTS
    monkeypatch.setenv("FTA_DATA_ROOTS", os.pathsep.join([str(tmp_path / "nothing"), str(other)]))
    assert dataset_from_folder(other) == other.resolve()
    with pytest.raises(ValueError, match="outside"):
        dataset_from_folder(root)


def test_default_root_is_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.delenv("FTA_DATA_ROOTS", raising=False)
    make_images(tmp_path / "here", 1)
    monkeypatch.chdir(tmp_path)
    assert dataset_from_folder("here") == (tmp_path / "here").resolve()
    with pytest.raises(ValueError, match="outside"):
        dataset_from_folder(tmp_path.parent)


# --- the dataset report -------------------------------------------------------------------------------------
def test_report_on_a_good_folder_with_a_recommendation(tmp_path):
    data = tmp_path / "data"
    make_images(data, 4, size=(96, 64))
    make_images(data, 1, size=(128, 160), seed=50, fmt="jpg")
    rec = {"method": "dreambooth_lora", "train_config": {"resolution": 64}}
    thumbs = tmp_path / "session" / "thumbs"
    rep = dataset_report(data, recommendation=rec, goal_profile={"n_images": 12, "subject_type": "animal"},
                         thumbs_dir=thumbs)
    assert rep["ok"] and rep["count"] == 5 and rep["resolution"] == 64
    assert rep["sizes"]["min"] == "96x64" and rep["sizes"]["max"] == "128x160"
    assert rep["verdict"] == "good"
    assert any("Image count is good for dreambooth_lora" in s for s in rep["opinion"])
    assert any("You told the advisor 12 images" in s for s in rep["opinion"])
    assert any("Every image is at least 64 px" in s for s in rep["opinion"])
    assert len(rep["thumbnails"]) == 5
    for path, caption in rep["thumbnails"]:
        p = Path(path)
        assert p.parent == thumbs and p.suffix == ".jpg"
        with Image.open(p) as im:
            assert im.format == "JPEG" and max(im.size) <= 128
    mtimes = [Path(p).stat().st_mtime_ns for p, _ in rep["thumbnails"]]
    again = dataset_report(data, resolution=64, recommendation=rec, thumbs_dir=thumbs)
    assert [Path(p).stat().st_mtime_ns for p, _ in again["thumbnails"]] == mtimes  # cached
    md = report_markdown(rep)
    assert "**5 image(s)**" in md and "What the advisor thinks" in md


def test_report_counts_against_the_method_and_resolution(tmp_path):
    data = tmp_path / "data"
    make_images(data, 2, size=(64, 64))
    rep = dataset_report(data, resolution=512, recommendation={"method": "lora"},
                         goal_profile={"subject_type": "style"})
    assert rep["verdict"] == "too_few"
    assert any(s.startswith("Too few images for lora: 2") and "Add at least 13 more" in s for s in rep["opinion"])
    assert any("2 of 2 image(s) are smaller than the training resolution (512 px)" in s for s in rep["opinion"])
    assert any(s.startswith("No captions: for a style") for s in rep["opinion"])
    assert rep["thumbnails"] == []  # no session folder given: none written next to the user's files
    many = tmp_path / "many"
    make_images(many, 12)
    rep = dataset_report(many, resolution=64, recommendation={"method": "dreambooth"})
    assert rep["verdict"] == "more_than_needed" and "Pick the best 10" in rep["opinion"][0]
    with pytest.raises(ValueError, match="method"):
        dataset_report(many, resolution=64, recommendation={"method": "magic"})


def test_a_subject_lora_counts_as_a_subject_not_a_style(tmp_path):
    """5 photos of a dog are plenty for a LoRA with an identifier prompt; 5 of a style are not."""
    make_images(tmp_path / "dog", 5)
    dog = dataset_report(tmp_path / "dog", resolution=64, recommendation={"method": "lora"},
                         goal_profile={"subject_type": "animal"})
    assert dog["verdict"] == "good" and "one subject" in dog["opinion"][0]
    assert any("captions are optional" in s for s in dog["opinion"])
    assert not any(s.startswith("No captions") for s in dog["opinion"])
    style = dataset_report(tmp_path / "dog", resolution=64, recommendation={"method": "lora"},
                           goal_profile={"subject_type": "style"})
    assert style["verdict"] == "too_few" and "style or concept" in style["opinion"][0]
    empty = dataset_report(tmp_path / "nothing", recommendation={"method": "lora"}, goal_profile={"subject_type": "person"})
    assert "one subject" in empty["opinion"][0]


def test_report_on_a_bad_folder_lists_problems_and_duplicates(tmp_path):
    data = tmp_path / "data"
    paths = make_images(data, 3)
    (data / "dupe.png").write_bytes(paths[0].read_bytes())
    (data / "broken.png").write_text("not an image")
    (data / "img_001.txt").write_text("a dog on the beach")
    rep = dataset_report(data, resolution=64, recommendation={"method": "dreambooth"})
    assert rep["ok"] and rep["count"] == 4
    assert rep["skipped"] == ["broken.png"] and rep["problems"][0].startswith("broken.png: ")
    assert rep["duplicates"] == [["dupe.png", "img_000.png"]]
    assert any("1 group(s) of duplicates" in s for s in rep["opinion"])
    assert any("dreambooth trains every image with the instance prompt" in s for s in rep["opinion"])
    md = report_markdown(rep)
    assert "**Problems**" in md and "broken.png" in md and "dupe.png = img_000.png" in md


def test_report_on_an_unusable_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    rep = dataset_report(tmp_path / "empty", resolution=64, recommendation={"method": "lora"})
    assert not rep["ok"] and "no images" in rep["error"] and rep["count"] == 0
    assert report_markdown(rep).startswith("**Dataset not usable:**")
    assert not dataset_report(tmp_path / "missing", resolution=64)["ok"]


# --- issue 13: corrupt images are never stored --------------------------------------------------------------
def jpeg_bytes(seed: int = 0, size=(128, 128), **save) -> bytes:
    buf = io.BytesIO()
    pattern_image(size, seed).save(buf, "JPEG", quality=95, **save)
    return buf.getvalue()


def entropy_start(jpeg: bytes) -> int:
    """Where a baseline JPEG's compressed pixel data begins (after its one SOS header)."""
    sos = jpeg.index(b"\xff\xda")
    return sos + 2 + int.from_bytes(jpeg[sos + 2:sos + 4], "big")


def garbage_inside(jpeg: bytes) -> bytes:
    """16 bytes of the compressed pixel data overwritten half way (no 0xFF, so no marker appears)."""
    data = bytearray(jpeg)
    mid = (entropy_start(jpeg) + len(jpeg) - 2) // 2
    data[mid:mid + 16] = bytes(range(0x10, 0x20))
    return bytes(data)


CORRUPT_JPEGS = {
    "garbage in the middle": lambda d: garbage_inside(d),
    "cut, then an end marker": lambda d: d[:(entropy_start(d) + len(d)) // 2] + b"\xff\xd9",
    "junk before the end marker": lambda d: d[:-2] + bytes(range(1, 101)) + b"\xff\xd9",
}


@pytest.mark.parametrize("how", list(CORRUPT_JPEGS))
def test_a_jpeg_with_corrupt_pixel_data_is_refused_though_pillow_reads_it(tmp_path, dest, how):
    """Pillow's libjpeg glue throws libjpeg's warnings away, so these decode without an error or a
    warning (checked here) into an image with a smeared or grey lower part; libjpeg itself calls
    them "Corrupt JPEG data", and so must the upload."""
    import warnings

    from PIL import ImageFile

    bad = CORRUPT_JPEGS[how](jpeg_bytes())
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with Image.open(io.BytesIO(bad)) as im:
            im.load()                                       # what PIL does: nothing to see
    src = tmp_path / "in"
    src.mkdir()
    (src / "photo.jpg").write_bytes(bad)
    (src / "fine.jpg").write_bytes(jpeg_bytes(1))
    rep = ingest_uploads([src / "photo.jpg", src / "fine.jpg"], dest)
    assert rep.images == ["fine.jpg"]
    assert len(rep.rejected) == 1 and rep.rejected[0].startswith("photo.jpg: corrupt JPEG data")
    assert sorted(os.listdir(dest)) == ["fine.jpg"]


@pytest.mark.parametrize("name, make", [
    ("cut.png", lambda: png_bytes(1, size=(128, 128))[:-300]),      # cut inside the pixel data
    ("cut.jpg", lambda: jpeg_bytes(1)[:len(jpeg_bytes(1)) * 2 // 3]),  # header intact, pixels cut off
    ("cut.webp", lambda: png_bytes(1, size=(128, 128), fmt="WEBP")[:-200]),
    ("random.jpg", lambda: bytes(range(256)) * 8),
])
def test_an_image_that_does_not_decode_is_neither_stored_nor_listed(tmp_path, dest, name, make):
    src = tmp_path / "in"
    src.mkdir()
    (src / name).write_bytes(make())
    z = write_zip(src / "set.zip", {f"inside/{name}": make(), "inside/ok.png": png_bytes(2)})
    rep = ingest_uploads([src / name, z], dest)
    assert rep.images == ["ok.png"] and sorted(os.listdir(dest)) == ["ok.png"]
    assert [r.split(": ")[0] for r in rep.rejected] == [name, "set.zip"]
    assert all(("truncated" in r or "corrupt" in r or "not a JPEG, PNG or WebP" in r) for r in rep.rejected)
    assert name in rep.summary() and "not added" in rep.summary()


def _exif() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotated, as phones write it
    return exif.tobytes()


@pytest.mark.parametrize("save", [{}, {"progressive": True}, {"optimize": True}, {"subsampling": 0},
                                  {"restart_marker_rows": 1}, {"exif": _exif()}],
                         ids=["baseline", "progressive", "optimized", "4:4:4", "restart markers", "exif"])
def test_valid_jpegs_of_every_common_kind_pass(tmp_path, dest, save):
    src = tmp_path / "in"
    src.mkdir()
    (src / "a.jpg").write_bytes(jpeg_bytes(3, size=(96, 80), **save))
    buf = io.BytesIO()
    pattern_image((64, 64), 4).convert("CMYK").save(buf, "JPEG")
    (src / "cmyk.jpg").write_bytes(buf.getvalue())
    buf = io.BytesIO()
    pattern_image((64, 64), 5).convert("L").save(buf, "JPEG")
    (src / "grey.jpg").write_bytes(buf.getvalue())
    (src / "trailer.jpg").write_bytes(jpeg_bytes(6) + b"camera maker's trailer after the end marker")
    rep = ingest_uploads(sorted(src.iterdir()), dest)
    assert rep.rejected == [] and len(rep.images) == 4


def test_a_multi_picture_jpeg_from_a_phone_is_accepted(tmp_path, dest):
    """Pillow calls a JPEG with an MPF block (Ultra HDR, stereo, depth photos) "MPO"; its first
    picture is an ordinary JPEG, the one training reads."""
    src = tmp_path / "in"
    src.mkdir()
    pattern_image((96, 64), 7).save(src / "pixel.jpg", "MPO", save_all=True,
                                    append_images=[pattern_image((48, 32), 8)])
    with Image.open(src / "pixel.jpg") as im:
        assert im.format == "MPO"
    rep = ingest_uploads([src / "pixel.jpg"], dest)
    assert rep.rejected == [] and rep.images == ["pixel.jpg"]


# --- issue 13: captions beside images -------------------------------------------------------------------------
def test_loose_captions_pair_with_their_image_whatever_the_order(tmp_path, dest):
    src = tmp_path / "in"
    src.mkdir()
    (src / "a.webp").write_bytes(png_bytes(1, fmt="WEBP"))
    (src / "a.txt").write_text("a photo of sks dog on grass")
    (src / "B.PNG").write_bytes(png_bytes(2))
    (src / "B.txt").write_text("a photo of sks dog, studio")
    rep = ingest_uploads([src / "a.txt", src / "a.webp", src / "B.txt", src / "B.PNG"], dest)  # captions first
    assert rep.rejected == [] and sorted(rep.captions) == ["B.txt", "a.txt"]
    caps = {it.path.name: it.caption for it in scan_dataset(dest).images}
    assert caps == {"a.webp": "a photo of sks dog on grass", "B.png": "a photo of sks dog, studio"}


def test_an_orphan_caption_is_named_and_not_stored(tmp_path, dest):
    src = tmp_path / "in"
    src.mkdir()
    (src / "dog.png").write_bytes(png_bytes(1))
    (src / "cat.txt").write_text("a cat")
    (src / "broken.jpg").write_bytes(b"\xff\xd8\xff not really")
    (src / "broken.txt").write_text("the caption of a broken picture")
    rep = ingest_uploads(sorted(src.iterdir()), dest)
    reasons = dict(r.split(": ", 1) for r in rep.rejected)
    assert reasons["cat.txt"].startswith("no image named cat")
    assert reasons["broken.txt"] == "its image broken.jpg was not added"
    assert rep.images == ["dog.png"] and rep.captions == [] and sorted(os.listdir(dest)) == ["dog.png"]
    summary = rep.summary()
    assert "cat.txt: no image named cat" in summary and "broken.txt" in summary


def test_a_caption_added_later_pairs_with_its_image_already_in_the_dataset(tmp_path, dest):
    src = tmp_path / "in"
    make_images(src, 2, fmt="jpg")
    ingest_uploads(sorted(src.glob("*.jpg")), dest)
    (src / "img_001.txt").write_text("the second one, captioned later")
    rep = ingest_uploads([src / "img_001.txt"], dest)
    assert rep.rejected == [] and rep.captions == ["img_001.txt"]
    assert {it.path.name: it.caption for it in scan_dataset(dest).images}["img_001.jpg"] == \
        "the second one, captioned later"
    again = ingest_uploads([src / "img_001.txt"], dest)   # it has one now
    assert again.captions == [] and again.rejected == ["img_001.txt: img_001.jpg already has a caption"]


@pytest.mark.parametrize("content, why", [
    pytest.param("x" * 9000, "9000 bytes; a caption may hold at most 8192", id="too long"),
    pytest.param("café".encode("latin-1"), "not UTF-8 text", id="latin-1"),
    pytest.param("a dog".encode("utf-16"), "UTF-16 text; save it as UTF-8", id="utf-16"),
    pytest.param(b"\x00\x01binary", "not a text file", id="binary"),
])
def test_captions_are_short_utf8_text(tmp_path, dest, content, why):
    src = tmp_path / "in"
    src.mkdir()
    (src / "dog.png").write_bytes(png_bytes(1))
    (src / "dog.txt").write_bytes(content.encode() if isinstance(content, str) else content)
    rep = ingest_uploads([src / "dog.png", src / "dog.txt"], dest)
    assert rep.rejected == [f"dog.txt: {why}"] and rep.images == ["dog.png"] and rep.captions == []


# --- issue 13: nothing stored twice; the summary names every file not added -------------------------------------
def test_an_identical_image_is_not_stored_twice(tmp_path, dest):
    src = tmp_path / "in"
    paths = make_images(src, 3, captions=True)
    copy = src / "copy of img_000.png"
    copy.write_bytes(paths[0].read_bytes())
    rep = ingest_uploads(paths + [copy] + [p.with_suffix(".txt") for p in paths], dest)
    assert sorted(rep.images) == ["img_000.png", "img_001.png", "img_002.png"]
    assert rep.duplicates == ["copy of img_000.png: identical to img_000.png"]
    again = ingest_uploads(paths[:2] + [paths[0].with_suffix(".txt")], dest)   # the same files once more
    assert again.images == [] and again.captions == []
    assert again.duplicates == ["img_000.png: identical to img_000.png", "img_001.png: identical to img_001.png"]
    assert again.rejected == ["img_000.txt: its image is identical to img_000.png, which already has a caption"]
    assert sorted(os.listdir(dest)) == ["img_000.png", "img_000.txt", "img_001.png", "img_001.txt", "img_002.png",
                                        "img_002.txt"]
    assert "- skipped img\\_001.png: identical to img\\_001.png\n" in again.summary()


def test_the_caption_of_a_copy_goes_with_the_image_kept(tmp_path, dest):
    src = tmp_path / "in"
    (original,) = make_images(src, 1, captions=True)
    copy = src / "a.png"                               # the same picture under a name that comes first
    copy.write_bytes(original.read_bytes())
    rep = ingest_uploads([copy, original, original.with_suffix(".txt")], dest)
    assert rep.images == ["a.png"] and rep.duplicates == ["img_000.png: identical to a.png"]
    assert rep.rejected == [] and rep.captions == ["a.txt"]
    assert {it.path.name: it.caption for it in scan_dataset(dest).images} == {"a.png": "a photo of pattern 0"}


def test_the_summary_names_each_file_not_added_with_its_reason_up_to_ten(tmp_path, dest):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(12):
        (src / f"notes_{i:02d}.exe").write_bytes(b"MZ")
    (src / "ok.png").write_bytes(png_bytes(1))
    rep = ingest_uploads(sorted(src.iterdir()), dest)
    lines = rep.summary().splitlines()
    assert lines[0].startswith("1 image(s) added") and "12 not added" in lines[0]
    named = [ln for ln in lines if ln.startswith("- ")]
    assert named[:10] == [f"- refused notes\\_{i:02d}.exe: not an image, caption or zip" for i in range(10)]
    assert named[10:] == ["- … and 2 more"]


def test_the_summary_shows_names_as_written_not_as_markdown(tmp_path, dest):
    src = tmp_path / "in"
    src.mkdir()
    name = "**bold** [x](evil.example) _a_ <b>.exe"
    (src / name).write_bytes(b"MZ")
    summary = ingest_uploads([src / name], dest).summary()
    assert r"\*\*bold\*\* \[x\]\(evil.example\) \_a\_ \<b\>.exe" in summary

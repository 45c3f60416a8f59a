"""Training data: every odd image a user drops in a folder reads right or fails with its name."""
from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import make_images, pattern_image
from trainer.data import (IMAGE_EXTS, DataError, ImageDataset, assign_bucket, bucket_batches, collate,
                          load_image, make_buckets, prepare_image, scan_dataset)


def _px(img: Image.Image, xy) -> tuple[int, int, int]:
    return img.getpixel(xy)


# --- load_image: formats and modes ---------------------------------------------------------
class TestLoadImage:
    @pytest.mark.parametrize("fmt", ["jpg", "png", "webp"])
    def test_common_formats(self, tmp_path, fmt):
        (path,) = make_images(tmp_path, 1, size=(48, 32), fmt=fmt)
        img = load_image(path)
        assert img.mode == "RGB" and img.size == (48, 32)
        ref = np.asarray(pattern_image((48, 32), 0), dtype=np.float32)
        assert np.abs(np.asarray(img, dtype=np.float32) - ref).mean() < 6  # lossy formats stay close

    def test_exif_orientation_is_applied(self, tmp_path):
        img = Image.new("RGB", (80, 40), (0, 0, 255))
        img.paste((255, 0, 0), (0, 0, 40, 40))  # left half red
        exif = Image.Exif()
        exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
        path = tmp_path / "phone.jpg"
        img.save(path, "JPEG", exif=exif, quality=95)
        out = load_image(path)
        assert out.size == (40, 80)  # now portrait
        top, bottom = _px(out, (20, 10)), _px(out, (20, 70))
        assert top[0] > 200 and top[2] < 60      # the left (red) half went to the top
        assert bottom[2] > 200 and bottom[0] < 60

    def test_alpha_goes_over_white(self, tmp_path):
        rgba = Image.new("RGBA", (20, 20), (0, 0, 0, 0))       # transparent black
        rgba.paste((255, 0, 0, 255), (0, 0, 10, 20))           # opaque red left half
        rgba.paste((0, 0, 0, 128), (10, 0, 20, 10))            # half-transparent black
        rgba.save(tmp_path / "cutout.png")
        out = load_image(tmp_path / "cutout.png")
        assert out.mode == "RGB"
        assert _px(out, (15, 15)) == (255, 255, 255)
        assert _px(out, (5, 5)) == (255, 0, 0)
        assert all(120 <= c <= 135 for c in _px(out, (15, 5)))

    def test_grey_alpha_and_palette_transparency(self, tmp_path):
        Image.new("LA", (8, 8), (0, 0)).save(tmp_path / "la.png")
        assert _px(load_image(tmp_path / "la.png"), (1, 1)) == (255, 255, 255)
        pal = Image.new("P", (8, 8), 0)
        pal.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)
        pal.paste(1, (0, 0, 4, 8))
        pal.save(tmp_path / "pal_t.png", transparency=0)
        out = load_image(tmp_path / "pal_t.png")
        assert _px(out, (1, 1)) == (0, 255, 0) and _px(out, (6, 1)) == (255, 255, 255)

    def test_palette_without_transparency(self, tmp_path):
        pattern_image((32, 32), 3).convert("P", palette=Image.Palette.ADAPTIVE, colors=16).save(tmp_path / "p.png")
        out = load_image(tmp_path / "p.png")
        assert out.mode == "RGB" and len(np.unique(np.asarray(out).reshape(-1, 3), axis=0)) > 1

    def test_cmyk_jpeg(self, tmp_path):
        Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(tmp_path / "print.jpg", "JPEG", quality=95)
        r, g, b = _px(load_image(tmp_path / "print.jpg"), (8, 8))
        assert r > 200 and g < 60 and b < 60  # no cyan/magenta/yellow ink = red

    def test_16bit_grey_png_scales_to_8bit(self, tmp_path):
        ramp = np.tile(np.linspace(0, 65535, 64), (8, 1)).astype(np.uint16)
        Image.fromarray(ramp).save(tmp_path / "scan16.png")
        assert Image.open(tmp_path / "scan16.png").mode in ("I;16", "I")
        out = np.asarray(load_image(tmp_path / "scan16.png"))
        assert out.dtype == np.uint8 and out.shape == (8, 64, 3)
        assert out[0, 0, 0] == 0 and out[0, -1, 0] == 255
        assert 120 <= out[0, 32, 0] <= 135  # mid-grey stays mid-grey, not clipped white
        assert (np.diff(out[0, :, 0].astype(int)) >= 0).all()

    def test_16bit_dark_image_stays_dark(self, tmp_path):
        Image.fromarray(np.full((4, 4), 2570, dtype=np.uint16)).save(tmp_path / "dark16.png")
        assert _px(load_image(tmp_path / "dark16.png"), (0, 0)) == (10, 10, 10)

    @pytest.mark.parametrize("values,expected", [
        (np.array([[0, 200]], dtype=np.int32), [0, 200]),            # 8-bit data in a 32-bit container
        (np.array([[0, 65535]], dtype=np.int32), [0, 255]),          # 16-bit data opened as "I"
        (np.array([[0, 0.5]], dtype=np.float32), [0, 128]),          # float 0..1
    ])
    def test_32bit_int_and_float_modes(self, values, expected):
        # PNG stores these as 16-bit nowadays, so build them in memory (TIFF-born images arrive so)
        from trainer.data import _to_rgb

        out = np.asarray(_to_rgb(Image.fromarray(values)))
        assert out[0, :, 0].tolist() == expected and out.shape[-1] == 3

    @pytest.mark.parametrize("mode,value,expected", [("L", 77, (77, 77, 77)), ("1", 1, (255, 255, 255))])
    def test_grey_and_bilevel(self, tmp_path, mode, value, expected):
        Image.new(mode, (8, 8), value).save(tmp_path / "g.png")
        assert _px(load_image(tmp_path / "g.png"), (3, 3)) == expected

    def test_draft_decodes_big_jpeg_smaller_but_not_below_request(self, tmp_path):
        pattern_image((1024, 768), 1).save(tmp_path / "big.jpg", "JPEG", quality=90)
        small = load_image(tmp_path / "big.jpg", draft_size=(100, 100))
        assert 100 <= min(small.size) < 768 and small.size[0] / small.size[1] == pytest.approx(4 / 3, rel=0.02)
        assert load_image(tmp_path / "big.jpg").size == (1024, 768)

    @pytest.mark.parametrize("name,content", [
        ("noise.png", bytes(np.random.default_rng(0).integers(0, 256, 500, dtype=np.uint8))),
        ("notes.png", b"this is a text file with a png extension\n"),
        ("empty.jpg", b""),
    ])
    def test_unreadable_files_name_the_file(self, tmp_path, name, content):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(DataError, match=name.replace(".", r"\.")):
            load_image(tmp_path / name)

    def test_truncated_jpeg(self, tmp_path):
        pattern_image((128, 128), 2).save(tmp_path / "full.jpg", "JPEG", quality=95)
        data = (tmp_path / "full.jpg").read_bytes()
        (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
        with pytest.raises(DataError, match=r"cut\.jpg.*(truncated|corrupt)"):
            load_image(tmp_path / "cut.jpg")

    def test_missing_file(self, tmp_path):
        with pytest.raises(DataError, match="gone.png"):
            load_image(tmp_path / "gone.png")


# --- scan_dataset ----------------------------------------------------------------------------
def _corrupt_trio(folder: Path) -> None:
    (folder / "noise.png").write_bytes(bytes(range(256)) * 3)
    pattern_image((64, 64), 9).save(folder / "whole.jpg", "JPEG")
    data = (folder / "whole.jpg").read_bytes()
    (folder / "whole.jpg").unlink()
    (folder / "cut.jpg").write_bytes(data[: len(data) // 2])
    (folder / "zero.webp").write_bytes(b"")


class TestScanErrors:
    def test_missing_folder(self, tmp_path):
        with pytest.raises(DataError, match=r"data_dir '.*nope' does not exist"):
            scan_dataset(tmp_path / "nope")

    def test_file_instead_of_folder(self, tmp_path):
        (path,) = make_images(tmp_path, 1)
        with pytest.raises(DataError, match="is a file, not a folder"):
            scan_dataset(path)

    def test_empty_string(self):
        with pytest.raises(DataError, match="data_dir is empty"):
            scan_dataset("  ")

    def test_empty_folder(self, tmp_path):
        with pytest.raises(DataError, match=r"no images \(\.jpg, \.jpeg, \.png, \.webp\) in .*; found: nothing"):
            scan_dataset(tmp_path)

    def test_only_non_images_lists_what_was_found(self, tmp_path):
        (tmp_path / "a.txt").write_text("x")
        (tmp_path / "b.docx").write_bytes(b"PK")
        (tmp_path / "raw").mkdir()
        with pytest.raises(DataError, match=r"found: a\.txt, b\.docx, raw/ \(subfolders are not searched\)"):
            scan_dataset(tmp_path)

    def test_too_few_images(self, tmp_path):
        make_images(tmp_path, 2)
        with pytest.raises(DataError, match="2 usable image.*need at least 3"):
            scan_dataset(tmp_path, min_images=3)
        assert len(scan_dataset(tmp_path, min_images=2).images) == 2

    def test_bad_min_images(self, tmp_path):
        make_images(tmp_path, 1)
        with pytest.raises(ValueError, match="min_images=0"):
            scan_dataset(tmp_path, min_images=0)

    def test_corrupt_files_stop_the_scan_naming_each(self, tmp_path):
        make_images(tmp_path, 2)
        _corrupt_trio(tmp_path)
        with pytest.raises(DataError) as err:
            scan_dataset(tmp_path)
        msg = str(err.value)
        assert "3 unreadable" in msg and "skip_bad_images=True" in msg
        for name in ("noise.png", "cut.jpg", "zero.webp"):
            assert name in msg
        assert "\n" not in msg

    def test_skip_bad_skips_and_reports(self, tmp_path):
        make_images(tmp_path, 2)
        _corrupt_trio(tmp_path)
        report = scan_dataset(tmp_path, skip_bad=True)
        assert [it.path.name for it in report.images] == ["img_000.png", "img_001.png"]
        assert report.skipped == ["cut.jpg", "noise.png", "zero.webp"]
        assert len(report.problems) == 3 and report.problems[2].startswith("zero.webp: ")
        assert "empty" in report.problems[2]
        assert any("skipped 3 unreadable" in w for w in report.warnings)

    def test_skip_bad_with_nothing_left(self, tmp_path):
        _corrupt_trio(tmp_path)
        with pytest.raises(DataError, match=r"0 usable image.*\(3 unreadable skipped\); need at least 1"):
            scan_dataset(tmp_path, skip_bad=True)


class TestScanReport:
    def test_items_sizes_and_summary(self, tmp_path):
        make_images(tmp_path, 2, size=(96, 64))
        make_images(tmp_path / "x", 1)  # a subfolder
        report = scan_dataset(tmp_path)
        assert [(it.width, it.height, it.caption) for it in report.images] == [(96, 64, None)] * 2
        assert report.duplicates == [] and report.captions == 0
        assert any("subfolders are not searched" in w and "x/" in w for w in report.warnings)
        assert report.summary().endswith("2 image(s), 0 captioned, 1 warning(s)")

    def test_uppercase_extensions_and_ignored_files(self, tmp_path):
        pattern_image((32, 32), 1).save(tmp_path / "A.JPG", "JPEG")
        (tmp_path / "notes.docx").write_bytes(b"PK")
        (tmp_path / "._A.jpg").write_bytes(b"\x00\x05\x16\x07")  # macOS resource fork
        (tmp_path / ".DS_Store").write_bytes(b"\x00")
        report = scan_dataset(tmp_path)
        assert [it.path.name for it in report.images] == ["A.JPG"]
        assert "notes.docx ignored: not an image" in report.warnings
        assert any("hidden" in w and "._A.jpg" in w for w in report.warnings)
        assert not any("DS_Store" in w for w in report.warnings)

    def test_exif_rotation_reflected_in_size(self, tmp_path):
        exif = Image.Exif()
        exif[0x0112] = 6
        pattern_image((80, 40), 0).save(tmp_path / "r.jpg", "JPEG", exif=exif)
        (item,) = scan_dataset(tmp_path).images
        assert (item.width, item.height) == (40, 80)

    def test_duplicates_same_file_twice_and_across_formats(self, tmp_path):
        make_images(tmp_path, 3)
        img = pattern_image((64, 64), 0)
        img.save(tmp_path / "copy_of_0.png")
        img.save(tmp_path / "copy_of_0.jpg", "JPEG", quality=85)
        pattern_image((64, 64), 1).save(tmp_path / "one_again.webp", "WEBP", quality=90)
        report = scan_dataset(tmp_path)
        assert report.duplicates == [("copy_of_0.jpg", "copy_of_0.png", "img_000.png"),
                                     ("img_001.png", "one_again.webp")]
        assert any("2 group(s) of duplicate images" in w for w in report.warnings)

    def test_distinct_images_are_not_duplicates(self, tmp_path):
        make_images(tmp_path, 40, size=(32, 32), fmt="jpg")
        assert scan_dataset(tmp_path).duplicates == []

    def test_small_images_warned_against_resolution(self, tmp_path):
        make_images(tmp_path, 1, size=(64, 64))
        pattern_image((600, 520), 5).save(tmp_path / "big.png")
        report = scan_dataset(tmp_path, resolution=512)
        small = [w for w in report.warnings if "below the training resolution 512" in w]
        assert len(small) == 1 and "img_000.png (64x64)" in small[0] and "big.png" not in small[0]
        assert not any("resolution" in w for w in scan_dataset(tmp_path).warnings)


class TestCaptions:
    def test_sidecar_txt(self, tmp_path):
        make_images(tmp_path, 2, captions=True)
        report = scan_dataset(tmp_path)
        assert [it.caption for it in report.images] == ["a photo of pattern 0", "a photo of pattern 1"]
        assert report.captions == 2

    def test_metadata_jsonl_with_bad_lines_reported_by_number(self, tmp_path):
        make_images(tmp_path, 3)
        lines = [
            json.dumps({"file_name": "img_000.png", "text": "zero"}),
            '{"file_name": "img_001.png", "text": ',          # line 2: broken JSON
            json.dumps({"file_name": "img_009.png", "text": "x"}),  # line 3: no such image
            "",
            json.dumps({"text": "orphan"}),                        # line 5: no file_name
            json.dumps({"file_name": "img_000.png", "text": "again"}),  # line 6: repeat
            json.dumps({"file_name": "./img_002.png", "text": "two"}),
            json.dumps(["not", "an", "object"]),                   # line 8
        ]
        (tmp_path / "metadata.jsonl").write_text("\n".join(lines) + "\n")
        report = scan_dataset(tmp_path)
        assert [it.caption for it in report.images] == ["zero", None, "two"]
        joined = "\n".join(report.warnings)
        for n in (2, 3, 5, 6, 8):
            assert f"metadata.jsonl line {n}:" in joined
        assert "metadata.jsonl line 1:" not in joined and "line 7:" not in joined
        assert not any("metadata.jsonl ignored" in w for w in report.warnings)

    def test_sidecar_wins_over_metadata_and_empty_or_orphan_captions_warn(self, tmp_path):
        make_images(tmp_path, 3)
        (tmp_path / "img_000.txt").write_text("from sidecar")
        (tmp_path / "img_001.txt").write_text("   \n")
        (tmp_path / "readme.txt").write_text("about this folder")
        (tmp_path / "metadata.jsonl").write_text(
            json.dumps({"file_name": "img_000.png", "text": "from metadata"}) + "\n"
            + json.dumps({"file_name": "img_002.png", "text": "meta two"}) + "\n")
        report = scan_dataset(tmp_path)
        assert [it.caption for it in report.images] == ["from sidecar", None, "meta two"]
        assert any("both img_000.txt and metadata.jsonl" in w for w in report.warnings)
        assert any("img_001.txt is empty" in w for w in report.warnings)
        assert "readme.txt ignored: no image with the same name" in report.warnings


# --- prepare_image and buckets ---------------------------------------------------------------
class TestPrepareImage:
    def test_center_crop_shape_range_and_content(self):
        img = Image.new("RGB", (200, 100), (0, 0, 0))
        img.paste((255, 255, 255), (50, 0, 150, 100))  # white middle square
        t = prepare_image(img, 32)
        assert tuple(t.shape) == (3, 32, 32) and str(t.dtype) == "torch.float32"
        assert t.min() >= -1 and t.max() <= 1
        assert t.mean() > 0.95  # the crop is the white middle

    def test_random_crop_uses_rng_and_is_reproducible(self):
        img = pattern_image((160, 64), 4)
        a = prepare_image(img, 64, crop="random", rng=random.Random(1))
        b = prepare_image(img, 64, crop="random", rng=random.Random(1))
        assert (a == b).all()
        crops = {prepare_image(img, 64, crop="random", rng=random.Random(s)).sum().item() for s in range(8)}
        assert len(crops) > 1

    def test_flip(self):
        img = Image.new("RGB", (64, 64), (0, 0, 0))
        img.paste((255, 255, 255), (0, 0, 32, 64))
        outs = [prepare_image(img, 64, flip=True, rng=random.Random(s)) for s in range(10)]
        lefts = {round(o[0, 0, 0].item()) for o in outs}
        assert lefts == {-1, 1}  # both orientations occur

    def test_upscales_small_images(self):
        t = prepare_image(Image.new("L", (10, 20), 128), 64)
        assert tuple(t.shape) == (3, 64, 64) and abs(t.mean().item()) < 0.01

    def test_bucket_crop(self):
        t = prepare_image(pattern_image((300, 150), 0), 64, crop="bucket", bucket=(88, 40))
        assert tuple(t.shape) == (3, 40, 88)

    def test_bad_arguments(self):
        img = pattern_image((32, 32), 0)
        with pytest.raises(ValueError, match="crop='square'"):
            prepare_image(img, 32, crop="square")
        with pytest.raises(ValueError, match="needs bucket"):
            prepare_image(img, 32, crop="bucket")
        with pytest.raises(ValueError, match="only used with crop='bucket'"):
            prepare_image(img, 32, bucket=(32, 32))
        with pytest.raises(ValueError, match="rng"):
            prepare_image(img, 32, crop="random")
        with pytest.raises(ValueError, match="rng"):
            prepare_image(img, 32, flip=True)


class TestBuckets:
    @pytest.mark.parametrize("res,step", [(512, 64), (1024, 64), (64, 8)])
    def test_bucket_shapes(self, res, step):
        buckets = make_buckets(res)
        assert (res, res) in buckets and len(buckets) >= 5
        for w, h in buckets:
            assert w % step == 0 and h % step == 0
            assert 0.75 * res * res <= w * h <= res * res
            assert max(w / h, h / w) <= 2.0
        ratios = [w / h for w, h in buckets]
        assert ratios == sorted(ratios)

    def test_assign_2to1_1to1_1to2(self):
        buckets = make_buckets(512)
        wide, square, tall = assign_bucket(1024, 512, buckets), assign_bucket(300, 300, buckets), \
            assign_bucket(500, 1000, buckets)
        assert square == (512, 512)
        assert wide == max(buckets, key=lambda b: b[0] / b[1])
        assert tall == min(buckets, key=lambda b: b[0] / b[1])
        assert assign_bucket(640, 480, buckets)[0] > assign_bucket(640, 480, buckets)[1]

    def test_bad_bucket_arguments(self):
        with pytest.raises(ValueError, match="resolution=60"):
            make_buckets(60)
        with pytest.raises(ValueError, match="step=12"):
            make_buckets(512, step=12)
        with pytest.raises(ValueError, match="max_ratio"):
            make_buckets(512, max_ratio=0.5)
        with pytest.raises(ValueError, match="buckets is empty"):
            assign_bucket(10, 10, [])

    def test_bucket_batches(self):
        items = [(64, 64)] * 5 + [(80, 48)] * 3 + [(48, 80)]
        batches = bucket_batches(items, 2, random.Random(0))
        assert sorted(i for b in batches for i in b) == list(range(9))
        assert all(len({items[i] for i in b}) == 1 and 1 <= len(b) <= 2 for b in batches)
        assert batches == bucket_batches(items, 2, random.Random(0))
        assert all(len(b) == 2 for b in bucket_batches(items, 2, random.Random(0), drop_last=True))
        with pytest.raises(ValueError, match="batch_size=0"):
            bucket_batches(items, 0, random.Random(0))


# --- ImageDataset ----------------------------------------------------------------------------
class TestImageDataset:
    def test_items_prompts_and_collate(self, tmp_path):
        make_images(tmp_path, 3, size=(80, 64))
        (tmp_path / "img_001.txt").write_text("a special caption")
        ds = ImageDataset(scan_dataset(tmp_path), 32, instance_prompt="a photo of sks dog")
        assert len(ds) == 3
        ex = ds[1]
        assert tuple(ex["pixel_values"].shape) == (3, 32, 32)
        assert ex["prompt"] == "a special caption" and ex["path"].endswith("img_001.png")
        assert ds[-1]["prompt"] == "a photo of sks dog"
        with pytest.raises(IndexError):
            ds[3]
        batch = ImageDataset.collate([ds[0], ds[1]])
        assert tuple(batch["pixel_values"].shape) == (2, 3, 32, 32)
        assert batch["prompts"] == ["a photo of sks dog", "a special caption"]

    def test_deterministic_given_seed(self, tmp_path):
        make_images(tmp_path, 4, size=(96, 64))
        report = scan_dataset(tmp_path)

        def run(seed, epoch=0):
            ds = ImageDataset(report, 32, crop="random", flip=True, instance_prompt="p", seed=seed)
            ds.set_epoch(epoch)
            return [ds[i]["pixel_values"] for i in (3, 0, 2, 1)]  # order must not matter

        a, b = run(7), run(7)
        assert all((x == y).all() for x, y in zip(a, b))
        assert any((x != y).any() for x, y in zip(a, run(8)))
        assert any((x != y).any() for x, y in zip(a, run(7, epoch=1)))
        ds = ImageDataset(report, 32, crop="random", flip=True, instance_prompt="p", seed=7)
        assert (ds[3]["pixel_values"] == a[0]).all()

    def test_needs_a_prompt_for_uncaptioned_images(self, tmp_path):
        make_images(tmp_path, 2)
        with pytest.raises(ValueError, match="instance_prompt is empty and 2 image"):
            ImageDataset(scan_dataset(tmp_path), 32)
        ImageDataset(scan_dataset(tmp_path), 32, instance_prompt="x")

    def test_bucketed_dataset_through_a_dataloader(self, tmp_path):
        from torch.utils.data import DataLoader

        make_images(tmp_path / "d", 3, size=(128, 64), seed=0)
        for i in (10, 11):
            pattern_image((64, 64), i).save(tmp_path / "d" / f"square_{i}.png")
        ds = ImageDataset(scan_dataset(tmp_path / "d"), 64, crop="bucket", instance_prompt="p", seed=1)
        assert sorted(set(ds.item_buckets)) == [(64, 64), (80, 48)]  # 2:1 -> widest bucket within max_ratio
        batches = ds.batches(2)
        assert batches == ds.batches(2) and sorted(i for b in batches for i in b) == list(range(5))
        shapes = [tuple(b["pixel_values"].shape[2:]) for b in DataLoader(ds, batch_sampler=batches, collate_fn=collate)]
        assert sorted(set(shapes)) == [(48, 80), (64, 64)]
        with pytest.raises(ValueError, match="different sizes"):
            collate([ds[0], ds[4]])

    def test_collate_empty(self):
        with pytest.raises(ValueError, match="empty batch"):
            collate([])


def test_image_exts_constant():
    assert IMAGE_EXTS == {".jpg", ".jpeg", ".png", ".webp"}


def test_data_module_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, trainer.data; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0

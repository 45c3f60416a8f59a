"""Uploaded files into a session's dataset folder, safely; folders on the server, only where allowed.

Everything a browser sends is untrusted: names may carry paths or control characters, a `.png`
may be a text file, a zip may hold `../../evil.png`, absolute paths, symlinks or a bomb. So:

- a file's kind is decided by its content (Pillow for images, the zip directory for archives),
  and an image is kept only when it decodes completely: as training decodes it (a truncated file
  fails there), and for a JPEG also by libjpeg in strict mode, because Pillow decodes a JPEG with
  garbage in its compressed data without an error or a warning (its libjpeg glue drops
  libjpeg's "Corrupt JPEG data" warnings) into a picture smeared or grey from there down;
- a `.txt` caption is kept only beside its image (same name, in the same upload or, for a loose
  caption, an image already in the dataset that has none), as short UTF-8 text; an image
  byte-identical to one already in the dataset is not stored twice;
- every name is reduced to a safe base name (`safe_name`), de-duplicated against what is there;
- zip entries that leave the archive (absolute, `..`, symlinks, devices) are rejected, hidden and
  `__MACOSX` entries ignored, nested folders flattened (a caption keeps pairing with its image);
- the caps (`max_total_mb`, `max_files`) cover everything in `dest_dir` and are checked against the
  zip's declared sizes before extracting and against the bytes actually read while extracting;
- every byte is written to a temporary file inside `dest_dir` and renamed into place once checked,
  so nothing is written outside `dest_dir` and a rejected file leaves nothing behind.

Each upload starts a new dataset folder of its owner (`<owner>/datasets/<id>/`) unless the user adds
to the current one (`upload_to_dataset`); the owner's earlier uploads that no run trained on are
removed then, and by "Clear dataset" (`clear_datasets`). A dataset a run trained on is kept, so
Resume still finds its images.
"""
from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import stat
import tempfile
import threading
import time
import unicodedata
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import BinaryIO, Iterable

from trainer.data import CAPTION_EXT, IMAGE_EXTS, METADATA_FILE, image_problem, pixel_problem
from trainer.safe_json import loads as json_loads

from .paths import allowed_data_roots, app_folders

ZIP_EXT = ".zip"
UPLOAD_FILE_TYPES = ["image", CAPTION_EXT, ".jsonl", ZIP_EXT]  # what the upload box lets a browser pick
# what Pillow must find inside an image file; MPO is a JPEG with more pictures after the first
# (phones write it for Ultra HDR, depth and stereo photos), and training reads the first
IMAGE_FORMATS = {"JPEG", "MPO", "PNG", "WEBP"}
_OTHER_IMAGE_EXTS = {".heic", ".heif", ".avif", ".gif", ".bmp", ".tif", ".tiff", ".jxl"}
MAX_CAPTION_BYTES = 8 << 10                 # a caption is a sentence or two; CLIP reads 77 tokens
MAX_METADATA_BYTES = 50 << 20
MAX_UPLOAD_MB = 500                         # one dataset folder, all its uploads together
MAX_REASONS_SHOWN = 10                      # rejected files named with their reason in the summary
NAME_MAX_BYTES = 120                        # well under every filesystem's 255-byte limit
DATASETS_DIR = "datasets"                   # <owner>/datasets/<id>/: one folder per uploaded dataset
LEGACY_DATASET_DIR = "dataset"              # <owner>/dataset/: where every upload went before
THUMBS_DIR = "thumbs"                       # <owner>/thumbs/: the dataset report's thumbnails
_CHUNK = 1 << 20
_UNSAFE_CHARS = re.compile(r'[<>:"|?*]')    # forbidden on Windows; confusing everywhere
_MARKDOWN_CHARS = re.compile(r"([\\`*_{}\[\]()<>|~!&])")  # shown literally in the lab's Markdown
# libjpeg's warnings about the compressed pixel data ("Corrupt JPEG data: 74 extraneous bytes before
# marker 0xd9", "... premature end of data segment", "... bad Huffman code"), but not about an ICC
# profile block ("Corrupt JPEG data: bad ICC marker"): the pixels of such a file are fine
_JPEG_CORRUPT = re.compile(r"^Corrupt JPEG data(?!: bad ICC)")
_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}


@dataclass
class UploadReport:
    dest_dir: Path
    images: list[str] = field(default_factory=list)     # names written to dest_dir
    captions: list[str] = field(default_factory=list)   # .txt sidecars and metadata.jsonl written
    rejected: list[str] = field(default_factory=list)   # "name: why", one per file refused
    duplicates: list[str] = field(default_factory=list)  # "name: identical to kept", images not stored twice
    ignored: list[str] = field(default_factory=list)    # hidden and __MACOSX entries skipped
    bytes_written: int = 0

    @property
    def ok(self) -> bool:
        """Whether the folder now holds at least one image (from this or an earlier upload)."""
        return any(p.suffix.lower() in IMAGE_EXTS for p in self.dest_dir.iterdir() if p.is_file())

    def summary(self) -> str:
        """Markdown: what was added, then each file not added with its reason (the first ten)."""
        not_added = [f"skipped {d}" for d in self.duplicates] + [f"refused {r}" for r in self.rejected]
        parts = [f"{len(self.images)} image(s) added", f"{len(self.captions)} caption file(s)"]
        if not_added:
            parts.append(f"{len(not_added)} not added")
        if self.ignored:
            parts.append(f"{len(self.ignored)} hidden/system file(s) ignored")
        lines = [", ".join(parts) + (":" if not_added else ".")]
        lines += [f"- {markdown_text(r)}" for r in not_added[:MAX_REASONS_SHOWN]]
        if len(not_added) > MAX_REASONS_SHOWN:
            lines.append(f"- … and {len(not_added) - MAX_REASONS_SHOWN} more")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {**asdict(self), "dest_dir": str(self.dest_dir), "summary": self.summary()}


# --- names ------------------------------------------------------------------------------------------
def safe_name(name: str, *, max_bytes: int = NAME_MAX_BYTES) -> str:
    """A plain file name from anything a browser or a zip calls a file.

    Keeps the base name only (both / and \\ count as separators), drops control and format
    characters (a right-to-left override can disguise `gpj.exe` as `exe.jpg`), replaces characters
    Windows forbids, strips leading/trailing dots and spaces (no hidden files, no `..`), lowercases
    the extension and shortens the stem to `max_bytes` of UTF-8. Never returns an empty name.
    """
    if not isinstance(name, str):
        raise ValueError(f"file name {name!r} is not text")
    base = re.split(r"[/\\]", unicodedata.normalize("NFC", name))[-1]
    base = re.sub(r"\s+", " ", base)  # tabs and newlines are spaces; other controls go next
    base = "".join(ch for ch in base if unicodedata.category(ch) not in ("Cc", "Cf", "Cs"))
    base = re.sub(" +", " ", _UNSAFE_CHARS.sub("_", base)).strip(" .")
    stem, ext = _split_ext(base)
    if stem.upper() in _WINDOWS_RESERVED:
        stem = "_" + stem
    stem = _truncate_utf8(stem, max(1, max_bytes - len(ext.encode())))
    stem = stem.strip(" .") or "file"
    return stem + ext


def _split_ext(name: str) -> tuple[str, str]:
    stem, dot, ext = name.rpartition(".")
    if dot and stem and 0 < len(ext) <= 10 and ext.isalnum():
        return stem, "." + ext.lower()
    return name, ""


def _truncate_utf8(text: str, max_bytes: int) -> str:
    data = text.encode("utf-8")
    return text if len(data) <= max_bytes else data[:max_bytes].decode("utf-8", errors="ignore")


def markdown_text(text: str) -> str:
    """`text` (a file name from a browser, a reason quoting one) for Markdown, shown as written."""
    return _MARKDOWN_CHARS.sub(r"\\\1", text)


def _shown(name: str) -> str:
    """A name as it may appear in a message: control characters made visible, length bounded."""
    text = "".join(ch if unicodedata.category(ch) not in ("Cc", "Cf", "Cs") else "?" for ch in name)
    return text if len(text) <= 120 else text[:117] + "..."


def clean_session_id(session_id: str) -> str:
    """A folder name for a browser session: [A-Za-z0-9_-] only, at most 64 characters.

    When cleaning changed anything, a hash of the original is appended, so two different ids can
    never share a folder (and so each other's uploads).
    """
    if not isinstance(session_id, str) or not session_id.strip():
        raise ValueError(f"session_id={session_id!r}; must be non-empty text")
    kept = re.sub(r"[^A-Za-z0-9_-]", "", session_id)[:64]
    if kept != session_id:
        kept = f"{kept[:47]}-{hashlib.sha256(session_id.encode()).hexdigest()[:16]}".lstrip("-")
    return kept


def new_session_dir(root: str | Path, session_id: str) -> Path:
    """`<root>/<clean session id>/`, created: each browser session's own uploads and caches."""
    path = Path(root) / clean_session_id(session_id)
    path.mkdir(parents=True, exist_ok=True)
    return path


class _Namer:
    """Chooses free names in `dest`, keeping an image and its caption under one stem.

    A stem is claimed per group (a zip folder, or the batch of loose files): `a/img.png` and
    `a/img.txt` become `img.png` + `img.txt`, and `b/img.png` + `b/img.txt` become `img_1.png` +
    `img_1.txt`, never a pairing across folders. A new group never reuses a stem already in the
    folder, so a lone caption cannot attach itself to someone else's image.
    """

    def __init__(self, dest: Path):
        existing = [p.name for p in dest.iterdir()]
        self.taken = {n.lower() for n in existing}
        self.taken_stems = {_split_ext(n)[0].lower() for n in existing}
        self.groups: dict[tuple[str, str], str] = {}

    def claim(self, group: str, name: str) -> str:
        if name == METADATA_FILE:
            return name  # fixed name; the caller allows only one
        stem, ext = _split_ext(name)
        key = (group, stem.lower())
        chosen = self.groups.get(key)
        if chosen is None or (chosen + ext).lower() in self.taken:
            first = chosen is None
            chosen = stem
            n = 0
            while chosen.lower() in self.taken_stems:
                n += 1
                chosen = f"{stem}_{n}"
            if first:  # a second img.png in the group is renamed; img.txt stays with the first
                self.groups[key] = chosen
            self.taken_stems.add(chosen.lower())
        final = chosen + ext
        self.taken.add(final.lower())
        return final


# --- content checks ----------------------------------------------------------------------------------
def _kind(name: str) -> str | None:
    """image | caption | metadata | zip | None, from the (safe) name; content is checked later."""
    ext = _split_ext(name)[1]
    if ext in IMAGE_EXTS:
        return "image"
    if name == METADATA_FILE:
        return "metadata"
    if ext == CAPTION_EXT:
        return "caption"
    if ext == ZIP_EXT:
        return "zip"
    return None


def _check_content(path: Path, kind: str) -> str | None:
    """Why the file at `path` is not what its name says, or None when it is."""
    if kind == "image":
        return _image_problem(path)
    size = path.stat().st_size
    if kind == "caption" and size > MAX_CAPTION_BYTES:
        return f"{size} bytes; a caption may hold at most {MAX_CAPTION_BYTES}"
    if size > MAX_METADATA_BYTES:
        return f"{size} bytes is too large for a {METADATA_FILE} file"
    data = path.read_bytes()
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "UTF-16 text; save it as UTF-8"
    if b"\x00" in data:
        return "not a text file"
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return "not UTF-8 text"
    return None


def _image_problem(path: Path) -> str | None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:  # reads the header only
            fmt = im.format
            if fmt not in IMAGE_FORMATS:
                return f"a {fmt} image; only JPEG, PNG and WebP are accepted"
            too_big = pixel_problem(im.size)
            if too_big:
                return too_big
            im.verify()  # structure and checksums (a PNG's CRCs), without decoding
    except UnidentifiedImageError:
        return "not a JPEG, PNG or WebP image (the content does not match the extension)"
    except Image.DecompressionBombError:
        return "too many pixels to decode safely"
    except Exception as e:  # Pillow raises OSError, SyntaxError, struct.error, ... for broken files
        return f"corrupt or truncated ({type(e).__name__}: {e})"
    # decoded as training decodes it (a JPEG at 1/8 scale: every byte of it is still read)
    why = image_problem(path, draft_size=(64, 64))
    if why is None and fmt in ("JPEG", "MPO"):
        why = _jpeg_problem(path)
    return why


def _jpeg_problem(path: Path) -> str | None:
    """libjpeg's own word on a JPEG's compressed pixel data, which Pillow does not pass on.

    Pillow's decoder (src/libImaging/JpegDecode.c) gives libjpeg an output_message that does
    nothing and never looks at its warning count, so a JPEG whose data was overwritten or cut and
    ended with a marker decodes without an error or a Python warning. simplejpeg's strict mode
    turns the same libjpeg-turbo warnings into a ValueError.
    """
    import simplejpeg

    try:  # the smallest scale: libjpeg still reads every compressed bit, but makes 1/64 of the pixels
        simplejpeg.decode_jpeg(path.read_bytes(), min_factor=8, strict=True)
    except ValueError as e:
        if _JPEG_CORRUPT.match(str(e)):
            return f"corrupt JPEG data ({e}): it would train on a smeared or grey picture"
        return None  # anything else libjpeg minds (an old JFIF version, ...) Pillow has just decoded
    return None


class _TooBig(Exception):
    pass


def _copy_capped(src: BinaryIO, dst: BinaryIO, limit: int) -> tuple[int, str]:
    """Copy at most `limit` bytes; (bytes copied, their SHA-256). Raise _TooBig as soon as the
    source holds more."""
    n, digest = 0, hashlib.sha256()
    while True:
        chunk = src.read(min(_CHUNK, limit - n + 1))
        if not chunk:
            return n, digest.hexdigest()
        n += len(chunk)
        if n > limit:
            raise _TooBig
        dst.write(chunk)
        digest.update(chunk)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --- ingesting -----------------------------------------------------------------------------------------
class _Ingest:
    """One call of ingest_uploads: the caps, the namer, what is already there and the report.

    Images are placed before captions (the caller orders them), so a caption knows whether its
    image was kept, refused or was a copy of one already there.
    """

    def __init__(self, dest: Path, max_bytes: int, max_files: int):
        self.dest = dest
        self.namer = _Namer(dest)
        existing = [p for p in dest.iterdir() if p.is_file()]
        self.bytes_left = max_bytes - sum(p.stat().st_size for p in existing)
        self.files_left = max_files - len(existing)
        self.has_metadata = (dest / METADATA_FILE).exists()
        self.max_mb = max_bytes / (1 << 20)
        self.max_files = max_files
        self.report = UploadReport(dest_dir=dest)
        images = sorted(p.name for p in existing if _kind(p.name) == "image")
        self.digests = {_sha256(dest / n): n for n in reversed(images)}  # content -> the image that has it
        self.existing = {_split_ext(n)[0].lower(): n for n in images}  # lower-case stem -> image already here
        self.captioned = {_split_ext(p.name)[0].lower() for p in existing if _kind(p.name) == "caption"}
        self.kept: dict[tuple[str, str], str] = {}       # (group, lower-case stem) -> image kept by this upload
        self.same_as: dict[tuple[str, str], str] = {}    # ... -> the image already here it is a copy of
        self.not_kept: dict[tuple[str, str], str] = {}   # ... -> why its caption goes too
        self.zips = 0                                    # archives opened so far

    def reject(self, where: str, why: str) -> None:
        self.report.rejected.append(f"{_shown(where)}: {why}")

    def place(self, src: BinaryIO, name: str, kind: str, group: str, where: str, size_hint: int,
              label: str) -> None:
        """Copy `src` (at most `size_hint` bytes) into dest under a free name, if its content checks.

        `label` is the file's own name as sent (a caption's reason names its image by it).
        """
        key = (group, _split_ext(name)[0].lower())
        why = self._place(src, name, kind, group, where, size_hint, key, label)
        if why:
            self.reject(where, why)
            if kind == "image":
                self.not_kept.setdefault(key, f"its image {_shown(label)} was not added")

    def _place(self, src: BinaryIO, name: str, kind: str, group: str, where: str, size_hint: int,
               key: tuple[str, str], label: str) -> str | None:
        """Why the file is refused, or None (placed, or skipped as a copy of an image already here)."""
        if self.files_left <= 0:
            return f"too many files (the limit is {self.max_files})"
        if size_hint > self.bytes_left:
            return f"over the upload limit of {self.max_mb:g} MB in total"
        if kind == "metadata" and self.has_metadata:
            return f"the dataset already has a {METADATA_FILE}; only one is used"
        fixed = None
        if kind == "caption":
            if size_hint > MAX_CAPTION_BYTES:
                return f"{size_hint} bytes; a caption may hold at most {MAX_CAPTION_BYTES}"
            why, fixed = self._caption_name(key, name)
            if why:
                return why
        fd, tmp_name = tempfile.mkstemp(prefix=".upload-", suffix=".part", dir=self.dest)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                n, digest = _copy_capped(src, out, size_hint)
            why = _check_content(tmp, kind)
            if why:
                return why
            if kind == "image" and digest in self.digests:
                same = self.digests[digest]
                self.report.duplicates.append(f"{_shown(where)}: identical to {same}")
                self.same_as.setdefault(key, same)
                return None
            final = self._link_free(tmp, group, name) if fixed is None else self._link_fixed(tmp, fixed)
        except _TooBig:
            return "holds more data than its size says (zip bomb?)"
        except FileExistsError:
            return f"{_split_ext(fixed or name)[0]} already has a caption"
        except (OSError, zipfile.BadZipFile, EOFError, RuntimeError) as e:
            return f"cannot be read ({type(e).__name__}: {e})"
        finally:
            tmp.unlink(missing_ok=True)
        self.bytes_left -= n
        self.files_left -= 1
        self.report.bytes_written += n
        if kind == "image":
            self.report.images.append(final.name)
            self.digests[digest] = final.name
            self.kept.setdefault(key, final.name)
        else:
            self.has_metadata = self.has_metadata or kind == "metadata"
            self.report.captions.append(final.name)
        return None

    def _caption_name(self, key: tuple[str, str], name: str) -> tuple[str | None, str | None]:
        """(why this caption is not kept, or None; the name it must take, or None for the namer's).

        It goes with the image of its name in its group of this upload; when that image was a copy
        of one already here, with that one; a loose caption, failing both, with an image of its
        name already in the dataset. Never with an image that has a caption.
        """
        group, stem = key
        if key in self.kept:
            return self._caption_for(self.kept[key], namer=True)
        if key in self.same_as:
            return self._caption_for(self.same_as[key], copy=True)
        if key in self.not_kept:
            return self.not_kept[key], None
        if group == "" and stem in self.existing:
            return self._caption_for(self.existing[stem])
        return f"no image named {_split_ext(name)[0]} (.jpg, .png or .webp) to go with it", None

    def _caption_for(self, image: str, *, namer: bool = False, copy: bool = False) -> tuple[str | None, str | None]:
        stem = _split_ext(image)[0]
        if stem.lower() in self.captioned:
            return (f"its image is identical to {image}, which already has a caption" if copy
                    else f"{image} already has a caption"), None
        self.captioned.add(stem.lower())
        return None, (None if namer else stem + CAPTION_EXT)

    def _link_fixed(self, tmp: Path, name: str) -> Path:
        final = self.dest / name
        os.link(tmp, final)  # FileExistsError when that image got a caption meanwhile
        self.namer.taken.add(name.lower())
        return final

    def _link_free(self, tmp: Path, group: str, name: str) -> Path:
        """Give `tmp` its final name; a hard link never replaces a file another upload just wrote."""
        for _ in range(1000):
            final = self.dest / self.namer.claim(group, name)
            try:
                os.link(tmp, final)
                return final
            except FileExistsError:
                if name == METADATA_FILE:
                    break
        raise OSError(f"no free name for {name}")

    def loose_file(self, path: Path) -> None:
        where = path.name
        try:
            st = os.lstat(path)
        except OSError as e:
            return self.reject(where, f"cannot be read ({e.strerror or e})")
        if not stat.S_ISREG(st.st_mode):
            return self.reject(where, "not a regular file")
        if _hidden(where):
            self.report.ignored.append(_shown(where))
            return
        name = safe_name(where)
        kind = _kind(name)
        if kind is None:
            ext = _split_ext(name)[1]
            return self.reject(where, f"a {ext} image; convert it to JPEG, PNG or WebP" if ext in _OTHER_IMAGE_EXTS
                               else "not an image, caption or zip")
        if kind == "zip":
            return self.zip_file(path, where)
        with open(path, "rb") as src:
            self.place(src, name, kind, "", where, st.st_size, where)

    def zip_file(self, path: Path, where: str) -> None:
        if not zipfile.is_zipfile(path):
            return self.reject(where, "not a valid zip archive")
        try:
            zf = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError, ValueError) as e:
            return self.reject(where, f"not a valid zip archive ({e})")
        with zf:
            planned = self._plan_zip(zf, where)
            if planned is None:
                return
            if not planned:
                return self.reject(where, "the archive holds no images")
            for info, name, kind, group in sorted(planned, key=lambda entry: entry[2] == "caption"):
                entry = f"{where}: {info.filename}"
                if info.flag_bits & 0x1:
                    self.reject(entry, "encrypted entries are not supported")
                    continue
                try:
                    with zf.open(info) as src:
                        self.place(src, name, kind, group, entry, info.file_size, info.filename)
                except (zipfile.BadZipFile, NotImplementedError, OSError, EOFError) as e:
                    self.reject(entry, f"cannot be unpacked ({type(e).__name__}: {e})")

    def _plan_zip(self, zf: zipfile.ZipFile, where: str):
        """The entries worth extracting, or None when the whole archive is refused (over a cap)."""
        self.zips += 1
        planned = []
        for info in zf.infolist():
            raw = info.filename
            entry = f"{where}: {raw}"
            parts = [p for p in re.split(r"[/\\]", raw) if p not in ("", ".")]
            mode = info.external_attr >> 16
            if raw.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", raw):
                self.reject(entry, "absolute path in the archive")
            elif ".." in parts:
                self.reject(entry, "path leaves the archive ('..')")
            elif stat.S_ISLNK(mode):
                self.reject(entry, "symbolic link")
            elif info.is_dir() or stat.S_ISDIR(mode):
                continue
            elif stat.S_IFMT(mode) and not stat.S_ISREG(mode):  # many zippers store permission bits only
                self.reject(entry, "not a regular file")
            elif not parts:
                self.reject(entry, "empty name")
            elif parts[0] == "__MACOSX" or any(_hidden(p) for p in parts):
                self.report.ignored.append(_shown(entry))
            else:
                name = safe_name(parts[-1])
                kind = _kind(name)
                if kind is None or kind == "zip":
                    self.reject(entry, "not an image or caption" + (" (archives inside archives are not unpacked)"
                                                                    if kind == "zip" else ""))
                else:
                    # the pairing group: this archive's folder (a caption never pairs across zips, nor
                    # across two uploads of one zip)
                    planned.append((info, name, kind, f"{self.zips}\0{where}\0" + "/".join(parts[:-1])))
        declared = sum(info.file_size for info, *_ in planned)
        if len(planned) > self.files_left:
            self.reject(where, f"{len(planned)} files inside, more than the {max(self.files_left, 0)} still allowed "
                               f"(the limit is {self.max_files})")
            return None
        if declared > self.bytes_left:
            self.reject(where, f"unpacks to {declared / (1 << 20):.1f} MB, over the upload limit of "
                               f"{self.max_mb:g} MB in total")
            return None
        return planned


def _hidden(name: str) -> bool:
    return name.startswith(".") or name in ("Thumbs.db", "desktop.ini")


def ingest_uploads(paths: Iterable[str | Path], dest_dir: str | Path, *, max_total_mb: float = MAX_UPLOAD_MB,
                   max_files: int = 2000) -> UploadReport:
    """Copy uploaded images, caption files and zips of them into `dest_dir` (created); report per file.

    Accepts .jpg/.jpeg/.png/.webp whose content is a JPEG, PNG or WebP image that decodes
    completely, .txt captions beside their image, metadata.jsonl and .zip archives of those.
    Everything else is rejected with a reason ("notes.exe: not an image, caption or zip"); an image
    identical to one already in `dest_dir` is listed in `duplicates` and not stored. The caps cover
    everything in `dest_dir`, earlier uploads included. Nothing is ever written outside `dest_dir`.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    if isinstance(max_total_mb, bool) or not isinstance(max_total_mb, (int, float)) or not max_total_mb > 0:
        raise ValueError(f"max_total_mb={max_total_mb!r}; must be a number > 0")
    if isinstance(max_files, bool) or not isinstance(max_files, int) or max_files < 1:
        raise ValueError(f"max_files={max_files!r}; must be an integer >= 1")
    dest = Path(dest_dir)
    if dest.is_symlink():
        raise ValueError(f"dest_dir '{dest}' is a symbolic link; give a real folder")
    dest.mkdir(parents=True, exist_ok=True)
    dest = dest.resolve()
    job = _Ingest(dest, int(max_total_mb * (1 << 20)), max_files)
    paths = [Path(p) for p in paths if p is not None and str(p).strip()]
    for p in sorted(paths, key=lambda p: _kind(safe_name(p.name)) == "caption"):  # images before captions
        job.loose_file(p)
    return job.report


# --- a folder on the server --------------------------------------------------------------------------
def dataset_from_folder(path: str | Path, allowed_roots: Iterable[str | Path] | None = None, *,
                        own: str | Path | None = None) -> Path:
    """The resolved folder `path`, if it lies inside one of `allowed_roots` (and not in the app's
    own folders) or inside `own` (the user's own upload folder); else ValueError.

    `allowed_roots` defaults to $FTA_DATA_ROOTS (else the working directory). A relative path is
    taken inside the first root. Symlinks are resolved before the check, so a link inside a root
    cannot point outside it, and an image link in the folder that points outside is refused too.
    Whether a path outside the roots exists is never revealed.
    """
    real, roots = allowed_location(path, allowed_roots, own=own, what="data folder")
    text = str(path).strip()
    if not real.exists():
        raise ValueError(f"data folder '{text}' does not exist")
    if not real.is_dir():
        raise ValueError(f"data folder '{text}' is a file, not a folder")
    for child in real.iterdir():
        if child.is_symlink():
            try:
                allowed_location(child.resolve(), allowed_roots, own=own)
            except ValueError:
                raise ValueError(f"data folder '{text}': {child.name} links outside the allowed folders") from None
    return real


def allowed_location(path: str | Path, allowed_roots: Iterable[str | Path] | None = None, *,
                     own: str | Path | None = None, what: str = "folder") -> tuple[Path, list[Path]]:
    """(the resolved `path`, the roots it may use) when `path` lies inside `own` or inside an
    allowed root outside the app's own folders (lab.paths.app_folders); else a one-line ValueError.
    The path need not exist (a class-image folder is made by the run)."""
    text = str(path).strip() if path is not None else ""
    if not text:
        raise ValueError(f"{what} is empty; give a folder on the server that holds the images")
    roots = [Path(r).expanduser().resolve() for r in (allowed_data_roots() if allowed_roots is None else allowed_roots)]
    own_dir = Path(own).expanduser().resolve() if own is not None else None
    if not roots and own_dir is None:
        raise ValueError("no allowed data folders are configured (FTA_DATA_ROOTS)")
    p = Path(text).expanduser()
    real = (p if p.is_absolute() else (roots[0] if roots else own_dir) / p).resolve()
    if own_dir is not None and _inside(real, own_dir):
        return real, [own_dir]
    app = [Path(a).expanduser().resolve() for a in app_folders()]
    if any(_inside(real, a) for a in app):
        raise ValueError(f"{what} '{text}' is inside the app's own folders (runs, uploads, caches); "
                         "upload the images or name a folder of your own")
    if not any(_inside(real, r) for r in roots):
        shown = ", ".join(str(r) for r in roots) or "none"
        raise ValueError(f"{what} '{text}' is outside the folders this server allows ({shown}); "
                         "ask the admin to add it to FTA_DATA_ROOTS")
    return real, roots


def _inside(path: Path, root: Path) -> bool:
    return path == root or path.is_relative_to(root)


def clear_folder(folder: str | Path) -> None:
    """Empty a session's upload folder (a fresh dataset), leaving the folder itself."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    for child in folder.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


# --- the owner's upload datasets ----------------------------------------------------------------------
_OWNER_LOCKS: dict[Path, threading.Lock] = {}
_OWNER_LOCKS_GUARD = threading.Lock()


def _owner_lock(own: str | Path) -> threading.Lock:
    """One lock per owner folder: two uploads of one user (two tabs) never remove each other's folder."""
    with _OWNER_LOCKS_GUARD:
        return _OWNER_LOCKS.setdefault(Path(own).resolve(), threading.Lock())


def new_dataset_dir(own: str | Path) -> Path:
    """A new, empty dataset folder in the owner's folder `own`: `<own>/datasets/<UTC time>-<random>`."""
    root = Path(own) / DATASETS_DIR
    root.mkdir(parents=True, exist_ok=True)
    path = root / f"{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{secrets.token_hex(4)}"
    path.mkdir()
    return path


def owned_dataset(folder: str | Path | None, own: str | Path) -> Path | None:
    """`folder`, resolved, when it is one of the owner's upload datasets; else None (a folder on the
    server, someone else's upload, a link, nothing)."""
    if not folder or not str(folder).strip() or Path(folder).is_symlink():
        return None
    path = Path(folder).resolve()
    return path if path.is_dir() and path in owner_datasets(own) else None


def owner_datasets(own: str | Path) -> list[Path]:
    """The owner's upload datasets, resolved: `<own>/datasets/*` and the older `<own>/dataset`."""
    own = Path(own).resolve()
    root = own / DATASETS_DIR
    found = sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink()) if root.is_dir() else []
    legacy = own / LEGACY_DATASET_DIR
    return found + ([legacy] if legacy.is_dir() and not legacy.is_symlink() else [])


def runs_using(folder: str | Path, runs_dir: str | Path) -> list[str]:
    """The ids of the runs in `runs_dir` whose config.json trains on `folder` (a stopped one resumes
    from it, and a finished one's settings name it)."""
    folder = Path(folder).resolve()
    runs_dir = Path(runs_dir)
    found = []
    for config in sorted(runs_dir.glob("*/config.json")) if runs_dir.is_dir() else []:
        try:
            data_dir = json_loads(config.read_bytes()).get("data_dir")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(data_dir, str) and data_dir.strip() and _inside(Path(data_dir).expanduser().resolve(), folder):
            found.append(config.parent.name)
    return found


def remove_datasets(own: str | Path, runs_dir: str | Path, *, keep: str | Path | None = None
                    ) -> tuple[int, list[str]]:
    """Delete the owner's upload datasets that no run trained on, all but `keep`.

    Returns (how many were deleted, a sentence for each one kept: runs trained on it, or it
    could not be deleted).
    """
    keep = Path(keep).resolve() if keep else None
    deleted, kept = 0, []
    for folder in owner_datasets(own):
        if folder == keep:
            continue
        runs = runs_using(folder, runs_dir)
        if runs:
            shown = ", ".join(runs[:3]) + (f" and {len(runs) - 3} more" if len(runs) > 3 else "")
            kept.append(markdown_text(f"kept {folder.name}, which run {shown} trained on (Resume reads it)"))
            continue
        try:
            shutil.rmtree(folder)
        except OSError as e:
            kept.append(markdown_text(f"could not delete {folder.name} ({e.strerror or e})"))
            continue
        deleted += 1
    return deleted, kept


def upload_to_dataset(paths: Iterable[str | Path], own: str | Path, *, current: str | Path | None = None,
                      add: bool = False, runs_dir: str | Path) -> tuple[Path | None, str]:
    """Take one upload of the owner whose folder is `own`; (the dataset the lab uses now, Markdown).

    With `add`, the files go into `current` when it is one of the owner's upload datasets. Otherwise
    they start a new dataset, which replaces the owner's earlier uploads that no run trained on.
    A bad upload loses nothing: when no image of it is kept, the new folder goes and the lab stays
    with `current` (None when there is none). The Markdown says what happened to the dataset, then
    what was added and each file that was not, with its reason.
    """
    with _owner_lock(own):
        return _upload_to_dataset(paths, own, current, add, runs_dir)


def _upload_to_dataset(paths, own, current, add, runs_dir) -> tuple[Path | None, str]:
    target = owned_dataset(current, own) if add else None
    if target is not None:
        report = ingest_uploads(paths, target)
        return target, f"Added to the current dataset.\n\n{report.summary()}"
    fresh = new_dataset_dir(own)
    report = ingest_uploads(paths, fresh)
    if not report.images:
        shutil.rmtree(fresh)
        still = Path(current) if current and str(current).strip() else None
        head = "Nothing was added; the current dataset is unchanged." if still else "Nothing was added."
        return still, f"{head}\n\n{report.summary()}"
    deleted, kept = remove_datasets(own, runs_dir, keep=fresh)
    head = "New dataset."
    if add and current and str(current).strip():
        head += " (The current dataset is not one you uploaded, so nothing is written into it.)"
    if deleted:
        head += (" Your earlier upload was removed; to add files to a dataset instead, tick "
                 "“Add to the current dataset” before uploading.")
    head += "".join(f" Also {k}." for k in kept)
    return fresh, f"{head}\n\n{report.summary()}"


def clear_datasets(own: str | Path, runs_dir: str | Path) -> str:
    """"Clear dataset": delete the owner's upload datasets that no run trained on and their
    thumbnails; one line of Markdown saying so."""
    with _owner_lock(own):
        deleted, kept = remove_datasets(own, runs_dir)
        clear_folder(Path(own) / THUMBS_DIR)
    said = f"Dataset cleared: {deleted} uploaded dataset(s) deleted" if deleted else "Dataset cleared"
    return said + "".join(f"; {k}" for k in kept) + ". Upload images to start a new one."

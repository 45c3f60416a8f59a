"""Uploaded files into a session's dataset folder, safely; folders on the server, only where allowed.

Everything a browser sends is untrusted: names may carry paths or control characters, a `.png`
may be a text file, a zip may hold `../../evil.png`, absolute paths, symlinks or a bomb. So:

- a file's kind is decided by its content (Pillow for images, the zip directory for archives);
- every name is reduced to a safe base name (`safe_name`), de-duplicated against what is there;
- zip entries that leave the archive (absolute, `..`, symlinks, devices) are rejected, hidden and
  `__MACOSX` entries ignored, nested folders flattened (a caption keeps pairing with its image);
- the caps (`max_total_mb`, `max_files`) cover everything in `dest_dir` and are checked against the
  zip's declared sizes before extracting and against the bytes actually read while extracting;
- every byte is written to a temporary file inside `dest_dir` and renamed into place once checked,
  so nothing is written outside `dest_dir` and a rejected file leaves nothing behind.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import tempfile
import unicodedata
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import BinaryIO, Iterable

from trainer.data import IMAGE_EXTS, pixel_problem

from .paths import allowed_data_roots, app_folders

CAPTION_EXT = ".txt"
METADATA_FILE = "metadata.jsonl"
ZIP_EXT = ".zip"
IMAGE_FORMATS = {"JPEG", "PNG", "WEBP"}     # what Pillow must find inside an image file
MAX_CAPTION_BYTES = 1 << 20                 # a caption is a sentence; 1 MB is already absurd
MAX_METADATA_BYTES = 50 << 20
MAX_UPLOAD_MB = 500                         # one user's dataset folder, all uploads together
MAX_REASONS_SHOWN = 10                      # rejected files named with their reason in the summary
NAME_MAX_BYTES = 120                        # well under every filesystem's 255-byte limit
_CHUNK = 1 << 20
_UNSAFE_CHARS = re.compile(r'[<>:"|?*]')    # forbidden on Windows; confusing everywhere
_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}


@dataclass
class UploadReport:
    dest_dir: Path
    images: list[str] = field(default_factory=list)     # names written to dest_dir
    captions: list[str] = field(default_factory=list)   # .txt sidecars and metadata.jsonl written
    rejected: list[str] = field(default_factory=list)   # "name: why", one per file refused
    ignored: list[str] = field(default_factory=list)    # hidden and __MACOSX entries skipped
    bytes_written: int = 0

    @property
    def ok(self) -> bool:
        """Whether the folder now holds at least one image (from this or an earlier upload)."""
        return any(p.suffix.lower() in IMAGE_EXTS for p in self.dest_dir.iterdir() if p.is_file())

    def summary(self) -> str:
        parts = [f"{len(self.images)} image(s) added", f"{len(self.captions)} caption file(s)"]
        if self.rejected:
            parts.append(f"{len(self.rejected)} rejected")
        if self.ignored:
            parts.append(f"{len(self.ignored)} hidden/system file(s) ignored")
        why = [f"\n- refused {r}" for r in self.rejected[:MAX_REASONS_SHOWN]]
        if len(self.rejected) > MAX_REASONS_SHOWN:
            why.append(f"\n- ... and {len(self.rejected) - MAX_REASONS_SHOWN} more")
        return ", ".join(parts) + "".join(why)

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
            chosen = stem
            n = 0
            while chosen.lower() in self.taken_stems:
                n += 1
                chosen = f"{stem}_{n}"
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
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as im:  # reads the header only
                fmt = im.format
                if fmt not in IMAGE_FORMATS:
                    return f"a {fmt} image; only JPEG, PNG and WebP are accepted"
                too_big = pixel_problem(im.size)
                if too_big:
                    return too_big
                im.verify()  # structure and checksums, without decoding every pixel
        except UnidentifiedImageError:
            return "not a JPEG, PNG or WebP image (the content does not match the extension)"
        except Image.DecompressionBombError:
            return "too many pixels to decode safely"
        except Exception as e:  # Pillow raises OSError, SyntaxError, struct.error, ... for broken files
            return f"a damaged image ({type(e).__name__})"
        return None
    limit = MAX_CAPTION_BYTES if kind == "caption" else MAX_METADATA_BYTES
    size = path.stat().st_size
    if size > limit:
        return f"{size} bytes is too large for a {'caption' if kind == 'caption' else METADATA_FILE} file"
    data = path.read_bytes()
    if b"\x00" in data:
        return "not a text file"
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return "not UTF-8 text"
    return None


class _TooBig(Exception):
    pass


def _copy_capped(src: BinaryIO, dst: BinaryIO, limit: int) -> int:
    """Copy at most `limit` bytes; raise _TooBig as soon as the source holds more."""
    n = 0
    while True:
        chunk = src.read(min(_CHUNK, limit - n + 1))
        if not chunk:
            return n
        n += len(chunk)
        if n > limit:
            raise _TooBig
        dst.write(chunk)


# --- ingesting -----------------------------------------------------------------------------------------
class _Ingest:
    """One call of ingest_uploads: the caps, the namer and the report."""

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

    def reject(self, where: str, why: str) -> None:
        self.report.rejected.append(f"{_shown(where)}: {why}")

    def place(self, src: BinaryIO, name: str, kind: str, group: str, where: str, size_hint: int) -> None:
        """Copy `src` (at most `size_hint` bytes) into dest under a free name, if its content checks."""
        if self.files_left <= 0:
            return self.reject(where, f"too many files (the limit is {self.max_files})")
        if size_hint > self.bytes_left:
            return self.reject(where, f"over the upload limit of {self.max_mb:g} MB in total")
        if kind == "metadata" and self.has_metadata:
            return self.reject(where, f"the dataset already has a {METADATA_FILE}; only one is used")
        fd, tmp_name = tempfile.mkstemp(prefix=".upload-", suffix=".part", dir=self.dest)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                n = _copy_capped(src, out, size_hint)
            why = _check_content(tmp, kind)
            if why:
                return self.reject(where, why)
            final = self._link_free(tmp, group, name)
        except _TooBig:
            return self.reject(where, "holds more data than its size says (zip bomb?)")
        except (OSError, zipfile.BadZipFile, EOFError, RuntimeError) as e:
            return self.reject(where, f"cannot be read ({type(e).__name__}: {e})")
        finally:
            tmp.unlink(missing_ok=True)
        self.bytes_left -= n
        self.files_left -= 1
        self.report.bytes_written += n
        if kind == "image":
            self.report.images.append(final.name)
        else:
            self.has_metadata = self.has_metadata or kind == "metadata"
            self.report.captions.append(final.name)

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
            return self.reject(where, "not an image or zip")
        if kind == "zip":
            return self.zip_file(path, where)
        with open(path, "rb") as src:
            self.place(src, name, kind, "", where, st.st_size)

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
            for info, name, kind, group in planned:
                entry = f"{where}: {info.filename}"
                if info.flag_bits & 0x1:
                    self.reject(entry, "encrypted entries are not supported")
                    continue
                try:
                    with zf.open(info) as src:
                        self.place(src, name, kind, group, entry, info.file_size)
                except (zipfile.BadZipFile, NotImplementedError, OSError, EOFError) as e:
                    self.reject(entry, f"cannot be unpacked ({type(e).__name__}: {e})")

    def _plan_zip(self, zf: zipfile.ZipFile, where: str):
        """The entries worth extracting, or None when the whole archive is refused (over a cap)."""
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
                    # the pairing group: this archive's folder (a caption never pairs across zips)
                    planned.append((info, name, kind, where + "\0" + "/".join(parts[:-1])))
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

    Accepts .jpg/.jpeg/.png/.webp whose content is a JPEG, PNG or WebP image, .txt captions,
    metadata.jsonl and .zip archives of those. Everything else is rejected with a reason
    ("notes.exe: not an image or zip"). The caps cover everything in `dest_dir`, earlier uploads
    included. Nothing is ever written outside `dest_dir`.
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
    for p in paths:
        if p is None or not str(p).strip():
            continue
        job.loose_file(Path(p))
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

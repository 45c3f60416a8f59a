"""Who is asking: an identity the server issues and checks, never one a client can name.

With a login (`--auth`, `FTA_AUTH` or an auth file) the owner is the login's user name, which
Gradio checked against the password. Without one, each browser gets a random id signed with a
server secret (HMAC-SHA256): the browser keeps `id.signature` and sends it back with every
event; a token whose signature does not match is refused, so knowing another browser's id (or
guessing one) gives nothing. The secret is 32 random bytes in a file only the server's user can
read (created with mode 0600, tightened if found looser).

Owners are plain strings, `user:<name>` or `browser:<id>`; runs, uploads, ratings and queue
entries record them, and every button checks them on the server.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

SECRET_BYTES = 32
_ID = re.compile(r"^[0-9a-f]{32}$")
_SIG_HEX = 64
MAX_USER_CHARS = 128


@dataclass(frozen=True)
class Identity:
    owner: str              # "user:<name>" or "browser:<id>": what runs and uploads record
    token: str | None       # what the browser keeps (None with a login)
    issued: bool = False    # a new browser token was issued by this call


def load_secret(path: str | Path) -> bytes:
    """The server secret at `path`, created (0600, parents 0700) when missing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        # written whole under a private name, then linked into place (which fails if another
        # process or thread got there first): a reader never sees a half-written secret
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(SECRET_BYTES) + "\n")
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        os.chmod(path, 0o600)  # readable by others: every token could be forged
    text = path.read_text().strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) < 16:
        raise ValueError(f"server secret '{path}' is damaged; delete it and restart (browsers get new ids)")
    return key


def _signature(secret: bytes, browser_id: str) -> str:
    return hmac.new(secret, b"browser:" + browser_id.encode(), hashlib.sha256).hexdigest()


def issue_token(secret: bytes) -> str:
    """A new browser's `id.signature`."""
    browser_id = secrets.token_hex(16)
    return f"{browser_id}.{_signature(secret, browser_id)}"


def verify_token(secret: bytes, token: object) -> str | None:
    """The browser id inside a genuine token, else None (constant-time comparison)."""
    if not isinstance(token, str) or len(token) != 32 + 1 + _SIG_HEX:
        return None
    browser_id, _, sig = token.partition(".")
    if not _ID.match(browser_id):
        return None
    return browser_id if hmac.compare_digest(sig, _signature(secret, browser_id)) else None


def user_owner(username: str) -> str:
    return f"user:{username}"


def identify(secret: bytes, token: object, username: str | None = None, *, issue: bool = False) -> Identity | None:
    """Who sent this event: the login user, else the browser of a genuine token. Without either,
    a new browser identity when `issue` (the page's load event), else None (refuse the event)."""
    if username:
        if not isinstance(username, str) or len(username) > MAX_USER_CHARS:
            return None
        return Identity(user_owner(username), None)
    browser_id = verify_token(secret, token)
    if browser_id is not None:
        return Identity(f"browser:{browser_id}", str(token))
    if not issue:
        return None
    token = issue_token(secret)
    return Identity(f"browser:{token.partition('.')[0]}", token, issued=True)


def read_auth_file(path: str | Path) -> list[tuple[str, str]]:
    """Logins from a file of `user:password` lines (blank lines and `#` comments skipped).
    A bad line, a repeated user or an empty file is a ValueError naming the line."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"auth file '{path}' cannot be read: {e}") from None
    users: dict[str, str] = {}
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, password = line.partition(":")
        if not sep or not user.strip() or not password:
            raise ValueError(f"auth file '{path}' line {n}: must be 'user:password' (both non-empty)")
        if len(user) > MAX_USER_CHARS:
            raise ValueError(f"auth file '{path}' line {n}: the user name is over {MAX_USER_CHARS} characters")
        if user.strip() in users:
            raise ValueError(f"auth file '{path}' line {n}: user {user.strip()!r} appears twice")
        users[user.strip()] = password
    if not users:
        raise ValueError(f"auth file '{path}' holds no 'user:password' line")
    return list(users.items())


class LoginGuard:
    """Gradio's `auth` callable: checks user name and password (constant-time), and throttles
    guessing. After `max_failures` wrong passwords for one user name within `window` seconds that
    name is refused, right password included, for `lockout` seconds; after `max_global` failures
    within the window (many names tried at once) every login is refused for `lockout` seconds.
    A locked-out user waits a minute; a guesser gets 5 tries a minute instead of thousands."""

    def __init__(self, users: list[tuple[str, str]], *, max_failures: int = 5, max_global: int = 50,
                 window: float = 60.0, lockout: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self.users = dict(users)
        self.max_failures = max_failures
        self.max_global = max_global
        self.window = window
        self.lockout = lockout
        self.clock = clock
        self._failures: dict[str | None, list[float]] = {}
        self._locked: dict[str | None, float] = {}   # user name (None = everyone) -> locked until
        self._lock = threading.Lock()

    def __call__(self, username: str, password: str) -> bool:
        now = self.clock()
        with self._lock:
            if any(self._locked.get(k, 0.0) > now for k in (username, None)):
                return False
            expected = self.users.get(username)
            ok = expected is not None and hmac.compare_digest(password.encode(), expected.encode())
            if ok:
                self._failures.pop(username, None)
                return True
            self._fail(username, now)
            return False

    def _fail(self, username: str, now: float) -> None:
        for key, limit in ((username, self.max_failures), (None, self.max_global)):
            recent = [t for t in self._failures.get(key, []) if now - t < self.window] + [now]
            self._failures[key] = recent
            if len(recent) >= limit:
                self._locked[key] = now + self.lockout
                self._failures[key] = []
        if len(self._failures) > 10_000:  # names that never come back
            self._failures = {k: v for k, v in self._failures.items() if v and now - v[-1] < self.window}

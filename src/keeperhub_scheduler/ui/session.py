"""The status page's login: a signed session cookie, its CSRF token, and one-time login codes.

The cookie never holds a token. It holds an expiry and a random nonce, signed with a key derived
from one of ``SCHEDULER_API_TOKENS`` (HMAC-SHA256), so it is checked without any server-side
store (any API replica accepts it) and stops being accepted when that token is removed from the
list. Every configured key is tried, with no early exit, as ``api.auth`` compares tokens.

The CSRF token is derived from the same key and the session's nonce: a page rendered for one
session carries it in its forms, and a form posted without it (or with another session's) is
refused. A cross-site page can neither read it nor send the cookie (SameSite=Strict).

One-time login codes (``LoginCodes``) let ``dev --demo`` print a link that logs in once: the code
is random, single-use, expires within minutes, and only its hash is kept.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

SESSION_COOKIE = "khs_session"
SESSION_SECONDS = 12 * 3600
LOGIN_CODE_SECONDS = 900
_PURPOSE = b"keeperhub-scheduler status page session v1"


@dataclass(frozen=True)
class Session:
    nonce: str
    expires: int
    csrf: str


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _mac(key: bytes, message: str) -> str:
    return _b64(hmac.new(key, message.encode(), hashlib.sha256).digest())


class SessionKeys:
    """Mints and opens session cookies with keys derived from the API tokens."""

    def __init__(self, tokens: tuple[str, ...], lifetime: int = SESSION_SECONDS) -> None:
        self._tokens = [token.encode() for token in tokens]
        self._keys = [hmac.new(token, _PURPOSE, hashlib.sha256).digest() for token in self._tokens]
        self.lifetime = lifetime

    def mint(self, token: str, now: float | None = None) -> str | None:
        """A cookie value for a session of ``token``; None when it is not a configured token."""
        candidate = token.encode()
        found: bytes | None = None
        for known, key in zip(self._tokens, self._keys, strict=True):
            if hmac.compare_digest(candidate, known):
                found = key
        if found is None:
            return None
        expires = int(now if now is not None else time.time()) + self.lifetime
        nonce = secrets.token_urlsafe(18)
        return f"{expires}.{nonce}.{_mac(found, f'session|{expires}|{nonce}')}"

    def open(self, cookie: str | None, now: float | None = None) -> Session | None:
        """The session a cookie stands for, or None (absent, malformed, forged or expired)."""
        if not cookie or len(cookie) > 200:
            return None
        parts = cookie.split(".")
        if len(parts) != 3 or not parts[0].isdigit():
            return None
        expires_text, nonce, given = parts
        found: bytes | None = None
        for key in self._keys:
            expected = _mac(key, f"session|{expires_text}|{nonce}")
            if hmac.compare_digest(given.encode(), expected.encode()):
                found = key
        expires = int(expires_text)
        if found is None or expires <= (now if now is not None else time.time()):
            return None
        return Session(nonce=nonce, expires=expires, csrf=_mac(found, f"csrf|{nonce}"))


def csrf_matches(session: Session, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(session.csrf.encode(), given.encode())


class LoginCodes:
    """Single-use, short-lived login codes, each standing for one API token (kept in memory)."""

    def __init__(self, lifetime: float = LOGIN_CODE_SECONDS) -> None:
        self.lifetime = lifetime
        self._codes: dict[str, tuple[float, str]] = {}

    def issue(self, token: str) -> str:
        code = secrets.token_urlsafe(24)
        self._codes[_digest(code)] = (time.monotonic() + self.lifetime, token)
        return code

    def redeem(self, code: str | None) -> str | None:
        """The token of a valid code, which is used up by this call; None otherwise."""
        if not code or len(code) > 100:
            return None
        entry = self._codes.pop(_digest(code), None)
        self._drop_expired()
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def _drop_expired(self) -> None:
        now = time.monotonic()
        for key in [key for key, (until, _) in self._codes.items() if until < now]:
            del self._codes[key]


def _digest(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()

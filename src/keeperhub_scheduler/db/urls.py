"""``DATABASE_URL`` as text: what is wrong with it, the pieces of its password, a form to show.

A password must be percent-encoded in a URL. One that holds a bare ``@`` is cut at it: SQLAlchemy
reads ``postgresql://u:PW@tail99@127.0.0.1/db`` as password ``PW`` and host ``tail99@127.0.0.1``,
and the driver's error then names that host (half the password) and asks DNS for it. Such a URL
is refused at start, before anything connects or logs.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from urllib.parse import quote

# SQLAlchemy's URL parser loads on first use: the settings import this module, and `--help` and
# the start of every process should not pay for SQLAlchemy before a URL is read.
if TYPE_CHECKING:
    from sqlalchemy.engine.url import URL

URL_SHAPE = "postgresql://user:password@host:5432/database"
# Host names, IPv4 and IPv6 addresses, and libpq's comma-separated lists of them.
_HOST = re.compile(r"[A-Za-z0-9.,:%_-]*")


def _parse(url: str) -> URL | None:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url)
    except Exception:  # ArgumentError for a shapeless string, ValueError for a port
        return None


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be used, in one line that quotes nothing of it; None when it can."""
    parsed = _parse(url)
    if parsed is None:
        return f"is not a database URL like {URL_SHAPE} (is the port a number?)"
    if parsed.get_backend_name() == "sqlite":
        return None
    host = parsed.host or ""
    if "@" in host:
        return (
            "the password (or user name) holds an '@': percent-encode it, '@' as %40"
            " (and ':' as %3A, '/' as %2F)"
        )
    if not _HOST.fullmatch(host):
        return f"the host is not a host name or address ({URL_SHAPE})"
    return None


def password_parts(url: str) -> tuple[str, ...]:
    """Every form the password may take in a log line: as given, percent-encoded and decoded,
    and, when a bare ``@`` split it, the whole and each piece."""
    parsed = _parse(url)
    if parsed is None or parsed.password is None:
        return ()
    password = str(parsed.password)
    parts = {password, quote(password, safe="")}
    host = parsed.host or ""
    if "@" in host:
        whole = f"{password}@{host.rsplit('@', 1)[0]}"
        parts |= {whole, quote(whole, safe=""), *whole.split("@")}
    return tuple(part for part in parts if part)


def redacted(url: str) -> str:
    """The URL with its password hidden, for logs and error messages."""
    parsed = _parse(url)
    if parsed is None:
        return "(a URL that cannot be parsed)"
    host = parsed.host or ""
    if "@" in host:  # the rest of a password cut at a bare "@"
        parsed = parsed.set(host=host.rsplit("@", 1)[1], password="***")  # noqa: S106
    return parsed.render_as_string(hide_password=True)


def libpq_url(url: str) -> str:
    """The URL for libpq itself (psycopg's own connections): the plain scheme, and the user
    name and password percent-encoded as libpq's URI parser needs them."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url.replace("postgres://", "postgresql://", 1))
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)

"""Bearer-token authentication: tokens from ``SCHEDULER_API_TOKENS``, compared in constant time.

Every token is compared (no early exit), so the time of an answer says nothing about which token
came close. With no token configured nothing is accepted: an API without credentials is closed,
not open. ``api.guard`` applies this to every ``/v1`` request before its body is read; ``bearer``
only declares the scheme in the OpenAPI document.
"""

from __future__ import annotations

import hmac

from fastapi.security import HTTPBearer

REALM = 'Bearer realm="keeperhub-scheduler"'

bearer = HTTPBearer(
    auto_error=False,
    description="One of the tokens in SCHEDULER_API_TOKENS (comma-separated).",
)


def token_matches(given: bytes, tokens: tuple[bytes, ...]) -> bool:
    matched = False
    for token in tokens:
        matched |= hmac.compare_digest(given, token)
    return matched


def refusal(authorization: bytes | None, tokens: tuple[bytes, ...]) -> tuple[str, str] | None:
    """Why an ``Authorization`` header is refused, as (detail, WWW-Authenticate); None if it is
    a bearer token of ``tokens``."""
    scheme, _, credentials = (authorization or b"").partition(b" ")
    credentials = credentials.strip()
    if scheme.lower() != b"bearer" or not credentials:
        return "missing bearer token (Authorization: Bearer <token>)", REALM
    if not token_matches(credentials, tokens):
        return "invalid bearer token", f'{REALM}, error="invalid_token"'
    return None

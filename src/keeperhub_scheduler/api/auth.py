"""Bearer-token authentication: tokens from ``SCHEDULER_API_TOKENS``, compared in constant time.

Every token is compared (no early exit), so the time of an answer says nothing about which token
came close. With no token configured nothing is accepted: an API without credentials is closed,
not open.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

REALM = 'Bearer realm="keeperhub-scheduler"'

bearer = HTTPBearer(
    auto_error=False,
    description="One of the tokens in SCHEDULER_API_TOKENS (comma-separated).",
)


def token_matches(given: str, tokens: tuple[str, ...]) -> bool:
    candidate = given.encode()
    matched = False
    for token in tokens:
        matched |= hmac.compare_digest(candidate, token.encode())
    return matched


def require_token(tokens: tuple[str, ...]) -> Callable[..., Awaitable[None]]:
    """A dependency that answers 401 (with ``WWW-Authenticate``) unless a known token is sent."""

    async def check(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> None:
        if credentials is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "missing bearer token (Authorization: Bearer <token>)",
                headers={"WWW-Authenticate": REALM},
            )
        if not token_matches(credentials.credentials, tokens):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "invalid bearer token",
                headers={"WWW-Authenticate": f'{REALM}, error="invalid_token"'},
            )

    return check

"""API authentication: the ``X-Access-Token`` and ``X-Key`` headers of Webitel 3.x.

Theory of operation
-------------------
Every ``/api/v2`` route depends on :func:`token_checker`'s dependency. A request passes
when its two headers equal one ``[api] tokens`` pair; anything else (a header missing,
empty, or wrong) is 401 with the same message, so a client cannot tell which half was
wrong. The comparison is :func:`hmac.compare_digest` over *every* configured pair, with
no early exit, so the time taken does not depend on how much of a token matched nor on
which pair it was. The headers are declared as :class:`fastapi.security.APIKeyHeader`
schemes, so ``/docs`` offers them in its "Authorize" dialog.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated

from fastapi import Depends, HTTPException, status
from fastapi.security import APIKeyHeader

from sipdialer.config import ApiToken

TOKEN_HEADER = "X-Access-Token"
KEY_HEADER = "X-Key"
UNAUTHORIZED = f"missing or wrong {TOKEN_HEADER} / {KEY_HEADER} headers"

_token_scheme = APIKeyHeader(name=TOKEN_HEADER, auto_error=False, scheme_name="AccessToken")
_key_scheme = APIKeyHeader(name=KEY_HEADER, auto_error=False, scheme_name="Key")


def credentials_match(tokens: Sequence[ApiToken], token: str, key: str) -> bool:
    """True when (token, key) is one of ``tokens``; constant time in the inputs' content."""
    given_token, given_key = token.encode(), key.encode()
    found = False
    for pair in tokens:
        # Both halves are compared for every pair (no short-circuit "and"), so a request
        # whose token is right and key wrong takes as long as one with both wrong.
        token_ok = hmac.compare_digest(pair.token.encode(), given_token)
        key_ok = hmac.compare_digest(pair.key.encode(), given_key)
        found |= token_ok & key_ok
    return found


def token_checker(tokens: Sequence[ApiToken]) -> Callable[..., Awaitable[None]]:
    """The dependency that admits a request with a configured token pair (else 401)."""
    pairs = tuple(tokens)

    async def require_token(
        token: Annotated[str | None, Depends(_token_scheme)],
        key: Annotated[str | None, Depends(_key_scheme)],
    ) -> None:
        # async: FastAPI runs a plain def in a worker thread; this is cheap and pure.
        if not token or not key or not credentials_match(pairs, token, key):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                UNAUTHORIZED,
                headers={"WWW-Authenticate": TOKEN_HEADER},
            )

    return require_token

"""``GET /dashboard/recording?member=M&attempt=A``: an attempt's recording, for the
campaign page's history ("listen" link).

Theory of operation
-------------------
A link cannot send the API's headers, so this route is on the dashboard's router and
admits the supervisor's cookie (or the two headers, for scripts). The file served is the
one the attempt's ``recording`` column names, and only when it lies inside ``[media]
recordings_dir`` and is a ``.wav`` (the column is the dialer's own, but a path is never
served from anywhere else). The attempt is looked up among the member's (the store has
no attempt-by-id query; a member has few attempts).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Cookie, Header, HTTPException, status
from fastapi.responses import FileResponse

from sipdialer.api.auth import KEY_HEADER, TOKEN_HEADER
from sipdialer.api.dashboard_session import SUPERVISOR_COOKIE
from sipdialer.api.routes_common import Dialer
from sipdialer.config import Config

# Module level: FastAPI resolves the (postponed) annotations in the module's namespace.
SupervisorCookie = Annotated[str | None, Cookie(alias=SUPERVISOR_COOKIE)]
TokenHeader = Annotated[str | None, Header(alias=TOKEN_HEADER)]
KeyHeader = Annotated[str | None, Header(alias=KEY_HEADER)]


def recording_file(runner: Dialer, config: Config, member: int, attempt: int) -> Path | None:
    """The WAV of ``attempt`` of ``member``, if it has one inside ``recordings_dir``."""
    if not config.media.recordings_dir:
        return None
    record = next((a for a in runner.attempts.for_member(member) if a.id == attempt), None)
    name = record.row.get("recording") if record is not None else None
    if not name:
        return None
    root = Path(config.media.recordings_dir).resolve()
    path = Path(name).resolve()
    if path.suffix.lower() != ".wav" or not path.is_relative_to(root) or not path.is_file():
        return None
    return path


def recording_routes(
    router: APIRouter,
    runner: Dialer,
    config: Config,
    allowed: Callable[[str | None, str | None, str | None], bool],
) -> None:
    """Add the route; ``allowed(cookie, token, key)`` says whether the caller is a supervisor."""

    @router.get("/dashboard/recording")
    async def recording(
        member: int,
        attempt: int,
        cookie: SupervisorCookie = None,
        token: TokenHeader = None,
        key: KeyHeader = None,
    ) -> FileResponse:
        if not allowed(cookie, token, key):
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "sign in first")
        path = recording_file(runner, config, member, attempt)
        if path is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no recording")
        return FileResponse(path, media_type="audio/wav", filename=path.name)

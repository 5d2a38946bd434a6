"""The supervisor dashboard and the agent console, served by the API's FastAPI app.

Theory of operation
-------------------
:class:`Dashboard` builds one ``APIRouter`` (``.router``; :func:`dashboard_router` for
short; :func:`dashboard_routers` adds ``/metrics``) for ``create_app``'s extra routers:

    GET  /                    the supervisor dashboard (static HTML, no data in it)
    GET  /agent               the agent console (static HTML)
    GET  /campaign?id=...     a campaign's page: settings, members, upload (static HTML)
    GET  /dashboard/recording an attempt's WAV (:mod:`.dashboard_recording`)
    GET  /static/{name}       the pages' CSS and JS (package data, no build step)
    POST /dashboard/login     {token, key} -> the supervisor cookie (204) or 401
    POST /dashboard/logout
    GET  /dashboard/snapshot  agents, calls, campaigns (cookie or API headers)
    GET  /events              server-sent events: snapshot, then changes (same access)
    ...  /agent/...           the console's routes (:mod:`sipdialer.api.dashboard_agent`)

Pages are plain files under ``sipdialer/api/static/`` and hold no state; every byte of
dialer data comes from a route that checks the caller (:mod:`.dashboard_session`). The
dashboard's run/stop buttons call the REST API itself (``PUT /api/v2/dialer/{id}/state/
run|stop``) with the token and key the login form kept in ``sessionStorage``.

Live updates come from :class:`~sipdialer.api.dashboard_events.DashboardHub` (one per
router): the pages never poll the whole state, they apply the stream's changes.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from importlib import resources
from typing import Annotated, Any

from fastapi import APIRouter, Cookie, FastAPI, Header, HTTPException, Request, Response, status
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from pydantic import BaseModel, Field

from sipdialer.api.auth import KEY_HEADER, TOKEN_HEADER
from sipdialer.api.dashboard_agent import console_routes
from sipdialer.api.dashboard_card import CardSource
from sipdialer.api.dashboard_events import DashboardHub
from sipdialer.api.dashboard_recording import recording_routes
from sipdialer.api.dashboard_session import (
    SESSION_SECONDS,
    SUPERVISOR_COOKIE,
    Sessions,
    supervisor_lockout_key,
)
from sipdialer.api.metrics import metrics_router
from sipdialer.api.routes_common import Dialer, read_campaign_views
from sipdialer.config import Config

STATIC = resources.files("sipdialer.api") / "static"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}
PAGE_HEADERS = {
    # The pages load only their own files and talk only to this origin.
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}

# Module level: FastAPI resolves the (postponed) annotations in the module's namespace.
SupervisorCookie = Annotated[str | None, Cookie(alias=SUPERVISOR_COOKIE)]
TokenHeader = Annotated[str | None, Header(alias=TOKEN_HEADER)]
KeyHeader = Annotated[str | None, Header(alias=KEY_HEADER)]


class SupervisorLogin(BaseModel):
    token: str = Field(min_length=1, max_length=1000)
    key: str = Field(min_length=1, max_length=1000)


def static_file(name: str) -> tuple[bytes, str] | None:
    """The bytes and content type of ``static/<name>``; None for anything else (no
    sub-directories, no dot files: the name cannot leave the folder)."""
    suffix = name[name.rfind(".") :] if "." in name else ""
    if "/" in name or "\\" in name or name.startswith(".") or suffix not in CONTENT_TYPES:
        return None
    item = STATIC / name
    if not item.is_file():
        return None
    return item.read_bytes(), CONTENT_TYPES[suffix]


def set_session_cookie(response: Response, name: str, value: str) -> None:
    response.set_cookie(
        name, value, max_age=SESSION_SECONDS, httponly=True, samesite="strict", path="/"
    )


class Dashboard:
    """The router of the pages for ``runner``, with its sessions and its live feed."""

    def __init__(self, runner: Dialer, config: Config, *, secret: bytes | None = None) -> None:
        self.runner = runner
        self.sessions = Sessions(config.api.tokens, config.agents, secret=secret)
        self.hub = DashboardHub(runner, CardSource(runner, config))
        hub = self.hub

        @contextlib.asynccontextmanager
        async def lifespan(app: FastAPI) -> AsyncIterator[None]:
            yield
            await hub.close()

        self.router = APIRouter(lifespan=lifespan, include_in_schema=False)
        _routes(self)
        console_routes(self.router, runner, self.sessions, hub)
        sessions = self.sessions
        recording_routes(self.router, runner, config, lambda c, t, k: (
            sessions.supervisor(c) or sessions.supervisor_headers(t, k)))  # fmt: skip

    async def snapshot(self) -> dict[str, Any]:
        """Agents, calls and campaigns now. The campaigns' store counters are read in a
        worker thread (O(members)); the rest on the loop, after that await."""
        runner = self.runner
        campaigns = await read_campaign_views(runner, list(runner.campaign_ids().values()))
        return {
            "now": self.hub.clock(),
            "agents": [a.to_json() for a in runner.agent_views()],
            "calls": [c.to_json() for c in runner.live_calls()],
            "campaigns": [view.to_json() for view in campaigns],
        }


def dashboard_router(runner: Dialer, config: Config, *, secret: bytes | None = None) -> APIRouter:
    """``Dashboard(runner, config).router``."""
    return Dashboard(runner, config, secret=secret).router


def dashboard_routers(runner: Dialer, config: Config) -> list[APIRouter]:
    """The pages and ``/metrics`` (which admits the dashboard's cookie too), for
    ``create_app(runner, config, extra_routers=dashboard_routers(runner, config))``."""
    dashboard = Dashboard(runner, config)
    system = getattr(runner, "system", None)  # the PhoneSystem: SIP and media counters
    return [
        dashboard.router,
        metrics_router(runner, config, system=system, sessions=dashboard.sessions),
    ]


def _routes(dashboard: Dashboard) -> None:
    router, sessions, hub = dashboard.router, dashboard.sessions, dashboard.hub

    def page(name: str) -> HTMLResponse:
        found = static_file(name)
        assert found is not None, name  # shipped with the package
        return HTMLResponse(found[0], headers=PAGE_HEADERS)

    @router.get("/")
    async def dashboard_page() -> HTMLResponse:
        return page("dashboard.html")

    @router.get("/agent")
    async def console_page() -> HTMLResponse:
        return page("agent.html")

    @router.get("/campaign")
    async def campaign_page() -> HTMLResponse:
        return page("campaign.html")  # its data comes from the REST API, with the token

    @router.get("/static/{name}")
    async def static(name: str) -> Response:
        found = static_file(name)
        if found is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such file")
        return Response(found[0], media_type=found[1], headers=PAGE_HEADERS)

    def require_supervisor(cookie: str | None, token: str | None, key: str | None) -> None:
        if not (sessions.supervisor(cookie) or sessions.supervisor_headers(token, key)):
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "sign in first")

    @router.post("/dashboard/login", status_code=204)
    async def supervisor_login(body: SupervisorLogin, request: Request) -> Response:
        ip = request.client.host if request.client else ""
        user = supervisor_lockout_key(body.token)
        if sessions.locked(ip, user):
            raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, "too many failed sign-ins")
        cookie = sessions.supervisor_login(body.token, body.key)
        if cookie is None:
            sessions.failed(ip, user)
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong token or key")
        response = Response(status_code=204)
        set_session_cookie(response, SUPERVISOR_COOKIE, cookie)
        return response

    @router.post("/dashboard/logout", status_code=204)
    async def supervisor_logout() -> Response:
        response = Response(status_code=204)
        response.delete_cookie(SUPERVISOR_COOKIE, path="/")
        return response

    @router.get("/dashboard/snapshot")
    async def snapshot(
        cookie: SupervisorCookie = None, token: TokenHeader = None, key: KeyHeader = None
    ) -> JSONResponse:
        require_supervisor(cookie, token, key)
        return JSONResponse(await dashboard.snapshot())

    @router.get("/events")
    async def events(
        cookie: SupervisorCookie = None, token: TokenHeader = None, key: KeyHeader = None
    ) -> StreamingResponse:
        require_supervisor(cookie, token, key)
        client = hub.open_supervisor()
        return StreamingResponse(
            hub.stream(client), media_type="text/event-stream", headers=SSE_HEADERS
        )

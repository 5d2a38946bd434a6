"""The agent console's routes: sign in with the extension and SIP password, set the
status, watch the member card, submit the call's result.

Theory of operation
-------------------
    POST /agent/login   {extension, password} -> the agent cookie (204) or 401
    POST /agent/logout
    GET  /agent/state   {now, agent, card}                        (agent cookie)
    GET  /agent/events  server-sent ``console`` messages, the same shape
    PUT  /agent/status  {status: Available | Break | LoggedOut}   (cookie + X-Console)
    PUT  /agent/result  {campaign, member, success, next_after_sec, next_communication,
                         stop_communications, comment, reset_retries}

``/agent/status`` is ``runner.set_agent_status`` for the signed-in agent, as ``PUT
/api/v2/agents/{id}/status`` is. ``/agent/result`` takes the status API's body
(:class:`~sipdialer.api.schemas.StatusBody`, the same validation) and calls
``runner.member_status`` exactly as ``PUT .../members/{mid}/status`` does, so a result
from the console and one from a CRM have the same effect; it is refused (403) for a
member whose latest attempt was not this agent's, 409 when the member does not wait for
a result (any more) or ``next_communication`` is another member's number, 404 for an
unknown member. A cookie is the only credential an agent has, so the two state-changing
routes also want the ``X-Console`` header (CSRF guard).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Cookie, Header, HTTPException, Request, Response, status
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field

from sipdialer.api.dashboard_events import DashboardHub
from sipdialer.api.dashboard_session import AGENT_COOKIE, CONSOLE_HEADER, Sessions
from sipdialer.api.routes_common import Dialer
from sipdialer.api.schemas import AgentStatusBody, StatusBody
from sipdialer.api.values import INT32
from sipdialer.dialer.dispositions import NotWaiting
from sipdialer.store.member_rows import DuplicateNumber

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}

# Module level: FastAPI resolves the (postponed) annotations in the module's namespace.
AgentCookie = Annotated[str | None, Cookie(alias=AGENT_COOKIE)]
ConsoleHeader = Annotated[str | None, Header(alias=CONSOLE_HEADER)]


class AgentLogin(BaseModel):
    extension: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1000)


class ConsoleResult(StatusBody):
    """The status API's body plus the member it is for."""

    campaign: str = Field(min_length=1, max_length=64)
    member: int = Field(ge=1, le=INT32)  # the store's ids are 32-bit (PostgreSQL)


def console_routes(
    router: APIRouter, runner: Dialer, sessions: Sessions, hub: DashboardHub
) -> None:
    """Add the console's routes to the dashboard's router."""

    def signed_in(cookie: str | None, console: str | None = "", *, changes: bool = False) -> str:
        agent_id = sessions.agent(cookie)
        if agent_id is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "sign in first")
        if changes and not console:
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"missing {CONSOLE_HEADER} header")
        return agent_id

    @router.post("/agent/login", status_code=204)
    async def agent_login(body: AgentLogin, request: Request) -> Response:
        ip = request.client.host if request.client else ""
        if sessions.locked(ip, f"agent:{body.extension}"):
            raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, "too many failed sign-ins")
        cookie = sessions.agent_login(body.extension, body.password)
        if cookie is None:
            sessions.failed(ip, f"agent:{body.extension}")
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong extension or password")
        response = Response(status_code=204)
        response.set_cookie(
            AGENT_COOKIE, cookie, max_age=12 * 3600, httponly=True, samesite="strict", path="/"
        )
        return response

    @router.post("/agent/logout", status_code=204)
    async def agent_logout() -> Response:
        response = Response(status_code=204)
        response.delete_cookie(AGENT_COOKIE, path="/")
        return response

    @router.get("/agent/state")
    async def agent_state(cookie: AgentCookie = None) -> JSONResponse:
        return JSONResponse(hub.console(signed_in(cookie)))

    @router.get("/agent/events")
    async def agent_events(cookie: AgentCookie = None) -> StreamingResponse:
        client = hub.open_agent(signed_in(cookie))
        return StreamingResponse(
            hub.stream(client), media_type="text/event-stream", headers=SSE_HEADERS
        )

    @router.put("/agent/status")
    async def agent_status(
        body: AgentStatusBody, cookie: AgentCookie = None, console: ConsoleHeader = None
    ) -> dict[str, Any]:
        agent_id = signed_in(cookie, console, changes=True)
        try:
            runner.set_agent_status(agent_id, body.status)
        except KeyError:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such agent") from None
        return {"id": agent_id, "status": body.status.value}

    @router.put("/agent/result")
    async def agent_result(
        body: ConsoleResult, cookie: AgentCookie = None, console: ConsoleHeader = None
    ) -> dict[str, Any]:
        agent_id = signed_in(cookie, console, changes=True)
        campaign_id = runner.resolve_campaign(body.campaign)
        record = runner.members.get(body.member)
        if campaign_id is None or record is None or record.campaign_id != campaign_id:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such member")
        if hub.cards.owner_of(body.member) != agent_id:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "not your member's call")
        try:
            runner.member_status(campaign_id, body.member, body.to_result())
        except (NotWaiting, DuplicateNumber) as exc:  # DuplicateNumber: next_communication
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc) or "not waiting") from None
        except KeyError:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such member") from None
        return {"campaign": campaign_id, "member": body.member, "accepted": True}

"""The REST API's FastAPI application: Webitel 3.x paths over the running dialer.

Theory of operation
-------------------
:func:`create_app` builds the application around a running
:class:`~sipdialer.dialer.runner.DialerRunner` (its facade, :class:`.routes_common.Dialer`)
and the configuration. The ``/api/v2`` routers (``routes_campaigns``, ``routes_members``,
``routes_import``, ``routes_attempts``, ``routes_agents``) all depend on the token check
of :mod:`.auth`; OpenAPI is at ``/openapi.json`` and its pages at ``/docs`` and
``/redoc``, which need no token. Everything else (``/``, ``/agent``, ``/metrics``,
``/static``, ``/events``) is left free for the dashboard, which passes its routers as
``extra_routers`` (each included as is, with its own authentication), or includes them
later with ``app.include_router``. ``app.state.runner`` and ``app.state.config`` hold the
two objects for those routers too.

Errors: a body, path or query that does not validate is 422 with FastAPI's ``detail`` (a
list of ``{loc, msg, type}``, ``loc`` naming the field, e.g. ``["body", "communications",
0, "number"]``) plus ``errors``, the same as one ``"body.communications.0.number:
message"`` line each; an unknown campaign, member or agent is 404; a member whose state
does not allow the request is 409; ``{"detail": "..."}`` each.

The application is served by :class:`.server.ApiServer` inside the dialer's event loop.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

import sipdialer
from sipdialer.api import (
    routes_agents,
    routes_attempts,
    routes_campaigns,
    routes_import,
    routes_members,
    routes_page,
    routes_preview,
)
from sipdialer.api.auth import token_checker
from sipdialer.api.routes_common import Dialer
from sipdialer.config import Config

API_ROUTERS = (
    routes_campaigns.router,
    routes_preview.router,
    routes_import.router,  # before members: ".../members/import" is not a member id
    routes_page.router,
    routes_members.router,
    routes_attempts.router,
    routes_agents.router,
)

DESCRIPTION = """\
The REST API of sipdialer, on the paths of Webitel 3.x's dialer API. Every `/api/v2` call
needs the `X-Access-Token` and `X-Key` headers of one `[api] tokens` pair (401 otherwise).
`{id}` is a campaign's id or its name. Bad bodies get 422 naming the field, unknown ids
404, a member whose state does not allow the request 409.
"""


def create_app(
    runner: Dialer, config: Config, *, extra_routers: Iterable[APIRouter] = ()
) -> FastAPI:
    """The application for ``runner``; ``extra_routers`` are included without the token
    check (the dashboard's pages and streams bring their own)."""
    app = FastAPI(
        title="sipdialer",
        version=getattr(sipdialer, "__version__", "0"),
        description=DESCRIPTION,
        docs_url="/docs",
        redoc_url="/redoc",
    )
    app.state.runner = runner
    app.state.config = config
    auth = [Depends(token_checker(config.api.tokens))]
    for router in API_ROUTERS:
        app.include_router(router, dependencies=auth)
    for router in extra_routers:
        app.include_router(router)
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    return app


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = [_printable(dict(error)) for error in exc.errors()]
    lines = []
    for error in errors:
        loc = ".".join(str(part) for part in error.get("loc", ()))
        message = str(error.get("msg", "")).removeprefix("Value error, ")
        if error.get("type") == "missing":
            message = "required"
        elif error.get("type") == "extra_forbidden":
            message = "unknown key"
        lines.append(f"{loc}: {message}" if loc else message)
    return JSONResponse(
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        content={"detail": jsonable_encoder(errors), "errors": lines},
    )


def _printable(error: dict[str, Any]) -> dict[str, Any]:
    # A body that is not JSON comes back as its bytes in "input"; bytes that are not UTF-8
    # would make the encoder fail (a 500 instead of the 422).
    if isinstance(error.get("input"), bytes | bytearray):
        error["input"] = bytes(error["input"]).decode("utf-8", errors="replace")
    return error

"""Serving the API with uvicorn inside the dialer's own event loop.

Theory of operation
-------------------
The dialer is one asyncio loop (DESIGN.md); the API must run in it so that routes call
the runner's facade directly, without locks (the O(members) store reads alone go to
worker threads: ``routes_common.store_read``). :class:`ApiServer` runs
``uvicorn.Server.serve()`` as a task of the current loop. uvicorn's ``serve`` would
install its own SIGINT/SIGTERM handlers (``capture_signals``) and re-raise the signal
when it stops, which would fight the dialer's handlers; :class:`_EmbeddedServer` turns
that off, so the dialer decides when to stop and calls :meth:`ApiServer.close`.

:meth:`ApiServer.start` returns once the socket listens, with the bound address (port 0
in ``[api] listen`` picks a free port: tests and the demo use that). :meth:`close` is
graceful: stop accepting, let requests in progress finish (at most ``grace`` seconds),
then close the connections; calling it twice is harmless.

:func:`api_task` packs this as an ``extra`` task of :func:`sipdialer.app.serve` (it gets
the started runner, serves until cancelled at shutdown, then closes), so ``sipdialer run``
wires the API with ``serve(config, stop, extra=[api_task(config)])``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any

import uvicorn
from fastapi import APIRouter, FastAPI

from sipdialer.api.app import create_app
from sipdialer.api.routes_common import Dialer
from sipdialer.config import ApiConfig, Config

log = logging.getLogger("sipdialer.api")

START_TIMEOUT = 10.0
"Seconds to wait for the socket to listen."


class _EmbeddedServer(uvicorn.Server):  # type: ignore[misc]  # uvicorn has no type hints here
    """uvicorn's server without its signal handling (the dialer owns the signals)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class ApiServer:
    """The API on ``[api] listen``, served in the running loop."""

    def __init__(
        self, app: FastAPI, config: ApiConfig, *, grace: float = 5.0, log_level: str = "warning"
    ) -> None:
        self.app = app
        self.config = config
        self.grace = grace
        self._uvicorn = uvicorn.Config(
            app,
            host=config.listen_host,
            port=config.listen_port,
            lifespan="off",  # the dialer starts and stops what the app uses
            log_level=log_level,
            access_log=False,
            timeout_graceful_shutdown=max(1, round(grace)),
            server_header=False,
        )
        self._server: Any = None
        self._task: asyncio.Task[None] | None = None
        self.address: tuple[str, int] | None = None

    async def start(self) -> tuple[str, int]:
        """Listen and serve; returns the bound (host, port). Raises OSError when the
        address cannot be bound."""
        if self._task is not None:
            raise RuntimeError("the API server is already started")
        server = _EmbeddedServer(self._uvicorn)
        self._server = server
        self._task = asyncio.create_task(_serve(server), name="api-server")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT
        while not server.started:
            if self._task.done():
                error = self._task.exception() if not self._task.cancelled() else None
                self._task = None
                raise OSError(f"the API could not listen on {self.config.listen}") from error
            if loop.time() > deadline:
                await self.close()
                raise TimeoutError(f"the API did not start listening on {self.config.listen}")
            await asyncio.sleep(0.01)
        sockname = server.servers[0].sockets[0].getsockname()
        self.address = (str(sockname[0]), int(sockname[1]))
        log.info("API listening on http://%s:%d (docs at /docs)", *self.address)
        return self.address

    async def close(self) -> None:
        """Stop accepting, finish requests in progress (``grace`` s), close. Idempotent."""
        task, server = self._task, self._server
        self._task = None
        if task is None or server is None:
            return
        server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(task), self.grace + 2.0)
        except TimeoutError:
            server.force_exit = True
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        except Exception:  # a failed serve() was already logged by uvicorn
            log.debug("API server ended with an error", exc_info=True)


async def _serve(server: Any) -> None:
    # uvicorn reports a bind error by logging it and raising SystemExit(1); out of a task,
    # SystemExit would stop the whole event loop (the dialer), so it becomes an OSError.
    try:
        await server.serve()
    except SystemExit as exc:
        raise OSError(f"uvicorn exited with status {exc.code}") from None


def api_task(
    config: Config,
    routers: Callable[[Dialer], Iterable[APIRouter]] | None = None,
    *,
    grace: float = 5.0,
    source: str | None = None,
) -> Callable[[Dialer], Awaitable[None]]:
    """A task for ``sipdialer.app.serve(..., extra=[...])``: the API (plus ``routers(runner)``,
    the dashboard's) on ``[api] listen`` until cancelled; then a graceful close.
    ``source``: the configuration file's path, shown with the campaign settings."""

    async def run(runner: Dialer) -> None:
        extra = list(routers(runner)) if routers is not None else []
        app = create_app(runner, config, extra_routers=extra)
        app.state.config_source = source  # the campaign page names the file it shows
        server = ApiServer(app, config.api, grace=grace)
        try:
            await server.start()
        except OSError as exc:
            # The dialer keeps calling without its API (a second node on one machine,
            # a port taken): say so loudly instead of stopping live calls.
            log.error("REST API not served on %s: %s", config.api.listen, exc)
            await asyncio.Event().wait()
        try:
            await asyncio.Event().wait()  # until the dialer stops (cancels this task)
        finally:
            await server.close()

    return run

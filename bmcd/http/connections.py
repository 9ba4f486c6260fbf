"""Closing connections that never get as far as a request.

aiohttp times out idle keep-alive connections, but a client that opens a
connection and never finishes its request headers is kept forever; enough of
them use up the file descriptors and lock everyone out. bmcd gives each new
connection a deadline: unless a request has reached the pipeline by then,
the connection is closed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiohttp import web

_LOGGER = logging.getLogger(__name__)

# Seconds a new connection gets to complete its TLS handshake and send the
# headers of its first request.
FIRST_REQUEST_SECONDS = 30.0
# At most one log line per this many seconds, however many are closed.
_LOG_INTERVAL = 60.0


class RequestDeadline:
    """Watches new connections and closes those that send no request in time."""

    def __init__(self, seconds: float = FIRST_REQUEST_SECONDS) -> None:
        self.seconds = seconds
        # Transports that delivered a request and whose deadline is pending;
        # each leaves the set at its deadline, so it holds at most the
        # connections of the last ``seconds``.
        self._served: set[Any] = set()
        self._closed = 0
        self._logged_at = 0.0

    def install(self, runner: web.BaseRunner) -> None:
        """Wrap the runner's protocol factory (after ``runner.setup()``)."""
        server = runner.server
        if server is None:
            raise RuntimeError("install the deadline after runner.setup()")
        # No public hook exists for this; the sites read runner._server.
        runner._server = _DeadlineFactory(server, self)  # type: ignore[assignment]

    def request_started(self, request: web.BaseRequest) -> None:
        """Note that a connection delivered a request (called per request)."""
        if request.transport is not None:
            self._served.add(request.transport)

    def _check(self, handler: Any) -> None:
        transport = getattr(handler, "transport", None)
        if transport is None:
            return
        if transport in self._served:
            self._served.discard(transport)
            return
        if transport.is_closing():
            return
        transport.close()
        self._closed += 1
        now = time.monotonic()
        if now - self._logged_at >= _LOG_INTERVAL:
            peer = transport.get_extra_info("peername")
            _LOGGER.warning(
                "Closed %d connection(s) that sent no request within %.0f s "
                "(latest from %s): slow or stalled clients",
                self._closed,
                self.seconds,
                peer[0] if peer else "unknown",
            )
            self._closed, self._logged_at = 0, now


class _DeadlineFactory:
    """The aiohttp server, with a deadline armed for every connection it makes."""

    def __init__(self, server: Any, deadline: RequestDeadline) -> None:
        self._server = server
        self._deadline = deadline

    def __call__(self) -> Any:
        handler = self._server()
        # aiohttp's handler takes no weak references: the timer holds it
        # until the deadline, at most ``seconds`` after the connection.
        asyncio.get_running_loop().call_later(
            self._deadline.seconds, self._deadline._check, handler
        )
        return handler

    def __getattr__(self, name: str) -> Any:
        return getattr(self._server, name)

"""bmcd.http.connections: connections that send no request are closed."""

from __future__ import annotations

import asyncio
import socket

from aiohttp import web

from bmcd.http import keys
from bmcd.http.connections import RequestDeadline
from bmcd.http.pipeline import error_middleware


async def _hello(request: web.Request) -> web.Response:
    return web.Response(text="hello")


async def _serve(deadline: RequestDeadline) -> tuple[web.AppRunner, int]:
    app = web.Application(middlewares=[error_middleware])
    app.router.add_get("/", _hello)
    keys.DEADLINE.set(app, deadline)
    runner = web.AppRunner(app)
    await runner.setup()
    deadline.install(runner)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, port


async def _read_all(reader: asyncio.StreamReader, wait: float) -> bytes:
    try:
        return await asyncio.wait_for(reader.read(), wait)
    except TimeoutError:
        return b"<still open>"


async def test_a_connection_that_never_finishes_its_headers_is_closed() -> None:
    runner, port = await _serve(RequestDeadline(0.3))
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")  # no blank line, ever
        await writer.drain()
        assert await _read_all(reader, 3) == b""
        writer.close()
    finally:
        await runner.cleanup()


async def test_a_connection_that_sent_a_request_is_left_alone() -> None:
    runner, port = await _serve(RequestDeadline(0.3))
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
        writer.write(request)
        await writer.drain()
        assert b"hello" in await reader.readuntil(b"hello")
        await asyncio.sleep(0.6)  # past the deadline, within keep-alive
        writer.write(request)
        await writer.drain()
        assert b"hello" in await asyncio.wait_for(reader.readuntil(b"hello"), 3)
        writer.close()
    finally:
        await runner.cleanup()

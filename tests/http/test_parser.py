"""The request parser bmcd installs: framing of HEAD requests with a body."""

from __future__ import annotations

import asyncio

from aiohttp.test_utils import TestClient

# A body that is itself a request: it must never be answered as one.
_SMUGGLED = b"GET /redfish/v1/smuggled HTTP/1.1\r\nHost: bmc\r\n\r\n"


def _head(body: bytes) -> bytes:
    return (
        b"HEAD /redfish/v1 HTTP/1.1\r\nHost: bmc\r\n"
        b"Content-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )


async def _replies(reader: asyncio.StreamReader) -> bytes:
    """What the server sends until it closes or falls silent for 0.5 s."""
    data = b""
    while True:
        try:
            chunk = await asyncio.wait_for(reader.read(65536), 0.5)
        except TimeoutError:
            return data
        if not chunk:
            return data
        data += chunk


async def _exchange(client: TestClient, *requests: bytes) -> list[bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", client.server.port)
    try:
        replies = []
        for request in requests:
            writer.write(request)
            await writer.drain()
            replies.append(await _replies(reader))
        return replies
    finally:
        writer.close()


async def test_head_body_is_not_read_as_a_request(client: TestClient) -> None:
    (reply,) = await _exchange(client, _head(_SMUGGLED))
    # One answer: the HEAD's, or a 400 where the body could not be framed.
    assert reply.count(b"HTTP/1.") == 1
    assert b"smuggled" not in reply


async def test_request_after_head_with_body(client: TestClient) -> None:
    get = b"GET /redfish/v1 HTTP/1.1\r\nHost: bmc\r\n\r\n"
    head_reply, get_reply = await _exchange(client, _head(b"{}"), get)
    assert head_reply.startswith(b"HTTP/1.1 200 ")
    # Where aiohttp's parser drops HEAD bodies, bmcd has closed the connection.
    assert get_reply == b"" or get_reply.startswith(b"HTTP/1.1 200 ")

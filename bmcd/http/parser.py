"""Choosing the HTTP request parser that answers unknown methods correctly.

aiohttp's C parser (llhttp) rejects a request line with a method it does not
know before any handler runs, answering a bare-text 400. DSP0266 requires 405
or 501 for unsupported methods, with a Redfish error body, so bmcd has aiohttp
use its pure-Python request parser, which accepts any method token and lets
the router answer. Responses and everything else keep the C speed-ups.

Some aiohttp releases (3.9 up to the fix in aio-libs/aiohttp#13671, among them
Debian 13's 3.11) have that parser ignore the body a HEAD request declares,
so the body's bytes would be read as the next request on the connection. With
such a parser bmcd closes the connection after answering that HEAD request.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

from aiohttp import hdrs, http_parser, streams, web_protocol

_LOGGER = logging.getLogger(__name__)

_HEAD_WITH_BODY = b"HEAD / HTTP/1.1\r\nHost: probe\r\nContent-Length: 1\r\n\r\nx"


def accept_any_method() -> None:
    """Make aiohttp parse requests with its Python parser (idempotent)."""
    parser = _request_parser()
    if parser is None:
        _LOGGER.warning(
            "aiohttp has no Python request parser; unknown HTTP "
            "methods will get 400 instead of 405"
        )
        return
    # web_protocol imported the parser class by name; rebind that name.
    setattr(web_protocol, "HttpRequestParser", parser)  # noqa: B010


@functools.cache
def _request_parser() -> Any:
    python_parser = getattr(http_parser, "HttpRequestParserPy", None)
    if python_parser is None or _reads_head_bodies(python_parser):
        return python_parser
    return _closing_after_head_bodies(python_parser)


class _Idle:
    """Just enough of a protocol for a parser fed a few bytes."""

    _reading_paused = False

    def pause_reading(self) -> None:
        """Nothing to pause: the probe feeds one short request."""

    def resume_reading(self) -> None:
        """Nothing to resume."""


def _reads_head_bodies(parser_class: Any) -> bool:
    """Whether ``parser_class`` gives a HEAD request the body it declares."""
    loop = asyncio.new_event_loop()
    try:
        parser = parser_class(_Idle(), loop, 2**16)
        messages, _, _ = parser.feed_data(_HEAD_WITH_BODY)
    finally:
        loop.close()
    return bool(messages) and messages[0][1] is not streams.EMPTY_PAYLOAD


def _closing_after_head_bodies(parser_class: Any) -> Any:
    """``parser_class`` ending the connection after a HEAD request with a body.

    TODO(aiohttp from 3.9 until aio-libs/aiohttp#13671, e.g. Debian 13's 3.11):
    remove when bmcd no longer supports those releases.
    """

    def parse_message(self: Any, lines: list[bytes]) -> Any:
        message = parser_class.parse_message(self, lines)
        length = message.headers.get(hdrs.CONTENT_LENGTH, "")
        if message.method == hdrs.METH_HEAD and (
            message.chunked or length.strip("0 \t")
        ):
            # The body stays unread in the buffer: no request may follow it.
            return message._replace(should_close=True)
        return message

    return type(
        "HeadClosingParser",
        (parser_class,),
        {"parse_message": parse_message, "__module__": __name__},
    )

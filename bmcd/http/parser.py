"""Choosing the HTTP request parser that answers unknown methods correctly.

aiohttp's C parser (llhttp) rejects a request line with a method it does not
know before any handler runs, answering a bare-text 400. DSP0266 requires 405
or 501 for unsupported methods, with a Redfish error body, so bmcd has aiohttp
use its pure-Python request parser, which accepts any method token and lets
the router answer. Responses and everything else keep the C speed-ups.
"""

from __future__ import annotations

import logging

from aiohttp import http_parser, web_protocol

_LOGGER = logging.getLogger(__name__)


def accept_any_method() -> None:
    """Make aiohttp parse requests with its Python parser (idempotent)."""
    python_parser = getattr(http_parser, "HttpRequestParserPy", None)
    if python_parser is None:
        _LOGGER.warning(
            "aiohttp has no Python request parser; unknown HTTP "
            "methods will get 400 instead of 405"
        )
        return
    # web_protocol imported the parser class by name; rebind that name.
    setattr(web_protocol, "HttpRequestParser", python_parser)  # noqa: B010

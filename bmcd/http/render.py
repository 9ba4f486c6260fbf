"""Turning handler results and errors into HTTP responses, in one place."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from aiohttp import web

from bmcd.core.errors import RedfishError
from bmcd.core.messages import message_json, message_text

JSON_TYPE = "application/json"
ODATA_HEADERS = {
    "OData-Version": "4.0",
    "Cache-Control": "no-cache",
    # A management interface is never framed or sniffed.
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Strict-Transport-Security": "max-age=31536000",
    # Not aiohttp's default, which names the Python and aiohttp versions.
    "Server": "bmcd",
}


def dumps(body: Any) -> bytes:
    """Compact, stable JSON."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


# Not state a client could overwrite by mistake: a clock reading (Managers'
# DateTime) would make every tag stale within a second.
_NOT_IN_ETAG = frozenset({"@odata.etag", "DateTime"})


def etag_of(body: dict[str, Any]) -> str:
    """A weak ETag over the resource's JSON, ignoring its etag and clock."""
    content = {k: v for k, v in body.items() if k not in _NOT_IN_ETAG}
    digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode())
    return f'W/"{digest.hexdigest()[:16]}"'


def with_etag(body: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """``body`` carrying its ``@odata.etag``, and that ETag.

    Only single resources have one; a collection (or a body that is no
    resource) comes back unchanged with None.
    """
    if "@odata.id" not in body or "Members" in body:
        return body, None
    etag = etag_of(body)
    return {**body, "@odata.etag": etag}, etag


def schema_link(body: dict[str, Any]) -> str | None:
    """The Link header pointing at the JSON schema that describes ``body``."""
    odata_type = body.get("@odata.type")
    if not isinstance(odata_type, str) or not odata_type.startswith("#"):
        return None
    namespace = odata_type[1:].rsplit(".", 1)[0]
    return f"<http://redfish.dmtf.org/schemas/v1/{namespace}.json>; rel=describedby"


def json_response(
    body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """A Redfish JSON response with the standard headers."""
    all_headers = dict(ODATA_HEADERS)
    all_headers.update(headers or {})
    return web.Response(
        body=dumps(body),
        status=status,
        headers=all_headers,
        content_type=JSON_TYPE,
        charset="utf-8",
    )


def error_body(error: RedfishError) -> dict[str, Any]:
    """The DSP0266 error body: first message on top, all in ExtendedInfo."""
    messages = [message_json(m) for m in error.messages]
    first = messages[0] if messages else None
    return {
        "error": {
            "code": first["MessageId"] if first else "Base.1.22.GeneralError",
            "message": message_text(error.messages[0]) if first else "Error",
            "@Message.ExtendedInfo": messages,
        }
    }


def error_response(
    error: RedfishError, headers: dict[str, str] | None = None
) -> web.Response:
    """The response for a RedfishError."""
    all_headers = dict(error.headers)
    all_headers.update(headers or {})
    return json_response(error_body(error), error.status, all_headers)

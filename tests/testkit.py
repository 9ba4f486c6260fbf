"""Helpers for tests that drive bmcd over HTTP: users, headers, crawling.

Import from here (``from testkit import ...``), not from ``conftest``: with
several conftest.py files in the tree, which one ``import conftest`` finds
depends on collection order.
"""

from __future__ import annotations

import base64
from typing import Any

from aiohttp.test_utils import TestClient

ADMIN = ("root", "root-password-1")
OPERATOR = ("oper", "oper-password-1")
READONLY = ("reader", "reader-password-1")
USERS = {"Administrator": ADMIN, "Operator": OPERATOR, "ReadOnly": READONLY}


def basic(user: tuple[str, str]) -> dict[str, str]:
    """An Authorization header for HTTP Basic."""
    token = base64.b64encode(f"{user[0]}:{user[1]}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def login(client: TestClient, user: tuple[str, str]) -> tuple[str, str]:
    """Open a session as ``user``; return its token and its URI."""
    response = await client.post(
        "/redfish/v1/SessionService/Sessions",
        json={"UserName": user[0], "Password": user[1]},
    )
    assert response.status == 201, await response.text()
    return response.headers["X-Auth-Token"], response.headers["Location"]


def token_header(token: str) -> dict[str, str]:
    """The header that authenticates with a session token."""
    return {"X-Auth-Token": token}


async def error_ids(response: Any) -> list[str]:
    """The registry keys (last MessageId part) of an error response."""
    body = await response.json()
    return [
        m["MessageId"].rsplit(".", 1)[-1]
        for m in body["error"]["@Message.ExtendedInfo"]
    ]


# Keys whose string values are URIs of other resources.
_URI_KEYS = ("@odata.id", "target", "@Redfish.ActionInfo", "Uri")


def _uris(value: Any) -> list[str]:
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if key in _URI_KEYS and isinstance(item, str):
                found.append(item.split("#", 1)[0])
            else:
                found.extend(_uris(item))
    elif isinstance(value, list):
        for item in value:
            found.extend(_uris(item))
    return [uri for uri in found if uri.startswith("/redfish")]


async def crawl(
    client: TestClient, headers: dict[str, str], limit: int = 500
) -> dict[str, Any]:
    """Every JSON resource reachable from the service root, by URI.

    Follows links, action targets, ActionInfo and registry locations, the way
    a client discovering the service would.
    """
    bodies: dict[str, Any] = {}
    queue = ["/redfish/v1"]
    seen = set(queue)
    while queue and len(bodies) < limit:
        uri = queue.pop(0)
        response = await client.get(uri, headers=headers)
        if response.status != 200 or response.content_type != "application/json":
            continue
        body = await response.json()
        bodies[uri.rstrip("/") or uri] = body
        for found in _uris(body):
            found = found.rstrip("/")
            if found not in seen:
                seen.add(found)
                queue.append(found)
    return bodies


def linked_uris(bodies: dict[str, Any]) -> set[str]:
    """The crawled URIs plus every URI they mention (action targets too)."""
    found = set(bodies)
    for body in bodies.values():
        found.update(uri.rstrip("/") for uri in _uris(body))
    return found

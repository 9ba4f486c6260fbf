"""SessionService: logging in and out, timeouts, limits and who sees what."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from testkit import ADMIN, OPERATOR, READONLY, basic, error_ids, login, token_header

from bmcd.core.config import Config
from bmcd.http import keys

MakeClient = Callable[..., Awaitable[TestClient]]
SERVICE = "/redfish/v1/SessionService"
SESSIONS = "/redfish/v1/SessionService/Sessions"


async def test_session_service(client: TestClient) -> None:
    body = await (await client.get(SERVICE, headers=basic(READONLY))).json()
    assert body["@odata.type"].startswith("#SessionService.v1_")
    assert body["SessionTimeout"] == 1800
    assert body["ServiceEnabled"] is True
    assert body["Sessions"] == {"@odata.id": SESSIONS}


@pytest.mark.parametrize("seconds", [30, 600, 86400])
async def test_session_timeout_patch(
    client: TestClient, admin: dict[str, str], seconds: int
) -> None:
    response = await client.patch(
        SERVICE, headers=admin, json={"SessionTimeout": seconds}
    )
    assert response.status == 200
    assert (await response.json())["SessionTimeout"] == seconds


@pytest.mark.parametrize("seconds", [29, 0, -5, 86401, "60", 60.5, None])
async def test_session_timeout_out_of_range(
    client: TestClient, admin: dict[str, str], seconds: object
) -> None:
    response = await client.patch(
        SERVICE, headers=admin, json={"SessionTimeout": seconds}
    )
    assert response.status == 400
    ids = await error_ids(response)
    assert ids[0] in ("PropertyValueOutOfRange", "PropertyValueTypeError")
    body = await (await client.get(SERVICE, headers=admin)).json()
    assert body["SessionTimeout"] == 1800


async def test_session_timeout_persists(
    make_client: MakeClient, admin: dict[str, str]
) -> None:
    client = await make_client()
    await client.patch(SERVICE, headers=admin, json={"SessionTimeout": 120})
    await client.close()
    restarted = await make_client(users=False)
    body = await (await restarted.get(SERVICE, headers=admin)).json()
    assert body["SessionTimeout"] == 120


async def test_login(client: TestClient) -> None:
    started = dt.datetime.now(dt.UTC).replace(microsecond=0)
    response = await client.post(
        SESSIONS,
        json={"UserName": "oper", "Password": OPERATOR[1], "Context": "my-tool"},
    )
    assert response.status == 201
    token = response.headers["X-Auth-Token"]
    assert len(token) >= 32
    location = response.headers["Location"]
    body = await response.json()
    assert body["@odata.id"] == location
    assert location == f"{SESSIONS}/{body['Id']}"
    assert body["@odata.type"].startswith("#Session.v1_")
    assert body["UserName"] == "oper"
    assert body["Password"] is None
    assert body["ClientOriginIPAddress"] == "127.0.0.1"
    assert body["Context"] == "my-tool"
    created = dt.datetime.fromisoformat(body["CreatedTime"])
    assert started <= created <= dt.datetime.now(dt.UTC)
    assert "@Message.ExtendedInfo" not in body
    assert token not in await response.text()

    response = await client.get(location, headers=token_header(token))
    assert response.status == 200
    assert (await response.json())["Id"] == body["Id"]


async def test_login_at_members(client: TestClient) -> None:
    response = await client.post(
        f"{SESSIONS}/Members", json={"UserName": "reader", "Password": READONLY[1]}
    )
    assert response.status == 201
    token = response.headers["X-Auth-Token"]
    assert (await client.get(SERVICE, headers=token_header(token))).status == 200


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"UserName": "oper", "Password": "wrong-password"}, 401),
        ({"UserName": "nobody", "Password": "wrong-password"}, 401),
        ({"UserName": "oper"}, 400),
        ({"UserName": "oper", "Password": 5}, 400),
        ({"UserName": ["oper"], "Password": OPERATOR[1]}, 400),
        ({"UserName": "oper", "Password": OPERATOR[1], "Bogus": 1}, 400),
        ({}, 400),
    ],
)
async def test_login_refused(
    client: TestClient, body: dict[str, object], status: int
) -> None:
    response = await client.post(SESSIONS, json=body)
    assert response.status == status
    assert "X-Auth-Token" not in response.headers
    assert "Location" not in response.headers


async def test_logout(client: TestClient) -> None:
    token, uri = await login(client, OPERATOR)
    headers = token_header(token)
    assert (await client.get(SERVICE, headers=headers)).status == 200
    response = await client.delete(uri, headers=headers)
    assert response.status == 204
    assert (await client.get(SERVICE, headers=headers)).status == 401
    assert (await client.get(uri, headers=basic(ADMIN))).status == 404


def _database(config: Config) -> Path:
    return config.state_dir / "bmcd.db"


async def test_tokens_stored_only_as_hashes(client: TestClient, config: Config) -> None:
    tokens = [(await login(client, user))[0] for user in (ADMIN, OPERATOR)]
    # Read the database as an attacker with a copy of the state would.
    with sqlite3.connect(_database(config)) as conn:
        rows = conn.execute("SELECT * FROM sessions").fetchall()
        dump = "\n".join(conn.iterdump())
    # The with block only commits; Python 3.13 warns about unclosed databases.
    conn.close()
    assert len(rows) == 2
    for token in tokens:
        assert token not in dump
        assert hashlib.sha256(token.encode()).hexdigest() in dump
    for path in config.state_dir.iterdir():
        if path.is_file():
            data = path.read_bytes()
            assert not any(token.encode() in data for token in tokens), path


async def test_tokens_survive_restart(make_client: MakeClient) -> None:
    client = await make_client()
    token, uri = await login(client, OPERATOR)
    await client.close()

    restarted = await make_client(users=False)
    headers = token_header(token)
    assert (await restarted.get(SERVICE, headers=headers)).status == 200
    assert (await restarted.get(uri, headers=headers)).status == 200


async def test_idle_session_expires(client: TestClient) -> None:
    token, uri = await login(client, OPERATOR)
    # Below the PATCH minimum of 30 s, so that the test stays short.
    await keys.SETTINGS.get(client.app).update({"session.timeout": 1})
    headers = token_header(token)
    assert (await client.get(SERVICE, headers=headers)).status == 200
    await asyncio.sleep(1.2)
    assert (await client.get(SERVICE, headers=headers)).status == 401
    listed = await (await client.get(SESSIONS, headers=basic(ADMIN))).json()
    assert {"@odata.id": uri} not in listed["Members"]


async def test_users_see_their_own_sessions(client: TestClient) -> None:
    sessions = {
        user[0]: await login(client, user) for user in (ADMIN, OPERATOR, READONLY)
    }
    for user in (OPERATOR, READONLY):
        token, own = sessions[user[0]]
        headers = token_header(token)
        listed = await (await client.get(SESSIONS, headers=headers)).json()
        assert listed["Members"] == [{"@odata.id": own}]
        for name, (_, other) in sessions.items():
            if name == user[0]:
                continue
            assert (await client.get(other, headers=headers)).status == 403
            assert (await client.delete(other, headers=headers)).status == 403
    # Nothing was deleted by those attempts.
    admin = token_header(sessions["root"][0])
    listed = await (await client.get(SESSIONS, headers=admin)).json()
    assert sorted(m["@odata.id"] for m in listed["Members"]) == sorted(
        uri for _, uri in sessions.values()
    )


async def test_basic_user_sees_own_sessions(client: TestClient) -> None:
    _, own = await login(client, READONLY)
    await login(client, OPERATOR)
    listed = await (await client.get(SESSIONS, headers=basic(READONLY))).json()
    assert listed["Members"] == [{"@odata.id": own}]


async def test_administrator_ends_any_session(client: TestClient) -> None:
    token, uri = await login(client, READONLY)
    body = await (await client.get(uri, headers=basic(ADMIN))).json()
    assert body["UserName"] == "reader"
    assert (await client.delete(uri, headers=basic(ADMIN))).status == 204
    assert (await client.get(SERVICE, headers=token_header(token))).status == 401


async def test_session_limit(make_client: MakeClient) -> None:
    client = await make_client(max_sessions=2)
    first, uri = await login(client, OPERATOR)
    await login(client, READONLY)
    response = await client.post(
        SESSIONS, json={"UserName": "root", "Password": ADMIN[1]}
    )
    assert response.status == 503
    assert await error_ids(response) == ["SessionLimitExceeded"]
    assert "X-Auth-Token" not in response.headers
    # Existing sessions and Basic keep working; a logout frees a place.
    assert (await client.get(SERVICE, headers=token_header(first))).status == 200
    assert (await client.get(SERVICE, headers=basic(ADMIN))).status == 200
    await client.delete(uri, headers=token_header(first))
    await login(client, ADMIN)


async def test_session_of_deleted_account_is_gone(client: TestClient) -> None:
    token, uri = await login(client, OPERATOR)
    await client.delete(
        "/redfish/v1/AccountService/Accounts/oper", headers=basic(ADMIN)
    )
    assert (await client.get(SERVICE, headers=token_header(token))).status == 401
    assert (await client.get(uri, headers=basic(ADMIN))).status == 404

"""The request path through the HTTP layer: headers, preconditions, errors."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import pytest
from aiohttp.test_utils import TestClient
from testkit import (
    ADMIN,
    READONLY,
    basic,
    crawl,
    error_ids,
    linked_uris,
    login,
    token_header,
)

from bmcd.generated.schemas import ACTION_PARAMETERS, SPECS
from bmcd.http import keys

MakeClient = Callable[..., Awaitable[TestClient]]
SERVICE = "/redfish/v1/AccountService"
ACCOUNTS = "/redfish/v1/AccountService/Accounts"
JSON_HEADERS = {"Content-Type": "application/json"}


# --- Standard headers ----------------------------------------------------------


async def test_standard_headers(client: TestClient, admin: dict[str, str]) -> None:
    response = await client.get(SERVICE, headers=admin)
    assert response.status == 200
    assert response.headers["OData-Version"] == "4.0"
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert response.headers["Cache-Control"]
    assert response.headers["Allow"] == "GET, HEAD, PATCH"
    body = await response.json()
    namespace = body["@odata.type"][1:].rsplit(".", 1)[0]
    assert response.headers["Link"] == (
        f"<http://redfish.dmtf.org/schemas/v1/{namespace}.json>; rel=describedby"
    )


async def test_error_responses_carry_standard_headers(client: TestClient) -> None:
    response = await client.get(SERVICE)
    assert response.status == 401
    assert response.headers["OData-Version"] == "4.0"
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert response.headers["WWW-Authenticate"].startswith("Basic realm=")


async def test_every_resource_has_allow_and_head(
    client: TestClient, admin: dict[str, str]
) -> None:
    bodies = await crawl(client, admin)
    bodies["/redfish"] = {}
    bodies["/redfish/v1/$metadata"] = {}
    assert len(bodies) > 15
    routes = keys.ROUTES.get(client.app)
    for uri in bodies:
        response = await client.get(uri, headers=admin)
        assert response.status == 200, uri
        allow = response.headers.get("Allow", "")
        methods = {m.strip() for m in allow.split(",")}
        assert {"GET", "HEAD"} <= methods, uri
        found = routes.match(uri)
        assert found is not None
        assert allow == found[0].allow, uri

        head = await client.head(uri, headers=admin)
        assert head.status == 200, uri
        assert await head.read() == b"", uri
        assert head.headers.get("Allow") == allow, uri
        assert head.headers.get("ETag") == response.headers.get("ETag"), uri


async def test_head_of_public_resources_needs_no_credentials(
    client: TestClient,
) -> None:
    for uri in (
        "/redfish",
        "/redfish/v1",
        "/redfish/v1/odata",
        "/redfish/v1/$metadata",
    ):
        response = await client.head(uri)
        assert response.status == 200, uri
        assert await response.read() == b""
    assert (await client.head(SERVICE)).status == 401


async def test_unsupported_method_is_405_with_allow(
    client: TestClient, admin: dict[str, str]
) -> None:
    for method, uri, allow in (
        ("PUT", SERVICE, "GET, HEAD, PATCH"),
        ("DELETE", "/redfish/v1", "GET, HEAD"),
        ("POST", "/redfish/v1/Managers/1", "GET, HEAD, PATCH"),
        ("PATCH", ACCOUNTS, "GET, HEAD, POST"),
    ):
        response = await client.request(method, uri, headers=admin, json={})
        assert response.status == 405, (method, uri)
        assert response.headers["Allow"] == allow
        assert await error_ids(response) == ["OperationNotAllowed"]


async def test_location_on_created(client: TestClient, admin: dict[str, str]) -> None:
    response = await client.post(
        ACCOUNTS,
        headers=admin,
        json={
            "UserName": "newbie",
            "Password": "newbie-password",
            "RoleId": "ReadOnly",
        },
    )
    assert response.status == 201
    location = response.headers["Location"]
    assert location == (await response.json())["@odata.id"]
    assert (await client.get(location, headers=admin)).status == 200


# --- ETags and preconditions ---------------------------------------------------


async def test_etag_header_matches_body(
    client: TestClient, admin: dict[str, str]
) -> None:
    response = await client.get(SERVICE, headers=admin)
    body = await response.json()
    assert response.headers["ETag"] == body["@odata.etag"]
    again = await client.get(SERVICE, headers=admin)
    assert again.headers["ETag"] == response.headers["ETag"]


async def test_etag_changes_with_the_resource(
    client: TestClient, admin: dict[str, str]
) -> None:
    before = (await client.get(SERVICE, headers=admin)).headers["ETag"]
    patched = await client.patch(SERVICE, headers=admin, json={"MinPasswordLength": 10})
    assert patched.status == 200
    after = (await client.get(SERVICE, headers=admin)).headers["ETag"]
    assert after != before
    assert patched.headers["ETag"] == after


async def test_if_none_match(client: TestClient, admin: dict[str, str]) -> None:
    etag = (await client.get(SERVICE, headers=admin)).headers["ETag"]
    response = await client.get(SERVICE, headers={**admin, "If-None-Match": etag})
    assert response.status == 304
    assert await response.read() == b""
    assert response.headers["ETag"] == etag
    other = await client.get(SERVICE, headers={**admin, "If-None-Match": 'W/"other"'})
    assert other.status == 200


async def test_if_match_mismatch_is_412_and_changes_nothing(
    client: TestClient, admin: dict[str, str]
) -> None:
    response = await client.patch(
        SERVICE,
        headers={**admin, "If-Match": 'W/"stale"'},
        json={"MinPasswordLength": 12},
    )
    assert response.status == 412
    assert await error_ids(response) == ["PreconditionFailed"]
    body = await (await client.get(SERVICE, headers=admin)).json()
    assert body["MinPasswordLength"] == 8


async def test_if_match_current_etag_succeeds(
    client: TestClient, admin: dict[str, str]
) -> None:
    etag = (await client.get(SERVICE, headers=admin)).headers["ETag"]
    response = await client.patch(
        SERVICE, headers={**admin, "If-Match": etag}, json={"MinPasswordLength": 12}
    )
    assert response.status == 200
    assert (await response.json())["MinPasswordLength"] == 12

    # The old tag is stale now.
    stale = await client.patch(
        SERVICE, headers={**admin, "If-Match": etag}, json={"MinPasswordLength": 13}
    )
    assert stale.status == 412


async def test_if_match_accepts_strong_form_and_star(
    client: TestClient, admin: dict[str, str]
) -> None:
    etag = (await client.get(SERVICE, headers=admin)).headers["ETag"]
    strong = etag.removeprefix("W/")
    response = await client.patch(
        SERVICE, headers={**admin, "If-Match": strong}, json={"MinPasswordLength": 11}
    )
    assert response.status == 200
    star = await client.patch(
        SERVICE, headers={**admin, "If-Match": "*"}, json={"MinPasswordLength": 9}
    )
    assert star.status == 200


async def test_if_match_is_atomic_with_the_write(
    client: TestClient, admin: dict[str, str]
) -> None:
    etag = (await client.get(SERVICE, headers=admin)).headers["ETag"]
    responses = await asyncio.gather(
        *(
            client.patch(
                SERVICE,
                headers={**admin, "If-Match": etag},
                json={"MinPasswordLength": length},
            )
            for length in (10, 11, 12, 13)
        )
    )
    statuses = sorted(r.status for r in responses)
    # Exactly one writer saw the tag it was given; the others were too late.
    assert statuses == [200, 412, 412, 412]


# --- Request bodies ------------------------------------------------------------


async def test_malformed_json(client: TestClient, admin: dict[str, str]) -> None:
    response = await client.patch(
        SERVICE, data=b'{"MinPasswordLength": ', headers={**admin, **JSON_HEADERS}
    )
    assert response.status == 400
    assert await error_ids(response) == ["MalformedJSON"]


async def test_json_that_is_not_an_object(
    client: TestClient, admin: dict[str, str]
) -> None:
    response = await client.patch(
        SERVICE, data=b"[1, 2]", headers={**admin, **JSON_HEADERS}
    )
    assert response.status == 400


async def test_duplicate_keys_refused(
    client: TestClient, admin: dict[str, str]
) -> None:
    data = b'{"MinPasswordLength": 9, "MinPasswordLength": 10}'
    response = await client.patch(SERVICE, data=data, headers={**admin, **JSON_HEADERS})
    assert response.status == 400
    assert await error_ids(response) == ["PropertyDuplicate"]


async def test_wrong_content_type_is_415(
    client: TestClient, admin: dict[str, str]
) -> None:
    response = await client.patch(
        SERVICE,
        data=b'{"MinPasswordLength": 9}',
        headers={**admin, "Content-Type": "text/plain"},
    )
    assert response.status == 415
    body = await response.json()
    assert body["error"]["@Message.ExtendedInfo"]


async def test_json_with_charset_accepted(
    client: TestClient, admin: dict[str, str]
) -> None:
    response = await client.patch(
        SERVICE,
        data=b'{"MinPasswordLength": 9}',
        headers={**admin, "Content-Type": "application/json; charset=utf-8"},
    )
    assert response.status == 200


async def test_body_too_large_is_413(
    make_client: MakeClient, admin: dict[str, str]
) -> None:
    client = await make_client(max_body_bytes=1024)
    big = b'{"UserName": "' + b"x" * 2000 + b'"}'
    response = await client.post(ACCOUNTS, data=big, headers={**admin, **JSON_HEADERS})
    assert response.status == 413
    assert await error_ids(response) == ["PayloadTooLarge"]

    async def chunks() -> object:
        # No Content-Length: the limit must hold while reading, too.
        for _ in range(4):
            yield b" " * 600

    streamed = await client.post(
        ACCOUNTS, data=chunks(), headers={**admin, **JSON_HEADERS}
    )
    assert streamed.status == 413
    small = await client.get(ACCOUNTS, headers=admin)
    assert small.status == 200


async def test_property_errors(client: TestClient, admin: dict[str, str]) -> None:
    cases = [
        ({"Bogus": 1}, "PropertyUnknown"),
        ({"Id": "x"}, "PropertyNotWritable"),
        ({"SupportedAccountTypes": ["Redfish"]}, "PropertyNotWritable"),
        ({"MinPasswordLength": "ten"}, "PropertyValueTypeError"),
        ({"MinPasswordLength": True}, "PropertyValueTypeError"),
        ({"MinPasswordLength": -1}, "PropertyValueOutOfRange"),
        ({}, "EmptyJSON"),
    ]
    for body, message in cases:
        response = await client.patch(SERVICE, headers=admin, json=body)
        assert response.status == 400, body
        ids = await error_ids(response)
        assert ids == [message], body
        related = (await response.json())["error"]["@Message.ExtendedInfo"][0]
        if body:
            assert related["RelatedProperties"] == [f"#/{next(iter(body))}"]


async def test_value_not_in_list(client: TestClient, admin: dict[str, str]) -> None:
    response = await client.post(
        ACCOUNTS,
        headers=admin,
        json={
            "UserName": "x1",
            "Password": "password-1",
            "RoleId": "ReadOnly",
            "AccountTypes": ["Redfish", "Telepathy"],
        },
    )
    assert response.status == 400
    assert await error_ids(response) == ["PropertyValueNotInList"]


async def test_missing_required_property(
    client: TestClient, admin: dict[str, str]
) -> None:
    response = await client.post(
        ACCOUNTS, headers=admin, json={"UserName": "x2", "RoleId": "ReadOnly"}
    )
    assert response.status == 400
    assert await error_ids(response) == ["PropertyMissing"]
    body = await response.json()
    assert body["error"]["@Message.ExtendedInfo"][0]["MessageArgs"] == ["Password"]


async def test_every_problem_reported_and_nothing_changed(
    client: TestClient, admin: dict[str, str]
) -> None:
    before = await (await client.get(SERVICE, headers=admin)).json()
    response = await client.patch(
        SERVICE,
        headers=admin,
        json={
            "MinPasswordLength": 12,
            "AccountLockoutThreshold": "many",
            "Bogus": True,
        },
    )
    assert response.status == 400
    assert sorted(await error_ids(response)) == [
        "PropertyUnknown",
        "PropertyValueTypeError",
    ]
    after = await (await client.get(SERVICE, headers=admin)).json()
    assert after == before


async def test_partly_refused_account_patch_changes_nothing(
    client: TestClient, admin: dict[str, str]
) -> None:
    uri = f"{ACCOUNTS}/oper"
    before = await (await client.get(uri, headers=admin)).json()
    # The role is fine; the password is too short: neither may happen.
    response = await client.patch(
        uri, headers=admin, json={"RoleId": "ReadOnly", "Password": "x"}
    )
    assert response.status == 400
    after = await (await client.get(uri, headers=admin)).json()
    assert after == before
    still = await client.get(ACCOUNTS, headers=basic(("oper", "oper-password-1")))
    assert still.status == 200


async def test_query_on_write_is_refused(
    client: TestClient, admin: dict[str, str]
) -> None:
    response = await client.patch(
        f"{SERVICE}?$select=Id", headers=admin, json={"MinPasswordLength": 9}
    )
    assert response.status == 400
    assert await error_ids(response) == ["QueryNotSupportedOnOperation"]


async def test_no_body_makes_a_server_fault(
    client: TestClient, admin: dict[str, str]
) -> None:
    # Every property each PATCH and POST knows, with values of every JSON type.
    routes = keys.ROUTES.get(client.app)
    uris = linked_uris(await crawl(client, admin))
    faults = []
    for resource in routes.resources:
        for method in ("PATCH", "POST"):
            if method not in resource.handlers:
                continue
            targets = sorted(
                u for u in uris if (found := routes.match(u)) and found[0] is resource
            )
            uri = targets[0] if targets else resource.path
            if "{" in uri:
                continue
            if "/Actions/" in uri:
                action = "#" + uri.rsplit("/", 1)[1]
                names = list(ACTION_PARAMETERS[resource.entity].get(action, {}))
            else:
                names = list(SPECS.get(resource.entity.removesuffix("Collection"), {}))
            for name in names:
                values = (None, "x", -1, 1.5, [], {}, [None])
                responses = await asyncio.gather(
                    *(
                        client.request(method, uri, headers=admin, json={name: v})
                        for v in values
                    )
                )
                for value, response in zip(values, responses, strict=True):
                    if response.status >= 500 and response.status != 503:
                        faults.append(
                            f"{method} {uri} {name}={value!r}: {response.status}"
                        )
    assert not faults, "\n".join(faults)


# --- Errors of the resource tree -----------------------------------------------


async def test_unknown_resource_is_404(
    client: TestClient, admin: dict[str, str]
) -> None:
    for uri in (
        "/redfish/v1/Nothing",
        "/redfish/v1/AccountService/Accounts/nobody",
        "/redfish/v1/AccountService/Roles/Nobody",
        "/redfish/v1/Managers/2",
        "/redfish/v2",
        "/favicon.ico",
    ):
        response = await client.get(uri, headers=admin)
        assert response.status == 404, uri
        ids = await error_ids(response)
        assert ids[0] in ("ResourceNotFound", "ResourceMissingAtURI"), uri


async def test_unknown_resource_needs_credentials(client: TestClient) -> None:
    # Without credentials, a 404 would tell strangers what exists.
    response = await client.get("/redfish/v1/AccountService/Accounts/nobody")
    assert response.status == 401


async def test_insufficient_privilege_is_403(client: TestClient) -> None:
    response = await client.patch(
        SERVICE, headers=basic(READONLY), json={"MinPasswordLength": 9}
    )
    assert response.status == 403
    assert await error_ids(response) == ["InsufficientPrivilege"]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        basic(("root", "wrong-password")),
        basic(("nobody", "whatever-password")),
        {"Authorization": "Basic !!!not-base64"},
        {"Authorization": "Basic " + "cm9vdA=="},  # "root" with no colon
        {"Authorization": "Bearer something"},
        {"X-Auth-Token": "not-a-token"},
    ],
)
async def test_unauthenticated_is_401(
    client: TestClient, headers: dict[str, str]
) -> None:
    response = await client.get(SERVICE, headers=headers)
    assert response.status == 401
    assert await error_ids(response) == ["NoValidSession"]
    assert "WWW-Authenticate" in response.headers


async def test_handler_fault_is_500_with_generic_body(
    client: TestClient,
    admin: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(call: object) -> dict[str, object]:
        raise ZeroDivisionError("secret internal detail")

    found = keys.ROUTES.get(client.app).match("/redfish/v1/Managers")
    assert found is not None
    monkeypatch.setitem(found[0].handlers, "GET", broken)

    with caplog.at_level(logging.ERROR):
        response = await client.get("/redfish/v1/Managers", headers=admin)
    assert response.status == 500
    assert await error_ids(response) == ["InternalError"]
    assert "secret internal detail" not in await response.text()
    faults = [r for r in caplog.records if r.exc_info]
    assert faults and faults[0].exc_info is not None
    assert faults[0].exc_info[0] is ZeroDivisionError

    # The service carries on.
    assert (await client.get("/redfish/v1/AccountService", headers=admin)).status == 200


# --- Authentication on the wire ------------------------------------------------


async def test_basic_and_session_reach_the_same_resources(
    client: TestClient, admin: dict[str, str]
) -> None:
    token, _ = await login(client, ADMIN)
    with_basic = await crawl(client, admin)
    with_session = await crawl(client, token_header(token))
    assert set(with_session) == set(with_basic)


async def test_failed_login_is_slowed_without_blocking_the_loop(
    make_client: MakeClient,
) -> None:
    client = await make_client(login_failure_delay=0.5)
    started = time.monotonic()
    failing = asyncio.ensure_future(
        client.get(SERVICE, headers=basic(("root", "wrong-password")))
    )
    # Let the failed login reach its delay.
    await asyncio.sleep(0.2)

    before = time.monotonic()
    other = await client.get("/redfish/v1")
    assert other.status == 200
    assert not failing.done()
    assert time.monotonic() - before < 0.25

    refused = await failing
    assert refused.status == 401
    assert time.monotonic() - started >= 0.5


async def test_anonymous_expand_of_the_root_shows_no_protected_resource(
    client: TestClient,
) -> None:
    for option in (".", "*", "~", ".($levels=3)"):
        response = await client.get("/redfish/v1", params={"$expand": option})
        assert response.status == 200, option
        body = await response.json()
        # Protected resources stay links: nothing but @odata.id inside.
        assert body["AccountService"] == {"@odata.id": "/redfish/v1/AccountService"}
        assert set(body["Managers"]) == {"@odata.id"}


async def test_expand_of_the_root_with_credentials_expands(
    client: TestClient, admin: dict[str, str]
) -> None:
    response = await client.get("/redfish/v1", params={"$expand": "."}, headers=admin)
    body = await response.json()
    assert "MinPasswordLength" in body["AccountService"]


@pytest.mark.parametrize(
    "raw",
    [
        b'{"UserName": "\\ud800", "Password": "x"}',
        b'{"\\ud800": 1, "UserName": "a", "Password": "x"}',
    ],
)
async def test_lone_surrogates_are_malformed_json(
    client: TestClient, raw: bytes
) -> None:
    response = await client.post(
        "/redfish/v1/SessionService/Sessions",
        data=raw,
        headers={"Content-Type": "application/json"},
    )
    assert response.status == 400
    assert (await response.json())["error"]["code"].endswith("MalformedJSON")


async def test_a_token_bmcd_never_issued_is_refused_cleanly(client: TestClient) -> None:
    for token in ("x" * 64, "é", "0" * 63, "not a token"):
        response = await client.get(
            "/redfish/v1/SessionService", headers={"X-Auth-Token": token}
        )
        assert response.status == 401


async def test_if_none_match_star(client: TestClient, admin: dict[str, str]) -> None:
    response = await client.get(
        "/redfish/v1/SessionService", headers={**admin, "If-None-Match": "*"}
    )
    assert response.status == 304


async def test_server_header_names_no_versions(client: TestClient) -> None:
    response = await client.get("/redfish/v1")
    assert response.headers["Server"] == "bmcd"


async def test_if_none_match_star_refuses_a_write_to_an_existing_resource(
    client: TestClient, admin: dict[str, str]
) -> None:
    before = await (
        await client.get("/redfish/v1/SessionService", headers=admin)
    ).json()
    response = await client.patch(
        "/redfish/v1/SessionService",
        json={"SessionTimeout": before["SessionTimeout"] + 60},
        headers={**admin, "If-None-Match": "*"},
    )
    assert response.status == 412
    after = await (await client.get("/redfish/v1/SessionService", headers=admin)).json()
    assert after["SessionTimeout"] == before["SessionTimeout"]

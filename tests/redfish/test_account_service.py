"""AccountService: policy, lockout, accounts, roles and PasswordChangeRequired."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from testkit import (
    ADMIN,
    OPERATOR,
    READONLY,
    basic,
    error_ids,
    login,
    token_header,
)

import bmcd.core.accounts
from bmcd.core import privileges

MakeClient = Callable[..., Awaitable[TestClient]]
SERVICE = "/redfish/v1/AccountService"
ACCOUNTS = "/redfish/v1/AccountService/Accounts"
ROLES = "/redfish/v1/AccountService/Roles"
SESSIONS = "/redfish/v1/SessionService/Sessions"


async def _create(
    client: TestClient,
    admin: dict[str, str],
    name: str,
    password: str = "a-good-password",
    role: str = "ReadOnly",
    **extra: Any,
) -> Any:
    response = await client.post(
        ACCOUNTS,
        headers=admin,
        json={"UserName": name, "Password": password, "RoleId": role, **extra},
    )
    assert response.status == 201, await response.text()
    return await response.json()


async def _status(client: TestClient, user: tuple[str, str], uri: str = SERVICE) -> int:
    return (await client.get(uri, headers=basic(user))).status


async def _account(client: TestClient, admin: dict[str, str], name: str) -> Any:
    return await (await client.get(f"{ACCOUNTS}/{name}", headers=admin)).json()


# --- Policy --------------------------------------------------------------------


async def test_account_service_defaults(
    client: TestClient, admin: dict[str, str]
) -> None:
    body = await (await client.get(SERVICE, headers=admin)).json()
    assert body["MinPasswordLength"] == 8
    assert body["MaxPasswordLength"] == 64
    assert body["AccountLockoutThreshold"] == 5
    assert body["AccountLockoutDuration"] == 300
    assert body["AccountLockoutCounterResetAfter"] == 300
    assert body["SupportedAccountTypes"] == ["Redfish"]
    assert body["ServiceEnabled"] is True
    assert body["Accounts"] == {"@odata.id": ACCOUNTS}
    assert body["Roles"] == {"@odata.id": ROLES}


async def test_policy_patch_persists(
    make_client: MakeClient, admin: dict[str, str]
) -> None:
    client = await make_client()
    change = {
        "MinPasswordLength": 12,
        "MaxPasswordLength": 40,
        "AccountLockoutThreshold": 3,
        "AccountLockoutDuration": 600,
        "AccountLockoutCounterResetAfter": 120,
        "PasswordExpirationDays": 90,
    }
    response = await client.patch(SERVICE, headers=admin, json=change)
    assert response.status == 200
    body = await response.json()
    assert {k: body[k] for k in change} == change
    await client.close()

    restarted = await make_client(users=False)
    body = await (await restarted.get(SERVICE, headers=admin)).json()
    assert {k: body[k] for k in change} == change


@pytest.mark.parametrize(
    "change",
    [
        {"MinPasswordLength": 0},
        {"MinPasswordLength": 20, "MaxPasswordLength": 10},
        {"MaxPasswordLength": 100000},
        {"AccountLockoutDuration": 10, "AccountLockoutCounterResetAfter": 60},
        {"PasswordExpirationDays": 0},
        {"SupportedAccountTypes": ["Redfish", "IPMI"]},
        # Beyond int64, and beyond the documented bounds.
        {"AccountLockoutThreshold": 99999999999999999999},
        {"AccountLockoutThreshold": 1001},
        {"AccountLockoutDuration": 99999999999999999999},
        {"AccountLockoutDuration": 365 * 24 * 3600 + 1},
        {"AccountLockoutCounterResetAfter": 99999999999999999999},
        {"AccountLockoutDuration": 0, "AccountLockoutCounterResetAfter": 10**10},
        {"PasswordExpirationDays": 3651},
        {"PasswordExpirationDays": 99999999999999999999},
    ],
)
async def test_policy_patch_refused(
    client: TestClient, admin: dict[str, str], change: dict[str, Any]
) -> None:
    before = await (await client.get(SERVICE, headers=admin)).json()
    response = await client.patch(SERVICE, headers=admin, json=change)
    assert response.status == 400
    after = await (await client.get(SERVICE, headers=admin)).json()
    assert after == before


@pytest.mark.parametrize(
    ("prop", "value"),
    [
        ("AccountLockoutThreshold", 1001),
        ("AccountLockoutDuration", 31536001),
        ("AccountLockoutCounterResetAfter", 99999999999999999999),
        ("PasswordExpirationDays", 3651),
    ],
)
async def test_policy_out_of_range_names_the_value(
    client: TestClient, admin: dict[str, str], prop: str, value: int
) -> None:
    response = await client.patch(SERVICE, headers=admin, json={prop: value})
    assert response.status == 400
    [message] = (await response.json())["error"]["@Message.ExtendedInfo"]
    assert message["MessageId"].endswith(".PropertyValueOutOfRange")
    assert message["MessageArgs"] == [str(value), prop]
    assert message["RelatedProperties"] == [f"#/{prop}"]


async def test_policy_bounds_accepted(
    client: TestClient, admin: dict[str, str]
) -> None:
    year = 365 * 24 * 3600
    change = {
        "AccountLockoutThreshold": 1000,
        "AccountLockoutDuration": year,
        "AccountLockoutCounterResetAfter": year,
        "PasswordExpirationDays": 3650,
    }
    response = await client.patch(SERVICE, headers=admin, json=change)
    assert response.status == 200
    body = await response.json()
    assert {k: body[k] for k in change} == change
    low = {
        "AccountLockoutThreshold": 0,
        "AccountLockoutDuration": 0,
        "AccountLockoutCounterResetAfter": 0,
        "PasswordExpirationDays": 1,
    }
    response = await client.patch(SERVICE, headers=admin, json=low)
    assert response.status == 200


@pytest.mark.parametrize(
    ("change", "args"),
    [
        ({"MaxPasswordLength": 4}, ["MaxPasswordLength", "MinPasswordLength"]),
        ({"MinPasswordLength": 100}, ["MinPasswordLength", "MaxPasswordLength"]),
        (
            {"MinPasswordLength": 20, "MaxPasswordLength": 10},
            ["MinPasswordLength", "MaxPasswordLength"],
        ),
        (
            {"AccountLockoutDuration": 10},
            ["AccountLockoutDuration", "AccountLockoutCounterResetAfter"],
        ),
        (
            {"AccountLockoutCounterResetAfter": 301},
            ["AccountLockoutCounterResetAfter", "AccountLockoutDuration"],
        ),
    ],
)
async def test_policy_conflict_names_the_written_property(
    client: TestClient, admin: dict[str, str], change: dict[str, int], args: list[str]
) -> None:
    response = await client.patch(SERVICE, headers=admin, json=change)
    assert response.status == 400
    [message] = (await response.json())["error"]["@Message.ExtendedInfo"]
    assert message["MessageId"].endswith(".PropertyValueConflict")
    assert message["MessageArgs"] == args
    assert message["RelatedProperties"] == [f"#/{args[0]}"]


async def test_password_length_enforced(
    client: TestClient, admin: dict[str, str]
) -> None:
    await client.patch(
        SERVICE, headers=admin, json={"MinPasswordLength": 10, "MaxPasswordLength": 12}
    )
    for password in ("nine-char", "thirteen-char"):
        response = await client.post(
            ACCOUNTS,
            headers=admin,
            json={"UserName": "x", "Password": password, "RoleId": "ReadOnly"},
        )
        assert response.status == 400, password
        assert await error_ids(response) == ["PasswordIncorrectLength"]
    await _create(client, admin, "x", password="ten-chars!")

    response = await client.patch(
        f"{ACCOUNTS}/x", headers=admin, json={"Password": "short"}
    )
    assert response.status == 400
    assert await _status(client, ("x", "ten-chars!")) == 200


async def test_lockout_after_threshold(
    client: TestClient, admin: dict[str, str]
) -> None:
    await client.patch(
        SERVICE,
        headers=admin,
        json={
            "AccountLockoutThreshold": 3,
            "AccountLockoutDuration": 600,
            "AccountLockoutCounterResetAfter": 600,
        },
    )
    # Remembered credentials must not outlive the lockout either.
    assert await _status(client, OPERATOR) == 200

    for _ in range(2):
        assert await _status(client, ("oper", "wrong-password")) == 401
    assert (await _account(client, admin, "oper"))["Locked"] is False
    assert await _status(client, ("oper", "wrong-password")) == 401
    assert (await _account(client, admin, "oper"))["Locked"] is True

    # Locked: the right password is refused, on Basic and for a new session.
    assert await _status(client, OPERATOR) == 401
    response = await client.post(
        SESSIONS, json={"UserName": "oper", "Password": OPERATOR[1]}
    )
    assert response.status == 401
    # Others are not affected.
    assert await _status(client, READONLY) == 200

    response = await client.patch(
        f"{ACCOUNTS}/oper", headers=admin, json={"Locked": False}
    )
    assert response.status == 200
    assert (await response.json())["Locked"] is False
    assert await _status(client, OPERATOR) == 200


async def test_lockout_keeps_open_sessions(
    client: TestClient, admin: dict[str, str]
) -> None:
    # Someone else's guessing must not log the real user out.
    token, _ = await login(client, OPERATOR)
    await client.patch(
        SERVICE,
        headers=admin,
        json={
            "AccountLockoutThreshold": 2,
            "AccountLockoutDuration": 600,
            "AccountLockoutCounterResetAfter": 600,
        },
    )
    for _ in range(2):
        assert await _status(client, ("oper", "wrong-password")) == 401
    assert (await _account(client, admin, "oper"))["Locked"] is True
    response = await client.get(SERVICE, headers=token_header(token))
    assert response.status == 200


async def test_lockout_ends_after_duration(
    client: TestClient, admin: dict[str, str]
) -> None:
    await client.patch(
        SERVICE,
        headers=admin,
        json={
            "AccountLockoutThreshold": 2,
            "AccountLockoutDuration": 1,
            "AccountLockoutCounterResetAfter": 1,
        },
    )
    for _ in range(2):
        assert await _status(client, ("reader", "wrong-password")) == 401
    assert await _status(client, READONLY) == 401
    await asyncio.sleep(1.1)
    assert (await _account(client, admin, "reader"))["Locked"] is False
    assert await _status(client, READONLY) == 200


async def test_lockout_counter_resets(
    client: TestClient, admin: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    await client.patch(
        SERVICE,
        headers=admin,
        json={
            "AccountLockoutThreshold": 2,
            "AccountLockoutDuration": 600,
            "AccountLockoutCounterResetAfter": 60,
        },
    )
    assert await _status(client, ("reader", "wrong-password")) == 401
    _shift_backend_clock(monkeypatch, 61)
    assert await _status(client, ("reader", "wrong-password")) == 401
    # The first failure was forgotten: one failure is not two.
    assert await _status(client, READONLY) == 200


async def test_lockout_counts_from_the_last_failure(
    client: TestClient, admin: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    await client.patch(
        SERVICE,
        headers=admin,
        json={
            "AccountLockoutThreshold": 3,
            "AccountLockoutDuration": 600,
            "AccountLockoutCounterResetAfter": 60,
        },
    )
    # One guess every 50 s: never 60 s after the last failure, so it counts.
    for step in (0, 50, 100):
        _shift_backend_clock(monkeypatch, step)
        assert await _status(client, ("reader", "wrong-password")) == 401
    assert await _status(client, READONLY) == 401
    assert (await _account(client, admin, "reader"))["Locked"] is True


async def test_lockout_duration_zero_never_locks(
    client: TestClient, admin: dict[str, str]
) -> None:
    # AccountService: "If this value is 0, no lockout shall occur."
    response = await client.patch(
        SERVICE,
        headers=admin,
        json={
            "AccountLockoutThreshold": 2,
            "AccountLockoutDuration": 0,
            "AccountLockoutCounterResetAfter": 0,
        },
    )
    assert response.status == 200
    for _ in range(4):
        assert await _status(client, ("reader", "wrong-password")) == 401
    assert await _status(client, READONLY) == 200
    assert (await _account(client, admin, "reader"))["Locked"] is False


async def test_lockout_threshold_zero_never_locks(
    client: TestClient, admin: dict[str, str]
) -> None:
    await client.patch(SERVICE, headers=admin, json={"AccountLockoutThreshold": 0})
    for _ in range(8):
        assert await _status(client, ("reader", "wrong-password")) == 401
    assert await _status(client, READONLY) == 200


async def test_locked_true_is_refused(
    client: TestClient, admin: dict[str, str]
) -> None:
    response = await client.patch(
        f"{ACCOUNTS}/oper", headers=admin, json={"Locked": True}
    )
    assert response.status == 400
    assert (await _account(client, admin, "oper"))["Locked"] is False


def _shift_backend_clock(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    import time

    import bmcd_backends.embedded.accounts as embedded

    class Clock:
        @staticmethod
        def time() -> float:
            return time.time() + seconds

    monkeypatch.setattr(embedded, "time", Clock)


class _Later(dt.datetime):
    """datetime whose now() runs ``shift`` ahead (password expiry tests)."""

    shift = dt.timedelta(0)

    @classmethod
    def now(cls, tz: dt.tzinfo | None = None) -> _Later:
        moment = dt.datetime.now(tz) + cls.shift
        return cls.fromtimestamp(moment.timestamp(), tz)


async def test_password_expiration(
    client: TestClient, admin: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    before = await _account(client, admin, "oper")
    assert before["PasswordExpiration"] is None

    await client.patch(SERVICE, headers=admin, json={"PasswordExpirationDays": 30})
    account = await _account(client, admin, "oper")
    expires = dt.datetime.fromisoformat(account["PasswordExpiration"])
    left = expires - dt.datetime.now(dt.UTC)
    assert dt.timedelta(days=29) < left <= dt.timedelta(days=30)
    assert account["PasswordChangeRequired"] is False
    assert await _status(client, OPERATOR) == 200

    # 31 days later the password has expired: PasswordChangeRequired.
    monkeypatch.setattr(_Later, "shift", dt.timedelta(days=31))
    monkeypatch.setattr(bmcd.core.accounts, "datetime", _Later)
    # Every password expired, the administrator's too; one may read one's own.
    account = await _account(client, basic(OPERATOR), "oper")
    assert account["PasswordChangeRequired"] is True
    response = await client.get(SERVICE, headers=basic(OPERATOR))
    assert response.status == 403
    assert await error_ids(response) == ["PasswordChangeRequired"]
    response = await client.post(
        SESSIONS, json={"UserName": "oper", "Password": OPERATOR[1]}
    )
    assert response.status == 201
    messages = (await response.json())["@Message.ExtendedInfo"]
    assert messages[0]["MessageId"].endswith(".PasswordChangeRequired")

    # Setting the same password again is no change.
    response = await client.patch(
        f"{ACCOUNTS}/oper", headers=basic(OPERATOR), json={"Password": OPERATOR[1]}
    )
    assert response.status == 400
    assert await error_ids(response) == ["PasswordReuseTooRecent"]
    account = await _account(client, basic(OPERATOR), "oper")
    assert account["PasswordChangeRequired"] is True

    # Changing it starts a new period.
    response = await client.patch(
        f"{ACCOUNTS}/oper",
        headers=basic(OPERATOR),
        json={"Password": "a-fresh-password"},
    )
    assert response.status == 200
    monkeypatch.setattr(_Later, "shift", dt.timedelta(days=1))
    assert await _status(client, ("oper", "a-fresh-password")) == 200


async def test_password_expiration_switched_off(
    client: TestClient, admin: dict[str, str]
) -> None:
    await client.patch(SERVICE, headers=admin, json={"PasswordExpirationDays": 5})
    response = await client.patch(
        SERVICE, headers=admin, json={"PasswordExpirationDays": None}
    )
    assert response.status == 200
    assert (await response.json())["PasswordExpirationDays"] is None
    assert (await _account(client, admin, "oper"))["PasswordExpiration"] is None


# --- Accounts ------------------------------------------------------------------


async def test_create_account(client: TestClient, admin: dict[str, str]) -> None:
    response = await client.post(
        ACCOUNTS,
        headers=admin,
        json={
            "UserName": "alice",
            "Password": "alice-password",
            "RoleId": "Operator",
            "Enabled": True,
            "AccountTypes": ["Redfish"],
        },
    )
    assert response.status == 201
    body = await response.json()
    uri = response.headers["Location"]
    assert body["@odata.id"] == uri
    assert body["@odata.type"].startswith("#ManagerAccount.v1_")
    assert body["UserName"] == "alice"
    assert body["RoleId"] == "Operator"
    assert body["Enabled"] is True
    assert body["Locked"] is False
    assert body["Password"] is None
    assert body["AccountTypes"] == ["Redfish"]
    assert body["PasswordChangeRequired"] is False
    assert body["Links"]["Role"] == {"@odata.id": f"{ROLES}/Operator"}

    listed = await (await client.get(ACCOUNTS, headers=admin)).json()
    assert {"@odata.id": uri} in listed["Members"]
    assert listed["Members@odata.count"] == 4
    assert await _status(client, ("alice", "alice-password")) == 200


async def test_create_account_at_members(
    client: TestClient, admin: dict[str, str]
) -> None:
    response = await client.post(
        f"{ACCOUNTS}/Members",
        headers=admin,
        json={"UserName": "bob", "Password": "bob-password", "RoleId": "ReadOnly"},
    )
    assert response.status == 201
    assert response.headers["Location"] == f"{ACCOUNTS}/bob"
    assert await _status(client, ("bob", "bob-password")) == 200


async def test_create_disabled_account(
    client: TestClient, admin: dict[str, str]
) -> None:
    await _create(client, admin, "carol", password="carol-password", Enabled=False)
    assert await _status(client, ("carol", "carol-password")) == 401


async def test_password_is_always_null(
    client: TestClient, admin: dict[str, str]
) -> None:
    created = await _create(client, admin, "dave", password="dave-password")
    assert created["Password"] is None
    patched = await client.patch(
        f"{ACCOUNTS}/dave", headers=admin, json={"Password": "dave-password-2"}
    )
    assert (await patched.json())["Password"] is None
    for uri in (f"{ACCOUNTS}/dave", f"{ACCOUNTS}?$expand=."):
        text = await (await client.get(uri, headers=admin)).text()
        assert "dave-password" not in text
    body = await _account(client, admin, "dave")
    assert body["Password"] is None


async def test_passwords_never_logged(
    client: TestClient, admin: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    await _create(client, admin, "erin", password="erin-secret-1")
    await client.patch(
        f"{ACCOUNTS}/erin", headers=admin, json={"Password": "erin-secret-2"}
    )
    await _status(client, ("erin", "erin-secret-3-wrong"))
    await client.post(SESSIONS, json={"UserName": "erin", "Password": "erin-secret-2"})
    assert "erin-secret" not in caplog.text


async def test_long_user_name_is_cut_short_in_the_log(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    name = "n" * 500_000
    response = await client.post(
        SESSIONS, json={"UserName": name, "Password": "whatever-password"}
    )
    assert response.status == 401
    [record] = [r for r in caplog.records if "refused" in r.getMessage()]
    line = record.getMessage()
    assert len(line) < 300
    assert "n" * 64 in line and "n" * 65 not in line
    assert "500000 characters" in line


async def test_duplicate_user_name_is_409(
    client: TestClient, admin: dict[str, str]
) -> None:
    response = await client.post(
        ACCOUNTS,
        headers=admin,
        json={
            "UserName": "oper",
            "Password": "another-password",
            "RoleId": "Administrator",
        },
    )
    assert response.status == 409
    assert await error_ids(response) == ["ResourceAlreadyExists"]
    account = await _account(client, admin, "oper")
    assert account["RoleId"] == "Operator"
    assert await _status(client, OPERATOR) == 200
    assert await _status(client, ("oper", "another-password")) == 401


async def test_rename_to_taken_name_is_409(
    client: TestClient, admin: dict[str, str]
) -> None:
    response = await client.patch(
        f"{ACCOUNTS}/oper", headers=admin, json={"UserName": "reader"}
    )
    assert response.status == 409
    assert await _status(client, OPERATOR) == 200


async def test_unknown_role_refused(client: TestClient, admin: dict[str, str]) -> None:
    response = await client.post(
        ACCOUNTS,
        headers=admin,
        json={"UserName": "frank", "Password": "frank-password", "RoleId": "Wizard"},
    )
    assert response.status == 400
    assert await error_ids(response) == ["PropertyValueNotInList"]
    assert (await client.get(f"{ACCOUNTS}/frank", headers=admin)).status == 404

    response = await client.patch(
        f"{ACCOUNTS}/oper", headers=admin, json={"RoleId": "Wizard"}
    )
    assert response.status == 400
    assert (await _account(client, admin, "oper"))["RoleId"] == "Operator"


BAD_NAMES = ["", "a/b", "with space", "x" * 33, "x" * 300, "semi:colon", "a\nb"]


@pytest.mark.parametrize("name", [*BAD_NAMES, ".", ".."])
async def test_bad_user_name_refused(
    client: TestClient, admin: dict[str, str], name: str
) -> None:
    response = await client.post(
        ACCOUNTS,
        headers=admin,
        json={"UserName": name, "Password": "good-password", "RoleId": "ReadOnly"},
    )
    assert response.status == 400
    assert await error_ids(response) == ["PropertyValueFormatError"]
    listed = await (await client.get(ACCOUNTS, headers=admin)).json()
    assert listed["Members@odata.count"] == 3


@pytest.mark.parametrize("name", [*BAD_NAMES, ".", ".."])
async def test_rename_to_bad_user_name_refused(
    client: TestClient, admin: dict[str, str], name: str
) -> None:
    response = await client.patch(
        f"{ACCOUNTS}/reader", headers=admin, json={"UserName": name}
    )
    assert response.status == 400
    assert await error_ids(response) == ["PropertyValueFormatError"]
    assert await _status(client, READONLY) == 200


async def test_dotted_user_names_work(
    client: TestClient, admin: dict[str, str]
) -> None:
    # Only the dot-segments themselves are refused.
    for name in ("j.doe", "..."):
        await _create(client, admin, name)
        assert (await _account(client, admin, name))["UserName"] == name


async def test_change_password(client: TestClient, admin: dict[str, str]) -> None:
    response = await client.patch(
        f"{ACCOUNTS}/oper", headers=admin, json={"Password": "oper-password-2"}
    )
    assert response.status == 200
    assert await _status(client, OPERATOR) == 401
    assert await _status(client, ("oper", "oper-password-2")) == 200


@pytest.mark.parametrize(
    "password", ["with:colons:in-it", "pässwörd-ünïcode", " spaced out "]
)
async def test_any_password_works_with_basic_and_sessions(
    client: TestClient, admin: dict[str, str], password: str
) -> None:
    await _create(client, admin, "pat", password=password)
    assert await _status(client, ("pat", password)) == 200
    await login(client, ("pat", password))


async def test_own_password_patch_with_etag(client: TestClient) -> None:
    uri = f"{ACCOUNTS}/reader"
    etag = (await client.get(uri, headers=basic(READONLY))).headers["ETag"]
    response = await client.patch(
        uri,
        headers={**basic(READONLY), "If-Match": etag},
        json={"Password": "reader-password-2", "@odata.etag": etag},
    )
    assert response.status == 200
    assert await _status(client, ("reader", "reader-password-2")) == 200


async def test_change_role(client: TestClient, admin: dict[str, str]) -> None:
    assert (
        await client.patch(
            SERVICE, headers=basic(OPERATOR), json={"MinPasswordLength": 9}
        )
    ).status == 403
    response = await client.patch(
        f"{ACCOUNTS}/oper", headers=admin, json={"RoleId": "Administrator"}
    )
    assert response.status == 200
    body = await response.json()
    assert body["RoleId"] == "Administrator"
    assert body["Links"]["Role"] == {"@odata.id": f"{ROLES}/Administrator"}
    assert (
        await client.patch(
            SERVICE, headers=basic(OPERATOR), json={"MinPasswordLength": 9}
        )
    ).status == 200


async def test_disable_account_ends_its_sessions(
    client: TestClient, admin: dict[str, str]
) -> None:
    token, _ = await login(client, OPERATOR)
    response = await client.patch(
        f"{ACCOUNTS}/oper", headers=admin, json={"Enabled": False}
    )
    assert response.status == 200
    assert (await response.json())["Enabled"] is False
    assert (await client.get(SERVICE, headers=token_header(token))).status == 401
    assert await _status(client, OPERATOR) == 401

    await client.patch(f"{ACCOUNTS}/oper", headers=admin, json={"Enabled": True})
    assert await _status(client, OPERATOR) == 200


async def test_rename_account(client: TestClient, admin: dict[str, str]) -> None:
    response = await client.patch(
        f"{ACCOUNTS}/reader", headers=admin, json={"UserName": "viewer"}
    )
    assert response.status == 200
    uri = (await response.json())["@odata.id"]
    assert (await client.get(uri, headers=admin)).status == 200
    assert await _status(client, ("viewer", READONLY[1])) == 200
    assert await _status(client, READONLY) == 401


async def test_delete_account(client: TestClient, admin: dict[str, str]) -> None:
    token, _ = await login(client, READONLY)
    response = await client.delete(f"{ACCOUNTS}/reader", headers=admin)
    assert response.status == 204
    assert (await client.get(f"{ACCOUNTS}/reader", headers=admin)).status == 404
    assert await _status(client, READONLY) == 401
    assert (await client.get(SERVICE, headers=token_header(token))).status == 401
    again = await client.delete(f"{ACCOUNTS}/reader", headers=admin)
    assert again.status == 404


async def test_last_administrator_is_kept(
    client: TestClient, admin: dict[str, str]
) -> None:
    uri = f"{ACCOUNTS}/root"
    before = await _account(client, admin, "root")
    refused = [
        (await client.delete(uri, headers=admin), "ResourceCannotBeDeleted"),
        (
            await client.patch(uri, headers=admin, json={"RoleId": "Operator"}),
            "PropertyValueConflict",
        ),
        (
            await client.patch(uri, headers=admin, json={"Enabled": False}),
            "PropertyValueConflict",
        ),
        (
            await client.patch(
                uri,
                headers=admin,
                json={"RoleId": "ReadOnly", "Password": "a-new-password"},
            ),
            "PropertyValueConflict",
        ),
    ]
    for response, message in refused:
        assert response.status == 409
        assert await error_ids(response) == [message]
    assert await _account(client, admin, "root") == before
    assert await _status(client, ADMIN) == 200


async def test_a_disabled_administrator_does_not_count(
    client: TestClient, admin: dict[str, str]
) -> None:
    await _create(
        client,
        admin,
        "spare",
        password="spare-password",
        role="Administrator",
        Enabled=False,
    )
    response = await client.patch(
        f"{ACCOUNTS}/root", headers=admin, json={"RoleId": "Operator"}
    )
    assert response.status == 409


async def test_administrator_can_go_when_another_remains(
    client: TestClient, admin: dict[str, str]
) -> None:
    await _create(
        client, admin, "spare", password="spare-password", role="Administrator"
    )
    response = await client.patch(
        f"{ACCOUNTS}/root", headers=admin, json={"RoleId": "Operator"}
    )
    assert response.status == 200
    spare = basic(("spare", "spare-password"))
    # Now spare is the last one.
    response = await client.delete(f"{ACCOUNTS}/spare", headers=spare)
    assert response.status == 409
    response = await client.delete(f"{ACCOUNTS}/root", headers=spare)
    assert response.status == 204


async def test_service_disabled(client: TestClient, admin: dict[str, str]) -> None:
    token, _ = await login(client, READONLY)
    response = await client.patch(
        SERVICE, headers=admin, json={"ServiceEnabled": False}
    )
    assert response.status == 200
    # No new sessions; established ones and HTTP Basic carry on.
    response = await client.post(
        SESSIONS, json={"UserName": "oper", "Password": OPERATOR[1]}
    )
    assert response.status == 503
    assert await error_ids(response) == ["ServiceDisabled"]
    assert "X-Auth-Token" not in response.headers
    assert (await client.get(SERVICE, headers=token_header(token))).status == 200
    assert await _status(client, OPERATOR) == 200
    response = await client.post(
        ACCOUNTS,
        headers=admin,
        json={"UserName": "gina", "Password": "gina-password", "RoleId": "ReadOnly"},
    )
    assert response.status == 503
    assert await error_ids(response) == ["ServiceDisabled"]
    # Changing one's own password keeps working.
    response = await client.patch(
        f"{ACCOUNTS}/reader",
        headers=basic(READONLY),
        json={"Password": "reader-password-2"},
    )
    assert response.status == 200
    # Until it is enabled again.
    response = await client.patch(SERVICE, headers=admin, json={"ServiceEnabled": True})
    assert response.status == 200
    await login(client, OPERATOR)


# --- Reading one's own account -------------------------------------------------


async def test_users_see_only_their_own_account(client: TestClient) -> None:
    for user in (OPERATOR, READONLY):
        listed = await (await client.get(ACCOUNTS, headers=basic(user))).json()
        assert listed["Members"] == [{"@odata.id": f"{ACCOUNTS}/{user[0]}"}]
        own = await client.get(f"{ACCOUNTS}/{user[0]}", headers=basic(user))
        assert own.status == 200
        other = await client.get(f"{ACCOUNTS}/root", headers=basic(user))
        assert other.status == 403


async def test_users_change_their_own_password_only(client: TestClient) -> None:
    response = await client.patch(
        f"{ACCOUNTS}/reader",
        headers=basic(READONLY),
        json={"Password": "reader-password-2"},
    )
    assert response.status == 200
    reader = basic(("reader", "reader-password-2"))
    for body in (
        {"RoleId": "Administrator"},
        {"Enabled": True},
        {"Password": "reader-password-3", "RoleId": "ReadOnly"},
    ):
        response = await client.patch(f"{ACCOUNTS}/reader", headers=reader, json=body)
        assert response.status == 403, body
    response = await client.patch(
        f"{ACCOUNTS}/oper", headers=reader, json={"Password": "hijacked-password"}
    )
    assert response.status == 403
    assert await _status(client, OPERATOR) == 200


# --- PasswordChangeRequired ----------------------------------------------------


async def test_password_change_required_flow(
    client: TestClient, admin: dict[str, str]
) -> None:
    await _create(
        client,
        admin,
        "newop",
        password="initial-password",
        role="Operator",
        PasswordChangeRequired=True,
    )
    own = f"{ACCOUNTS}/newop"

    response = await client.post(
        SESSIONS, json={"UserName": "newop", "Password": "initial-password"}
    )
    assert response.status == 201
    session_uri = response.headers["Location"]
    token = token_header(response.headers["X-Auth-Token"])
    messages = (await response.json())["@Message.ExtendedInfo"]
    assert messages[0]["MessageId"].endswith(".PasswordChangeRequired")
    assert messages[0]["MessageArgs"] == [own]

    body = await (await client.get(own, headers=token)).json()
    assert body["PasswordChangeRequired"] is True
    assert (await client.get(session_uri, headers=token)).status == 200
    assert (await client.get("/redfish/v1", headers=token)).status == 200
    for method, uri, json in (
        ("GET", SERVICE, None),
        ("GET", ACCOUNTS, None),
        ("GET", "/redfish/v1/Managers/1", None),
        ("GET", SESSIONS, None),
        ("GET", f"{ROLES}/Operator", None),
        ("PATCH", own, {"Enabled": True}),
    ):
        response = await client.request(method, uri, headers=token, json=json)
        assert response.status == 403, uri
        ids = await error_ids(response)
        assert ids == ["PasswordChangeRequired"], uri
    # Basic behaves the same.
    plain = basic(("newop", "initial-password"))
    response = await client.get(SERVICE, headers=plain)
    assert response.status == 403
    assert (await client.get(own, headers=plain)).status == 200

    response = await client.patch(
        own, headers=token, json={"Password": "changed-password"}
    )
    assert response.status == 200
    assert (await response.json())["PasswordChangeRequired"] is False
    changed = basic(("newop", "changed-password"))
    assert (await client.get(SERVICE, headers=changed)).status == 200
    assert (await client.get(SERVICE, headers=token)).status == 200


async def test_initial_password_cannot_be_set_again(
    client: TestClient, admin: dict[str, str]
) -> None:
    await _create(
        client,
        admin,
        "newop",
        password="initial-password",
        PasswordChangeRequired=True,
    )
    own = f"{ACCOUNTS}/newop"
    token, _ = await login(client, ("newop", "initial-password"))
    response = await client.patch(
        own, headers=token_header(token), json={"Password": "initial-password"}
    )
    assert response.status == 400
    assert await error_ids(response) == ["PasswordReuseTooRecent"]
    # Still a one-time password: nothing but a real change will do.
    body = await (await client.get(own, headers=token_header(token))).json()
    assert body["PasswordChangeRequired"] is True
    response = await client.get(SERVICE, headers=basic(("newop", "initial-password")))
    assert response.status == 403
    # An administrator cannot set it again for the account either.
    response = await client.patch(
        own, headers=admin, json={"Password": "initial-password"}
    )
    assert response.status == 400
    assert await error_ids(response) == ["PasswordReuseTooRecent"]


async def test_password_change_required_may_log_out(
    client: TestClient, admin: dict[str, str]
) -> None:
    await _create(
        client,
        admin,
        "newbie",
        password="initial-password",
        PasswordChangeRequired=True,
    )
    token, uri = await login(client, ("newbie", "initial-password"))
    response = await client.delete(uri, headers=token_header(token))
    assert response.status == 204
    assert (await client.get(uri, headers=admin)).status == 404


async def test_administrator_must_change_password_before_anything(
    client: TestClient, admin: dict[str, str]
) -> None:
    response = await client.patch(
        f"{ACCOUNTS}/root", headers=admin, json={"PasswordChangeRequired": True}
    )
    assert response.status == 200
    assert (await response.json())["PasswordChangeRequired"] is True
    for body in (
        {"PasswordChangeRequired": False},
        {"Enabled": True},
        {"Password": "root-password-2", "PasswordChangeRequired": False},
    ):
        # Clearing the flag without changing the password is no way out.
        response = await client.patch(f"{ACCOUNTS}/root", headers=admin, json=body)
        assert response.status == 403, body
        assert await error_ids(response) == ["PasswordChangeRequired"]
    response = await client.post(
        ACCOUNTS,
        headers=admin,
        json={
            "UserName": "sneaky",
            "Password": "sneaky-password",
            "RoleId": "Administrator",
        },
    )
    assert response.status == 403

    response = await client.patch(
        f"{ACCOUNTS}/root", headers=admin, json={"Password": "root-password-2"}
    )
    assert response.status == 200
    assert await _status(client, ("root", "root-password-2")) == 200


async def test_administrator_sets_password_change_required(
    client: TestClient, admin: dict[str, str]
) -> None:
    response = await client.patch(
        f"{ACCOUNTS}/reader", headers=admin, json={"PasswordChangeRequired": True}
    )
    assert response.status == 200
    assert await _status(client, READONLY) == 403
    response = await client.patch(
        f"{ACCOUNTS}/reader", headers=admin, json={"PasswordChangeRequired": False}
    )
    assert response.status == 200
    assert await _status(client, READONLY) == 200


# --- Roles ---------------------------------------------------------------------


async def test_roles(client: TestClient) -> None:
    reader = basic(READONLY)
    listed = await (await client.get(ROLES, headers=reader)).json()
    uris = [m["@odata.id"] for m in listed["Members"]]
    assert sorted(uris) == [
        f"{ROLES}/{r}" for r in ("Administrator", "Operator", "ReadOnly")
    ]
    expected = {
        "Administrator": {
            "Login",
            "ConfigureManager",
            "ConfigureUsers",
            "ConfigureSelf",
            "ConfigureComponents",
        },
        "Operator": {"Login", "ConfigureSelf", "ConfigureComponents"},
        "ReadOnly": {"Login", "ConfigureSelf"},
    }
    for uri in uris:
        role = await (await client.get(uri, headers=reader)).json()
        assert role["@odata.type"].startswith("#Role.v1_")
        assert role["IsPredefined"] is True
        assert role["Id"] == role["RoleId"]
        assert set(role["AssignedPrivileges"]) == expected[role["RoleId"]]
        assert set(role["AssignedPrivileges"]) == privileges.role_privileges(
            role["RoleId"]
        )


async def test_account_links_to_its_role(
    client: TestClient, admin: dict[str, str]
) -> None:
    for name, role in (
        ("root", "Administrator"),
        ("oper", "Operator"),
        ("reader", "ReadOnly"),
    ):
        account = await _account(client, admin, name)
        uri = account["Links"]["Role"]["@odata.id"]
        body = await (await client.get(uri, headers=admin)).json()
        assert body["RoleId"] == role


async def test_roles_are_read_only(client: TestClient, admin: dict[str, str]) -> None:
    response = await client.patch(
        f"{ROLES}/ReadOnly", headers=admin, json={"AssignedPrivileges": ["Login"]}
    )
    assert response.status == 405
    response = await client.post(ROLES, headers=admin, json={"RoleId": "X"})
    assert response.status == 405

"""Managers/1: the BMC's identity, clock, settings and its Reset action."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable

import pytest
from aiohttp.test_utils import TestClient
from testkit import OPERATOR, basic, error_ids

from bmcd import __version__
from bmcd.core.lifecycle import Ending
from bmcd.http import keys
from bmcd.redfish import managers

MakeClient = Callable[..., Awaitable[TestClient]]
MANAGERS = "/redfish/v1/Managers"
MANAGER = "/redfish/v1/Managers/1"
RESET = "/redfish/v1/Managers/1/Actions/Manager.Reset"
ACTION_INFO = "/redfish/v1/Managers/1/ResetActionInfo"


async def test_manager_collection(client: TestClient, admin: dict[str, str]) -> None:
    body = await (await client.get(MANAGERS, headers=admin)).json()
    assert body["Members"] == [{"@odata.id": MANAGER}]
    assert body["Members@odata.count"] == 1


async def test_manager(client: TestClient, admin: dict[str, str]) -> None:
    body = await (await client.get(MANAGER, headers=admin)).json()
    root = await (await client.get("/redfish/v1")).json()
    assert body["@odata.type"].startswith("#Manager.v1_")
    assert body["Id"] == "1"
    assert body["ManagerType"] == "BMC"
    assert body["UUID"] == root["UUID"]
    assert body["FirmwareVersion"] == __version__
    assert body["Status"] == {"State": "Enabled", "Health": "OK"}
    assert isinstance(body["Links"], dict)
    assert body["DateTimeLocalOffset"] == "+00:00"
    now = dt.datetime.fromisoformat(body["DateTime"])
    assert now.utcoffset() == dt.timedelta(0)
    assert abs((dt.datetime.now(dt.UTC) - now).total_seconds()) < 5
    reset = body["Actions"]["#Manager.Reset"]
    assert reset["target"] == RESET
    assert reset["@Redfish.ActionInfo"] == ACTION_INFO


async def test_other_managers_are_404(
    client: TestClient, admin: dict[str, str]
) -> None:
    for uri in ("/redfish/v1/Managers/2", "/redfish/v1/Managers/2/ResetActionInfo"):
        assert (await client.get(uri, headers=admin)).status == 404
    response = await client.post(
        "/redfish/v1/Managers/bmc/Actions/Manager.Reset", headers=admin, json={}
    )
    assert response.status == 404


async def test_patch_manager(make_client: MakeClient, admin: dict[str, str]) -> None:
    client = await make_client()
    response = await client.patch(
        MANAGER,
        headers=admin,
        json={"DateTimeLocalOffset": "+05:30", "ServiceIdentification": "lab-3"},
    )
    assert response.status == 200
    body = await response.json()
    assert body["DateTimeLocalOffset"] == "+05:30"
    assert body["ServiceIdentification"] == "lab-3"
    assert dt.datetime.fromisoformat(body["DateTime"]).utcoffset() == (
        dt.timedelta(hours=5, minutes=30)
    )
    await client.close()

    restarted = await make_client(users=False)
    body = await (await restarted.get(MANAGER, headers=admin)).json()
    assert body["DateTimeLocalOffset"] == "+05:30"
    assert body["ServiceIdentification"] == "lab-3"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"DateTimeLocalOffset": "+25:00"}, "PropertyValueFormatError"),
        ({"DateTimeLocalOffset": "UTC"}, "PropertyValueFormatError"),
        ({"ServiceIdentification": "x" * 100}, "StringValueTooLong"),
        ({"ServiceIdentification": 7}, "PropertyValueTypeError"),
        ({"ManagerType": "RackManager"}, "PropertyNotWritable"),
        ({"FirmwareVersion": "9"}, "PropertyNotWritable"),
        ({"Gadget": 1}, "PropertyUnknown"),
    ],
)
async def test_patch_manager_refused(
    client: TestClient, admin: dict[str, str], change: dict[str, object], message: str
) -> None:
    response = await client.patch(MANAGER, headers=admin, json=change)
    assert response.status == 400
    assert await error_ids(response) == [message]
    body = await (await client.get(MANAGER, headers=admin)).json()
    assert body["DateTimeLocalOffset"] == "+00:00"
    assert body["ServiceIdentification"] == ""


async def test_reset_action_info(client: TestClient, admin: dict[str, str]) -> None:
    body = await (await client.get(ACTION_INFO, headers=admin)).json()
    assert body["@odata.id"] == ACTION_INFO
    assert body["@odata.type"].startswith("#ActionInfo.v1_")
    (parameter,) = body["Parameters"]
    assert parameter["Name"] == "ResetType"
    assert parameter["DataType"] == "String"
    assert sorted(parameter["AllowableValues"]) == ["ForceRestart", "GracefulRestart"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"ResetType": "PowerCycle"}, "ActionParameterValueNotInList"),
        ({"ResetType": "Reboot"}, "ActionParameterValueNotInList"),
        ({"ResetType": 1}, "ActionParameterValueTypeError"),
        ({"ResetType": "ForceRestart", "Delay": 3}, "ActionParameterUnknown"),
    ],
)
async def test_reset_refused(
    client: TestClient, admin: dict[str, str], body: dict[str, object], message: str
) -> None:
    response = await client.post(RESET, headers=admin, json=body)
    assert response.status == 400
    assert message in await error_ids(response)
    lifecycle = keys.LIFECYCLE.get(client.app)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(asyncio.shield(lifecycle.wait()), 0.05)


@pytest.mark.parametrize("reset_type", ["ForceRestart", "GracefulRestart", None])
async def test_reset_restarts_after_replying(
    client: TestClient,
    admin: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    reset_type: str | None,
) -> None:
    monkeypatch.setattr(managers, "_RESET_GRACE", 0.05)
    lifecycle = keys.LIFECYCLE.get(client.app)
    waiting = asyncio.ensure_future(lifecycle.wait())
    body = {} if reset_type is None else {"ResetType": reset_type}
    response = await client.post(RESET, headers=admin, json=body)
    assert response.status == 204
    # The reply went out before the restart was asked for.
    assert not waiting.done()
    assert await asyncio.wait_for(waiting, 2) is Ending.RESTART


async def test_reset_without_body(
    client: TestClient, admin: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(managers, "_RESET_GRACE", 0.0)
    response = await client.post(RESET, headers=admin)
    assert response.status == 204
    lifecycle = keys.LIFECYCLE.get(client.app)
    assert await asyncio.wait_for(lifecycle.wait(), 2) is Ending.RESTART


async def test_reset_needs_configure_manager(client: TestClient) -> None:
    response = await client.post(
        RESET, headers=basic(OPERATOR), json={"ResetType": "ForceRestart"}
    )
    assert response.status == 403
    lifecycle = keys.LIFECYCLE.get(client.app)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(asyncio.shield(lifecycle.wait()), 0.05)


async def test_if_match_survives_the_clock(
    client: TestClient, admin: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # DateTime moves every second; a tag read a moment ago must still match.
    ticks = iter(range(10**6))
    monkeypatch.setattr(
        managers,
        "_now",
        lambda offset: f"2030-01-01T00:00:{next(ticks) % 60:02d}{offset}",
    )
    first = await client.get(MANAGER, headers=admin)
    second = await client.get(MANAGER, headers=admin)
    assert first.headers["ETag"] == second.headers["ETag"]
    response = await client.patch(
        MANAGER,
        headers={**admin, "If-Match": first.headers["ETag"]},
        json={"ServiceIdentification": "rack-9"},
    )
    assert response.status == 200
    assert response.headers["ETag"] != first.headers["ETag"]

"""The application starts and serves its root and an authenticated resource."""

from __future__ import annotations

from aiohttp.test_utils import TestClient


async def test_service_root_needs_no_credentials(client: TestClient) -> None:
    response = await client.get("/redfish/v1")
    assert response.status == 200
    body = await response.json()
    sessions = body["Links"]["Sessions"]["@odata.id"]
    assert sessions == "/redfish/v1/SessionService/Sessions"
    assert response.headers["OData-Version"] == "4.0"


async def test_accounts_need_credentials(
    client: TestClient, admin: dict[str, str]
) -> None:
    assert (await client.get("/redfish/v1/AccountService/Accounts")).status == 401
    response = await client.get("/redfish/v1/AccountService/Accounts", headers=admin)
    assert response.status == 200
    assert (await response.json())["Members@odata.count"] == 3

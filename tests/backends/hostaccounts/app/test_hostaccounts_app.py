"""bmcd's Redfish accounts and sessions served from the openbmc backend."""

from __future__ import annotations

from typing import Any

from ha_support import needs_bus
from testkit import ADMIN, OPERATOR, basic, error_ids, login, token_header

pytestmark = needs_bus
ACCOUNTS = "/redfish/v1/AccountService/Accounts"


async def test_accounts_over_redfish(make_client: Any, openbmc_env: Any) -> None:
    client = await make_client()

    response = await client.post(
        ACCOUNTS,
        headers=basic(ADMIN),
        json={"UserName": "newop", "Password": "Newop-pw-1", "RoleId": "Operator"},
    )
    assert response.status == 201, await response.text()
    assert openbmc_env.standin.manager.users["newop"].privilege == "priv-operator"
    response = await client.post(
        ACCOUNTS,
        headers=basic(ADMIN),
        json={"UserName": "newop", "Password": "Newop-pw-1", "RoleId": "Operator"},
    )
    assert response.status == 409
    assert await error_ids(response) == ["ResourceAlreadyExists"]

    response = await client.get(
        f"{ACCOUNTS}/newop", headers=basic(("newop", "Newop-pw-1"))
    )
    assert response.status == 200
    assert (await response.json())["RoleId"] == "Operator"
    response = await client.patch(
        f"{ACCOUNTS}/newop", headers=basic(ADMIN), json={"Enabled": False}
    )
    assert response.status == 200
    response = await client.get(
        f"{ACCOUNTS}/newop", headers=basic(("newop", "Newop-pw-1"))
    )
    assert response.status == 401
    response = await client.delete(f"{ACCOUNTS}/newop", headers=basic(ADMIN))
    assert response.status == 204
    assert "newop" not in openbmc_env.standin.manager.users


async def test_account_disabled_outside_bmcd_ends_its_session(
    make_client: Any, openbmc_env: Any
) -> None:
    client = await make_client()
    token, _ = await login(client, OPERATOR)

    openbmc_env.standin.manager.users["oper"].enabled = False
    response = await client.get("/redfish/v1", headers=token_header(token))
    assert response.status == 200
    response = await client.get(ACCOUNTS + "/oper", headers=token_header(token))
    assert response.status == 401


async def test_user_manager_down_is_503_not_500(
    make_client: Any, openbmc_env: Any
) -> None:
    client = await make_client()
    token, _ = await login(client, ADMIN)
    await openbmc_env.standin.stop()
    try:
        for headers in (basic(ADMIN), token_header(token)):
            response = await client.get(ACCOUNTS, headers=headers)
            assert response.status == 503, await response.text()
            assert await error_ids(response) == ["ServiceTemporarilyUnavailable"]
    finally:
        await openbmc_env.standin.start()
    response = await client.get(ACCOUNTS, headers=token_header(token))
    assert response.status == 200

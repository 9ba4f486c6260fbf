"""Redfish query parameters through the whole HTTP stack, on real resources."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient
from testkit import OPERATOR, basic, error_ids

from bmcd.generated.registries import REGISTRIES

ACCOUNTS = "/redfish/v1/AccountService/Accounts"
ALL_USERS = [
    "/redfish/v1/AccountService/Accounts/oper",
    "/redfish/v1/AccountService/Accounts/reader",
    "/redfish/v1/AccountService/Accounts/root",
]


def _members(body: dict[str, object]) -> list[str]:
    members = body["Members"]
    assert isinstance(members, list)
    return [m["@odata.id"] for m in members]


async def test_top_skip_and_next_link(
    client: TestClient, admin: dict[str, str]
) -> None:
    full = await (await client.get(ACCOUNTS, headers=admin)).json()
    assert sorted(_members(full)) == ALL_USERS
    assert "Members@odata.nextLink" not in full

    first = await (await client.get(f"{ACCOUNTS}?$top=2", headers=admin)).json()
    assert _members(first) == _members(full)[:2]
    assert first["Members@odata.count"] == 3
    next_link = first["Members@odata.nextLink"]
    assert next_link.startswith(f"{ACCOUNTS}?")

    second = await (await client.get(next_link, headers=admin)).json()
    assert _members(second) == _members(full)[2:]
    assert "Members@odata.nextLink" not in second

    skipped = await (await client.get(f"{ACCOUNTS}?$skip=1", headers=admin)).json()
    assert _members(skipped) == _members(full)[1:]
    nothing = await (await client.get(f"{ACCOUNTS}?$skip=10", headers=admin)).json()
    assert _members(nothing) == []


async def test_expand_members(client: TestClient, admin: dict[str, str]) -> None:
    response = await client.get(f"{ACCOUNTS}?$expand=.($levels=1)", headers=admin)
    assert response.status == 200
    body = await response.json()
    names = sorted(member["UserName"] for member in body["Members"])
    assert names == ["oper", "reader", "root"]
    assert all(member["Password"] is None for member in body["Members"])


async def test_expand_all_follows_links(
    client: TestClient, admin: dict[str, str]
) -> None:
    account = f"{ACCOUNTS}/oper"
    body = await (await client.get(f"{account}?$expand=*", headers=admin)).json()
    assert body["Links"]["Role"]["RoleId"] == "Operator"
    no_links = await (await client.get(f"{account}?$expand=.", headers=admin)).json()
    # "." expands what is not under Links.
    assert no_links["Links"]["Role"] == {
        "@odata.id": "/redfish/v1/AccountService/Roles/Operator"
    }


async def test_expand_respects_privileges(client: TestClient) -> None:
    # An Operator may not read the Administrator's account, so expanding the
    # collection must not show it either.
    body = await (
        await client.get(f"{ACCOUNTS}?$expand=.", headers=basic(OPERATOR))
    ).json()
    assert [m["UserName"] for m in body["Members"]] == ["oper"]


async def test_select(client: TestClient, admin: dict[str, str]) -> None:
    response = await client.get(
        f"{ACCOUNTS}/oper?$select=UserName,RoleId", headers=admin
    )
    assert response.status == 200
    body = await response.json()
    assert body["UserName"] == "oper"
    assert body["RoleId"] == "Operator"
    assert "Enabled" not in body
    assert "Links" not in body
    assert body["@odata.id"] == f"{ACCOUNTS}/oper"


async def test_filter(client: TestClient, admin: dict[str, str]) -> None:
    query = "$filter=RoleId eq 'Administrator'"
    body = await (await client.get(f"{ACCOUNTS}?{query}", headers=admin)).json()
    assert _members(body) == [f"{ACCOUNTS}/root"]
    query = "$filter=RoleId ne 'Administrator' and Enabled eq true"
    body = await (await client.get(f"{ACCOUNTS}?{query}", headers=admin)).json()
    assert sorted(_members(body)) == ALL_USERS[:2]


async def test_only(client: TestClient, admin: dict[str, str]) -> None:
    # One member: only returns it in place of the collection.
    own = await (await client.get(f"{ACCOUNTS}?only", headers=basic(OPERATOR))).json()
    assert own["UserName"] == "oper"
    # Several members: the collection as it is.
    everyone = await (await client.get(f"{ACCOUNTS}?only", headers=admin)).json()
    assert len(everyone["Members"]) == 3


@pytest.mark.parametrize(
    "query",
    [
        "$top=-1",
        "$top=abc",
        "$top=",
        "$skip=x",
        "$skip=-3",
        "$expand=bogus",
        "$expand=.($levels=99)",
        "$filter=RoleId eq",
        "$filter=(((",
        "$select=",
        "only=yes",
        "only&$top=1",
        "$top=1&$top=2",
    ],
)
async def test_bad_query_values_are_400(
    client: TestClient, admin: dict[str, str], query: str
) -> None:
    response = await client.get(f"{ACCOUNTS}?{query}", headers=admin)
    assert response.status == 400, query
    for key in await error_ids(response):
        assert key in REGISTRIES["Base"].messages


async def test_collection_options_on_a_single_resource(
    client: TestClient, admin: dict[str, str]
) -> None:
    response = await client.get(f"{ACCOUNTS}/root?$top=1", headers=admin)
    assert response.status == 400


@pytest.mark.parametrize(
    "query", ["$count=true", "$orderby=UserName", "$search=x", "$levels=2"]
)
async def test_unknown_dollar_parameter_is_501(
    client: TestClient, admin: dict[str, str], query: str
) -> None:
    response = await client.get(f"{ACCOUNTS}?{query}", headers=admin)
    assert response.status == 501
    assert await error_ids(response) == ["QueryParameterUnsupported"]


async def test_unknown_plain_parameter_is_ignored(
    client: TestClient, admin: dict[str, str]
) -> None:
    response = await client.get(f"{ACCOUNTS}?foo=bar", headers=admin)
    assert response.status == 200


async def test_advertised_features_work(
    client: TestClient, admin: dict[str, str]
) -> None:
    root = await (await client.get("/redfish/v1")).json()
    features = root["ProtocolFeaturesSupported"]
    probes = {
        "SelectQuery": "$select=Id",
        "OnlyMemberQuery": "only",
        "TopSkipQuery": "$top=1&$skip=1",
        "FilterQuery": "$filter=Enabled eq true",
    }
    for feature, query in probes.items():
        response = await client.get(f"{ACCOUNTS}?{query}", headers=admin)
        assert (response.status == 200) == features[feature], feature
    expand = features["ExpandQuery"]
    for flag, query in (("ExpandAll", "*"), ("NoLinks", "."), ("Links", "~")):
        response = await client.get(f"{ACCOUNTS}?$expand={query}", headers=admin)
        assert (response.status == 200) == expand[flag], flag
    levels = expand["MaxLevels"]
    ok = await client.get(f"{ACCOUNTS}?$expand=.($levels={levels})", headers=admin)
    assert ok.status == 200
    too_deep = await client.get(
        f"{ACCOUNTS}?$expand=.($levels={levels + 1})", headers=admin
    )
    assert too_deep.status == 400

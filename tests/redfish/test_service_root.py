"""The service root, /redfish, the OData documents and the message registries."""

from __future__ import annotations

import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp.test_utils import TestClient
from testkit import ADMIN, crawl, login

from bmcd.core.config import Config
from bmcd.generated.registries import REGISTRIES

MakeClient = Callable[..., Awaitable[TestClient]]
EDMX = "{http://docs.oasis-open.org/odata/ns/edmx}"
EDM = "{http://docs.oasis-open.org/odata/ns/edm}"


async def test_versions_document(client: TestClient) -> None:
    response = await client.get("/redfish")
    assert response.status == 200
    assert await response.json() == {"v1": "/redfish/v1/"}


async def test_service_root_contents(make_client: MakeClient, config: Config) -> None:
    client = await make_client(product="TestBoard", vendor="Acme")
    response = await client.get("/redfish/v1")
    assert response.status == 200
    root = await response.json()

    assert re.fullmatch(r"\d+\.\d+\.\d+", root["RedfishVersion"])
    assert str(uuid.UUID(root["UUID"])) == root["UUID"]
    assert root["Product"] == "TestBoard"
    assert root["Vendor"] == "Acme"
    assert root["@odata.id"] == "/redfish/v1"
    assert root["@odata.type"].startswith("#ServiceRoot.v1_")
    assert root["Links"]["Sessions"] == {
        "@odata.id": "/redfish/v1/SessionService/Sessions"
    }
    assert "ServiceIdentification" not in root


async def test_service_root_trailing_slash(client: TestClient) -> None:
    with_slash = await (await client.get("/redfish/v1/")).json()
    without = await (await client.get("/redfish/v1")).json()
    assert with_slash == without


async def test_protocol_features(client: TestClient) -> None:
    root = await (await client.get("/redfish/v1")).json()
    features = root["ProtocolFeaturesSupported"]
    assert features["MultipleHTTPRequests"] is True
    for name in ("FilterQuery", "SelectQuery", "OnlyMemberQuery", "TopSkipQuery"):
        assert features[name] is True, name
    assert features["ExpandQuery"]["ExpandAll"] is True
    assert features["ExpandQuery"]["MaxLevels"] >= 1


async def test_service_root_links_every_service(
    client: TestClient, admin: dict[str, str]
) -> None:
    root = await (await client.get("/redfish/v1")).json()
    for name in ("AccountService", "SessionService", "Managers", "Registries"):
        uri = root[name]["@odata.id"]
        response = await client.get(uri, headers=admin)
        assert response.status == 200, uri
        assert (await response.json())["@odata.id"] == uri


async def test_uuid_stable_across_restarts(
    make_client: MakeClient, config: Config, admin: dict[str, str]
) -> None:
    first = await make_client()
    root = await (await first.get("/redfish/v1")).json()
    manager = await (await first.get("/redfish/v1/Managers/1", headers=admin)).json()
    await first.close()

    second = await make_client(users=False)
    again = await (await second.get("/redfish/v1")).json()
    assert again["UUID"] == root["UUID"]
    # The service root and the BMC that runs it name the same service.
    assert manager["UUID"] == root["UUID"]


async def test_uuid_differs_between_state_dirs(
    make_client: MakeClient, config: Config, tmp_path: Any
) -> None:
    first = await make_client()
    other = await make_client(state_dir=tmp_path / "other")
    one = (await (await first.get("/redfish/v1")).json())["UUID"]
    two = (await (await other.get("/redfish/v1")).json())["UUID"]
    assert one != two


async def test_service_identification_from_manager(
    make_client: MakeClient, admin: dict[str, str]
) -> None:
    client = await make_client()
    response = await client.patch(
        "/redfish/v1/Managers/1",
        headers=admin,
        json={"ServiceIdentification": "rack-7 bmc"},
    )
    assert response.status == 200
    assert (await response.json())["ServiceIdentification"] == "rack-7 bmc"
    root = await (await client.get("/redfish/v1")).json()
    assert root["ServiceIdentification"] == "rack-7 bmc"
    await client.close()

    restarted = await make_client(users=False)
    root = await (await restarted.get("/redfish/v1")).json()
    assert root["ServiceIdentification"] == "rack-7 bmc"


async def test_odata_service_document(client: TestClient) -> None:
    response = await client.get("/redfish/v1/odata")
    assert response.status == 200
    assert response.headers["OData-Version"] == "4.0"
    body = await response.json()
    assert body["@odata.context"] == "/redfish/v1/$metadata"
    urls = {item["name"]: item["url"] for item in body["value"]}
    assert all(item["kind"] == "Singleton" for item in body["value"])
    assert urls["Service"] == "/redfish/v1/"
    root = await (await client.get("/redfish/v1")).json()
    for name in ("AccountService", "SessionService", "Managers", "Registries"):
        assert urls[name] == root[name]["@odata.id"]


def _metadata_namespaces(text: str) -> tuple[dict[str, set[str]], ET.Element]:
    document = ET.fromstring(text)
    assert document.tag == f"{EDMX}Edmx"
    assert document.get("Version") == "4.0"
    references: dict[str, set[str]] = {}
    for reference in document.findall(f"{EDMX}Reference"):
        uri = reference.get("Uri", "")
        includes = {i.get("Namespace", "") for i in reference.findall(f"{EDMX}Include")}
        references[uri] = includes
    return references, document


async def test_metadata_is_well_formed_csdl(client: TestClient) -> None:
    response = await client.get("/redfish/v1/$metadata")
    assert response.status == 200
    assert response.content_type == "application/xml"
    assert response.headers["OData-Version"] == "4.0"
    references, document = _metadata_namespaces(await response.text())

    for uri, includes in references.items():
        found = re.fullmatch(r"http://redfish\.dmtf\.org/schemas/v1/(\w+)_v1\.xml", uri)
        assert found, uri
        # Every namespace a file provides is that schema's (versioned or not).
        assert all(ns.split(".")[0] == found.group(1) for ns in includes), uri
    container = document.find(f"{EDMX}DataServices/{EDM}Schema/{EDM}EntityContainer")
    assert container is not None
    root = await (await client.get("/redfish/v1")).json()
    root_version = root["@odata.type"][1:].rsplit(".", 1)[0]
    assert container.get("Extends") == f"{root_version}.ServiceContainer"


def _odata_types(value: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "@odata.type" and isinstance(item, str):
                found.add(item)
            else:
                found |= _odata_types(item)
    elif isinstance(value, list):
        for item in value:
            found |= _odata_types(item)
    return found


async def test_metadata_references_every_served_type(
    client: TestClient, admin: dict[str, str]
) -> None:
    await login(client, ADMIN)  # so that a Session resource exists
    bodies = await crawl(client, admin)
    error = await client.get("/redfish/v1/Nothing", headers=admin)
    types = _odata_types([*bodies.values(), await error.json()])
    assert len(types) > 10

    text = await (await client.get("/redfish/v1/$metadata")).text()
    references, _ = _metadata_namespaces(text)
    included = set().union(*references.values())
    for odata_type in types:
        namespace = odata_type[1:].rsplit(".", 1)[0]
        assert namespace in included, f"{odata_type} not in $metadata"
        assert namespace.split(".")[0] in included, odata_type


async def test_registries_collection(client: TestClient, admin: dict[str, str]) -> None:
    response = await client.get("/redfish/v1/Registries", headers=admin)
    assert response.status == 200
    body = await response.json()
    members = {m["@odata.id"] for m in body["Members"]}
    assert "/redfish/v1/Registries/Base" in members
    assert body["Members@odata.count"] == len(body["Members"])


async def test_registry_file_and_registry(
    client: TestClient, admin: dict[str, str]
) -> None:
    files = await (await client.get("/redfish/v1/Registries", headers=admin)).json()
    for member in files["Members"]:
        registry_file = await (
            await client.get(member["@odata.id"], headers=admin)
        ).json()
        prefix = registry_file["Id"]
        location = registry_file["Location"][0]
        response = await client.get(location["Uri"], headers=admin)
        assert response.status == 200, location["Uri"]
        registry = await response.json()
        assert registry["RegistryPrefix"] == prefix
        assert registry_file["Registry"] == registry["Id"]
        assert set(registry["Messages"]) == set(REGISTRIES[prefix].messages)
        assert location["PublicationUri"].startswith("https://redfish.dmtf.org/")


async def test_unknown_registry_is_404(
    client: TestClient, admin: dict[str, str]
) -> None:
    for uri in ("/redfish/v1/Registries/Nope", "/redfish/v1/Registries/Base/Other"):
        response = await client.get(uri, headers=admin)
        assert response.status == 404, uri


async def test_registries_hold_every_message_the_service_emits(
    client: TestClient, admin: dict[str, str]
) -> None:
    responses = [
        await client.get("/redfish/v1/AccountService"),
        await client.get("/redfish/v1/Nothing", headers=admin),
        await client.patch(
            "/redfish/v1/AccountService",
            headers=admin,
            json={"Bogus": 1, "MinPasswordLength": "x"},
        ),
    ]
    registries = await (
        await client.get("/redfish/v1/Registries/Base/Base", headers=admin)
    ).json()
    major, minor, _ = registries["RegistryVersion"].split(".")
    for response in responses:
        for message in (await response.json())["error"]["@Message.ExtendedInfo"]:
            prefix, got_major, got_minor, key = message["MessageId"].split(".")
            assert (prefix, got_major, got_minor) == ("Base", major, minor)
            assert key in registries["Messages"]

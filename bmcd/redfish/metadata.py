"""The OData ``$metadata`` document, built from the resources bmcd serves."""

from __future__ import annotations

from xml.sax.saxutils import quoteattr

from aiohttp import web

from bmcd.generated.schemas import TYPE_VERSIONS
from bmcd.http import keys
from bmcd.http.render import ODATA_HEADERS
from bmcd.http.routing import Call, RouteTable

SCHEMA_BASE = "http://redfish.dmtf.org/schemas/v1"
# Schemas every service references besides the resource types it serves:
# the Redfish annotations, common Resource types and error messages.
_ALWAYS = {
    "RedfishExtensions": "v1_0_0",
    "Resource": "",
    "Message": "v1_3_0",
    "ActionInfo": "",
    "MessageRegistry": "",
}


def register(routes: RouteTable) -> None:
    """Declare /redfish/v1/$metadata."""
    routes.add(
        "/redfish/v1/$metadata", "ServiceRoot", get=get_metadata, public=("GET",)
    )


def build_metadata(routes: RouteTable) -> str:
    """The CSDL document naming every schema namespace bmcd's bodies use."""
    types = {r.entity for r in routes.resources}
    versions: dict[str, str] = {}
    for name in sorted(types | set(_ALWAYS)):
        version = TYPE_VERSIONS.get(name, _ALWAYS.get(name, ""))
        versions[name] = version
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<edmx:Edmx xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx" '
        'Version="4.0">',
    ]
    for name, version in versions.items():
        uri = quoteattr(f"{SCHEMA_BASE}/{name}_v1.xml")
        lines.append(f"  <edmx:Reference Uri={uri}>")
        lines.append(f'    <edmx:Include Namespace="{name}"/>')
        if version:
            lines.append(f'    <edmx:Include Namespace="{name}.{version}"/>')
        if name == "RedfishExtensions":
            lines[-1] = lines[-1].replace("/>", ' Alias="Redfish"/>')
        lines.append("  </edmx:Reference>")
    root_version = versions["ServiceRoot"]
    lines += [
        "  <edmx:DataServices>",
        '    <Schema xmlns="http://docs.oasis-open.org/odata/ns/edm" '
        'Namespace="Service">',
        '      <EntityContainer Name="Service" '
        f'Extends="ServiceRoot.{root_version}.ServiceContainer"/>',
        "    </Schema>",
        "  </edmx:DataServices>",
        "</edmx:Edmx>",
    ]
    return "\n".join(lines) + "\n"


async def get_metadata(call: Call) -> web.Response:
    """Serve $metadata as XML (it is not a JSON resource)."""
    document = build_metadata(keys.ROUTES.get(call.app))
    return web.Response(
        text=document,
        content_type="application/xml",
        headers={**ODATA_HEADERS, "Allow": "GET, HEAD"},
    )

"""The service root, the version document and the OData service document."""

from __future__ import annotations

from typing import Any

from bmcd.http import keys
from bmcd.http.query import SUPPORTED_FEATURES
from bmcd.http.routing import Body, Call, RouteTable, link, odata_type

REDFISH_VERSION = "1.20.0"
SERVICE_ROOT = "/redfish/v1"


def register(routes: RouteTable) -> None:
    """Declare /redfish, /redfish/v1 and /redfish/v1/odata."""
    routes.add("/redfish", "ServiceRoot", get=get_versions, public=("GET",))
    routes.add("/redfish/v1", "ServiceRoot", get=get_service_root, public=("GET",))
    routes.add(
        "/redfish/v1/odata", "ServiceRoot", get=get_odata_document, public=("GET",)
    )


async def get_versions(call: Call) -> Body:
    """The protocol versions this service offers."""
    return {"v1": "/redfish/v1/"}


async def get_service_root(call: Call) -> Body:
    """The service root: what this service is and where everything is."""
    config = keys.CONFIG.get(call.app)
    settings = keys.SETTINGS.get(call.app)
    routes = keys.ROUTES.get(call.app)
    features: dict[str, Any] = {**SUPPORTED_FEATURES, "MultipleHTTPRequests": True}
    body: Body = {
        "@odata.id": SERVICE_ROOT,
        "@odata.type": odata_type("ServiceRoot"),
        "Id": "RootService",
        "Name": "Root Service",
        "RedfishVersion": REDFISH_VERSION,
        "UUID": settings.get("service.uuid"),
        "Product": config.product,
        "Vendor": config.vendor,
        "ProtocolFeaturesSupported": features,
        "Links": {"Sessions": link("/redfish/v1/SessionService/Sessions")},
    }
    identification = settings.get("manager.service_identification")
    if identification:
        body["ServiceIdentification"] = identification
    body.update(routes.attached("ServiceRoot"))
    return body


async def get_odata_document(call: Call) -> Body:
    """The OData service document: the root and every top-level service."""
    routes = keys.ROUTES.get(call.app)
    services = [{"name": "Service", "kind": "Singleton", "url": "/redfish/v1/"}]
    for name, value in sorted(routes.attached("ServiceRoot").items()):
        if isinstance(value, dict) and "@odata.id" in value:
            services.append(
                {"name": name, "kind": "Singleton", "url": value["@odata.id"]}
            )
    return {"@odata.context": "/redfish/v1/$metadata", "value": services}

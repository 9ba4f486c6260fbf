"""The message registries bmcd emits, served from the generated registry data."""

from __future__ import annotations

from typing import Any

from bmcd.core.errors import not_found
from bmcd.generated.registries import REGISTRIES
from bmcd.http.routing import Body, Call, RouteTable, collection, link, odata_type

REGISTRIES_URI = "/redfish/v1/Registries"
MESSAGE_REGISTRY_TYPE = "#MessageRegistry.v1_7_0.MessageRegistry"
# The registries whose messages bmcd sends; a service that starts emitting
# another registry's messages adds it here.
EMITTED = ("Base",)


def register(routes: RouteTable) -> None:
    """Declare the registry collection, its files and the registries."""
    routes.add(REGISTRIES_URI, "MessageRegistryFileCollection", get=get_registry_files)
    routes.add(
        "/redfish/v1/Registries/{registry_id}",
        "MessageRegistryFile",
        get=get_registry_file,
    )
    routes.add(
        "/redfish/v1/Registries/{registry_id}/{file_id}",
        "MessageRegistry",
        get=get_registry,
    )
    routes.attach("ServiceRoot", "Registries", link(REGISTRIES_URI))


def _registry_name(call: Call) -> str:
    name = call["registry_id"]
    if name not in EMITTED:
        raise not_found("MessageRegistryFile", name)
    return name


async def get_registry_files(call: Call) -> Body:
    """Every registry bmcd uses in its messages."""
    return collection(
        REGISTRIES_URI,
        "MessageRegistryFileCollection",
        "Registry File Collection",
        [f"{REGISTRIES_URI}/{name}" for name in EMITTED],
    )


async def get_registry_file(call: Call) -> Body:
    """Where one registry can be read: here, and where DMTF publishes it."""
    name = _registry_name(call)
    registry = REGISTRIES[name]
    return {
        "@odata.id": f"{REGISTRIES_URI}/{name}",
        "@odata.type": odata_type("MessageRegistryFile"),
        "Id": name,
        "Name": f"{registry.name} File",
        "Description": f"{registry.name} File locations",
        "Languages": [registry.language],
        "Registry": f"{name}.{registry.version}",
        "Location": [
            {
                "Language": registry.language,
                "Uri": f"{REGISTRIES_URI}/{name}/{name}",
                "PublicationUri": (
                    f"https://redfish.dmtf.org/registries/"
                    f"{name}.{registry.version}.json"
                ),
            }
        ],
    }


async def get_registry(call: Call) -> Body:
    """The registry itself, rebuilt from the generated message data."""
    name = _registry_name(call)
    if call["file_id"] != name:
        raise not_found("MessageRegistry", call["file_id"])
    registry = REGISTRIES[name]
    messages: dict[str, Any] = {}
    for key, spec in sorted(registry.messages.items()):
        message: dict[str, Any] = {
            "Description": spec.description,
            "Message": spec.message,
            "MessageSeverity": spec.severity,
            "NumberOfArgs": spec.number_of_args,
            "Resolution": spec.resolution,
        }
        if spec.param_types:
            message["ParamTypes"] = list(spec.param_types)
        messages[key] = message
    return {
        "@odata.id": f"{REGISTRIES_URI}/{name}/{name}",
        "@odata.type": MESSAGE_REGISTRY_TYPE,
        "Id": f"{name}.{registry.version}",
        "Name": registry.name,
        "Language": registry.language,
        "Description": registry.description,
        "RegistryPrefix": name,
        "RegistryVersion": registry.version,
        "OwningEntity": registry.owning_entity,
        "Messages": messages,
    }

"""Managers: the BMC itself (Managers/1), its identity, clock and Reset."""

from __future__ import annotations

import asyncio
import datetime
import logging
import re
from http import HTTPStatus

from bmcd import __version__
from bmcd.core.errors import RedfishError, not_found
from bmcd.core.lifecycle import Ending
from bmcd.core.validation import check_action, check_properties
from bmcd.generated.registries import Base
from bmcd.http import keys
from bmcd.http.routing import (
    Body,
    Call,
    Reply,
    RouteTable,
    collection,
    link,
    odata_type,
)

_LOGGER = logging.getLogger(__name__)

MANAGERS_URI = "/redfish/v1/Managers"
MANAGER_ID = "1"
MANAGER_URI = f"{MANAGERS_URI}/{MANAGER_ID}"
RESET_TYPES = ("GracefulRestart", "ForceRestart")
# Time for the Reset response to reach the client before bmcd goes down.
_RESET_GRACE = 0.5
_OFFSET = re.compile(r"^[+-]([01]\d|2[0-3]):[0-5]\d$")


def register(routes: RouteTable) -> None:
    """Declare the manager collection, Managers/1 and its Reset action."""
    routes.add(MANAGERS_URI, "ManagerCollection", get=get_managers)
    routes.add(
        "/redfish/v1/Managers/{manager_id}",
        "Manager",
        get=get_manager,
        patch=patch_manager,
    )
    routes.add(
        "/redfish/v1/Managers/{manager_id}/Actions/Manager.Reset",
        "Manager",
        post=post_reset,
    )
    routes.add(
        "/redfish/v1/Managers/{manager_id}/ResetActionInfo",
        "ActionInfo",
        get=get_reset_action_info,
    )
    routes.attach("ServiceRoot", "Managers", link(MANAGERS_URI))


def _check_manager(call: Call) -> None:
    if call["manager_id"] != MANAGER_ID:
        raise not_found("Manager", call["manager_id"])


async def get_managers(call: Call) -> Body:
    """The one manager: this BMC."""
    return collection(
        MANAGERS_URI, "ManagerCollection", "Manager Collection", [MANAGER_URI]
    )


def _now(offset: str) -> str:
    sign = -1 if offset.startswith("-") else 1
    hours, minutes = (int(part) for part in offset[1:].split(":"))
    zone = datetime.timezone(sign * datetime.timedelta(hours=hours, minutes=minutes))
    return datetime.datetime.now(zone).isoformat(timespec="seconds")


async def get_manager(call: Call) -> Body:
    """This BMC: type, identity, firmware, clock and actions."""
    _check_manager(call)
    settings = keys.SETTINGS.get(call.app)
    config = keys.CONFIG.get(call.app)
    routes = keys.ROUTES.get(call.app)
    offset = settings.get("manager.datetime_local_offset")
    body: Body = {
        "@odata.id": MANAGER_URI,
        "@odata.type": odata_type("Manager"),
        "Id": MANAGER_ID,
        "Name": "BMC",
        "Description": "The management controller running bmcd",
        "ManagerType": "BMC",
        "Manufacturer": config.vendor,
        "Model": config.product,
        "UUID": settings.get("service.uuid"),
        "FirmwareVersion": __version__,
        "ServiceIdentification": settings.get("manager.service_identification"),
        "DateTime": _now(offset),
        "DateTimeLocalOffset": offset,
        "PowerState": "On",
        "Status": {"State": "Enabled", "Health": "OK"},
        # No chassis or system is modelled yet; hardware backends add them.
        "Links": {"ManagerForChassis": [], "ManagerForServers": []},
        "Actions": {
            "#Manager.Reset": {
                "target": f"{MANAGER_URI}/Actions/Manager.Reset",
                "@Redfish.ActionInfo": f"{MANAGER_URI}/ResetActionInfo",
            }
        },
    }
    body.update(routes.attached("Manager"))
    return body


async def patch_manager(call: Call) -> Body:
    """Change ServiceIdentification and DateTimeLocalOffset."""
    _check_manager(call)
    body = call.body()
    check_properties("Manager", body, ("ServiceIdentification", "DateTimeLocalOffset"))
    offset = body.get("DateTimeLocalOffset")
    if offset is not None and not _OFFSET.match(offset):
        raise RedfishError.of(
            HTTPStatus.BAD_REQUEST,
            Base.PropertyValueFormatError,
            offset,
            "DateTimeLocalOffset",
            related="#/DateTimeLocalOffset",
        )
    identification = body.get("ServiceIdentification")
    if identification is not None and len(identification) > 99:
        raise RedfishError.of(
            HTTPStatus.BAD_REQUEST,
            Base.StringValueTooLong,
            identification,
            99,
            related="#/ServiceIdentification",
        )
    changes = {}
    if identification is not None:
        changes["manager.service_identification"] = identification
    if offset is not None:
        changes["manager.datetime_local_offset"] = offset
    if changes:
        await keys.SETTINGS.get(call.app).update(changes)
    return await get_manager(call)


async def post_reset(call: Call) -> Reply:
    """Restart bmcd: the reply goes out first, then bmcd re-executes itself."""
    _check_manager(call)
    body = call.body() if call.has_body() else {}
    check_action(
        "Manager",
        "#Manager.Reset",
        body,
        supported=("ResetType",),
        allowed_values={"ResetType": RESET_TYPES},
    )
    reset_type = body.get("ResetType", "GracefulRestart")
    lifecycle = keys.LIFECYCLE.get(call.app)
    principal = call.principal.username if call.principal else "unknown"

    def restart() -> None:
        lifecycle.request(Ending.RESTART, f"{reset_type} requested by {principal}")

    asyncio.get_running_loop().call_later(_RESET_GRACE, restart)
    return Reply(None, HTTPStatus.NO_CONTENT)


async def get_reset_action_info(call: Call) -> Body:
    """The parameters Reset accepts."""
    _check_manager(call)
    return {
        "@odata.id": f"{MANAGER_URI}/ResetActionInfo",
        "@odata.type": odata_type("ActionInfo"),
        "Id": "ResetActionInfo",
        "Name": "Reset Action Info",
        "Parameters": [
            {
                "Name": "ResetType",
                "Required": False,
                "DataType": "String",
                "AllowableValues": list(RESET_TYPES),
            }
        ],
    }

"""Registry messages as Redfish ``Message`` objects."""

from __future__ import annotations

import logging
import re
from typing import Any

from bmcd.core.errors import Message
from bmcd.generated.registries import REGISTRIES

_LOGGER = logging.getLogger(__name__)

MESSAGE_ODATA_TYPE = "#Message.v1_3_0.Message"
_PLACEHOLDER = re.compile(r"%(\d+)")


def message_id(registry: str, key: str) -> str:
    """The MessageId of ``key``: prefix, major and minor version, key."""
    major, minor, *_ = REGISTRIES[registry].version.split(".")
    return f"{registry}.{major}.{minor}.{key}"


def message_text(message: Message) -> str:
    """The registry template of ``message`` with its arguments filled in."""
    spec = REGISTRIES[message.registry].messages[message.key]

    def argument(found: re.Match[str]) -> str:
        index = int(found.group(1)) - 1
        return message.args[index] if index < len(message.args) else found.group(0)

    return _PLACEHOLDER.sub(argument, spec.message)


def message_json(message: Message) -> dict[str, Any]:
    """The Redfish ``Message`` object for ``message``."""
    spec = REGISTRIES[message.registry].messages[message.key]
    if len(message.args) != spec.number_of_args:
        # A bmcd bug, but the client still gets a readable message.
        _LOGGER.error(
            "Message %s.%s given %d arguments, registry says %d",
            message.registry,
            message.key,
            len(message.args),
            spec.number_of_args,
        )
    body: dict[str, Any] = {
        "@odata.type": MESSAGE_ODATA_TYPE,
        "MessageId": message_id(message.registry, message.key),
        "Message": message_text(message),
        "MessageArgs": list(message.args),
        "MessageSeverity": spec.severity,
        "Resolution": spec.resolution,
    }
    if message.related:
        body["RelatedProperties"] = list(message.related)
    return body

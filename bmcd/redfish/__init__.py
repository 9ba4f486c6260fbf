"""The Redfish resource tree: one module per Redfish service.

Each module has ``register(routes)``, declaring its URIs in full, and may
have ``cleanup_context(app)``, an aiohttp cleanup context for what it runs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from types import ModuleType

from aiohttp import web

from bmcd.http.routing import RouteTable
from bmcd.redfish import (
    account_service,
    certificate_service,
    managers,
    metadata,
    network_protocol,
    registries,
    service_root,
    session_service,
)

SERVICES: tuple[ModuleType, ...] = (
    service_root,
    metadata,
    registries,
    account_service,
    session_service,
    managers,
    certificate_service,
    network_protocol,
)

CleanupContext = Callable[[web.Application], AsyncIterator[None]]


def register_all(routes: RouteTable) -> None:
    """Declare every service's resources."""
    for module in SERVICES:
        module.register(routes)


def cleanup_contexts() -> list[CleanupContext]:
    """The services' own start/stop hooks, in service order."""
    return [
        module.cleanup_context
        for module in SERVICES
        if hasattr(module, "cleanup_context")
    ]

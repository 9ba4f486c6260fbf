"""Finding backends through entry points, as a vendor's package registers them."""

from __future__ import annotations

import logging
from importlib.metadata import entry_points
from typing import Any

_LOGGER = logging.getLogger(__name__)


class PluginError(Exception):
    """The configured backend cannot be found or loaded."""


def available(role: str) -> list[str]:
    """Names registered in the entry-point group ``bmcd.<role>``."""
    return sorted(ep.name for ep in entry_points(group=f"bmcd.{role}"))


def load(role: str, name: str) -> Any:
    """The object the entry point ``name`` of group ``bmcd.<role>`` names."""
    group = f"bmcd.{role}"
    matches = [ep for ep in entry_points(group=group) if ep.name == name]
    if not matches:
        known = ", ".join(available(role)) or "none installed"
        raise PluginError(
            f"no {role} backend named {name!r} (entry-point group "
            f"{group}; available: {known})"
        )
    if len(matches) > 1:
        _LOGGER.warning(
            "Several packages register %s backend %r; using %s",
            role,
            name,
            matches[0].value,
        )
    try:
        return matches[0].load()
    except Exception as err:
        raise PluginError(
            f"cannot load {role} backend {name!r} from {matches[0].value}: {err}"
        ) from err

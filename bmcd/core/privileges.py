"""Roles and the privilege rules of the DMTF privilege registry.

The required privileges of each (entity, method) come from the generated
privilege map; this module only decides whether a principal satisfies them.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

from bmcd.generated import privilege_map

Alternatives = tuple[tuple[str, ...], ...]

LOGIN = "Login"
CONFIGURE_MANAGER = "ConfigureManager"
CONFIGURE_USERS = "ConfigureUsers"
CONFIGURE_SELF = "ConfigureSelf"
CONFIGURE_COMPONENTS = "ConfigureComponents"
NO_AUTH = "NoAuth"


@dataclass(frozen=True)
class Role:
    """A predefined Redfish role."""

    id: str
    privileges: tuple[str, ...]
    description: str


ROLES: dict[str, Role] = {
    role.id: role
    for role in (
        Role(
            "Administrator",
            (
                LOGIN,
                CONFIGURE_MANAGER,
                CONFIGURE_USERS,
                CONFIGURE_SELF,
                CONFIGURE_COMPONENTS,
            ),
            "Manages the BMC, its accounts and the components",
        ),
        Role(
            "Operator",
            (LOGIN, CONFIGURE_SELF, CONFIGURE_COMPONENTS),
            "Manages the components and its own account",
        ),
        Role(
            "ReadOnly",
            (LOGIN, CONFIGURE_SELF),
            "Reads everything and manages its own account",
        ),
    )
}


def role_privileges(role_id: str) -> frozenset[str]:
    """Privileges granted by ``role_id`` (none for an unknown role)."""
    role = ROLES.get(role_id)
    return frozenset(role.privileges) if role else frozenset()


def required(entity: str, method: str, properties: Iterable[str] = ()) -> Alternatives:
    """The privilege alternatives for ``method`` on ``entity``.

    When every property a PATCH touches has a property override for the
    method, the override's alternatives apply instead (e.g. ConfigureSelf may
    PATCH its own Password but nothing else of its account).
    """
    method = "GET" if method == "HEAD" and method not in _ops(entity) else method
    alternatives = _ops(entity).get(method, ((CONFIGURE_MANAGER,),))
    touched = set(properties)
    if not touched:
        return alternatives
    for targets, operations in privilege_map.PROPERTY_OVERRIDES.get(entity, ()):
        if touched <= set(targets) and method in operations:
            return operations[method]
    return alternatives


def _ops(entity: str) -> dict[str, Alternatives]:
    # An entity missing from the map is a bmcd bug; the safe default is
    # ConfigureManager for everything.
    return privilege_map.OPERATION_MAP.get(entity, {})


def satisfied(
    privileges: Collection[str], alternatives: Alternatives, *, is_self: bool = False
) -> bool:
    """Whether ``privileges`` meet one of ``alternatives``.

    ConfigureSelf in an alternative counts only when the request is about the
    principal's own account or session (``is_self``).
    """
    for needed in alternatives:
        if NO_AUTH in needed:
            return True
        if CONFIGURE_SELF in needed and not is_self:
            continue
        if all(p in privileges for p in needed):
            return True
    return False


def needs_self(alternatives: Alternatives, privileges: Collection[str]) -> bool:
    """True when only a ConfigureSelf alternative could let ``privileges`` in."""
    return not satisfied(privileges, alternatives) and satisfied(
        privileges, alternatives, is_self=True
    )

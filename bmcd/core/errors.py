"""The one error type of bmcd, carrying Redfish registry messages.

Every failure a client should see is raised as :class:`RedfishError`; the HTTP
layer turns it into the Redfish error body in exactly one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from http import HTTPStatus


@dataclass(frozen=True)
class Message:
    """One registry message instance: a key, its arguments and where it points."""

    key: str
    args: tuple[str, ...] = ()
    related: tuple[str, ...] = ()
    registry: str = "Base"


@dataclass
class RedfishError(Exception):
    """A failed request: HTTP status plus one or more registry messages.

    The first message becomes the top-level ``error.code``/``error.message``.
    """

    status: int
    messages: list[Message] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        keys = ", ".join(m.key for m in self.messages)
        return f"{self.status} {keys}"

    @classmethod
    def of(
        cls,
        status: int,
        key: str,
        *args: object,
        related: str | None = None,
        registry: str = "Base",
    ) -> RedfishError:
        """Build an error holding a single message."""
        message = Message(
            key,
            tuple(_argument(a) for a in args),
            (related,) if related else (),
            registry,
        )
        return cls(int(status), [message])


def _argument(value: object) -> str:
    # Registry arguments are strings; JSON values keep their JSON spelling.
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value)


# Shorthands for the errors raised in many places. Each names its Base message.


def not_found(uri_or_type: str, resource_id: str | None = None) -> RedfishError:
    """404 ResourceNotFound for a resource type and id (or a bare URI)."""
    if resource_id is None:
        return RedfishError.of(
            HTTPStatus.NOT_FOUND, "ResourceNotFound", "Resource", uri_or_type
        )
    return RedfishError.of(
        HTTPStatus.NOT_FOUND, "ResourceNotFound", uri_or_type, resource_id
    )


def insufficient_privilege() -> RedfishError:
    """403 InsufficientPrivilege."""
    return RedfishError.of(HTTPStatus.FORBIDDEN, "InsufficientPrivilege")


def no_valid_session() -> RedfishError:
    """401 NoValidSession, with the challenge header DSP0266 asks for."""
    error = RedfishError.of(HTTPStatus.UNAUTHORIZED, "NoValidSession")
    error.headers["WWW-Authenticate"] = 'Basic realm="bmcd", charset="UTF-8"'
    return error


def internal_error() -> RedfishError:
    """500 InternalError, for faults that are bmcd's own."""
    return RedfishError.of(HTTPStatus.INTERNAL_SERVER_ERROR, "InternalError")

"""Redfish routes: each URI with its privilege entity and method handlers.

Redfish modules declare resources on a :class:`RouteTable`; the table installs
one aiohttp route per URI whose dispatcher runs the request path in order:
method check, body checks, authentication, privilege check, precondition,
handler, rendering. Handlers never check privileges themselves.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from aiohttp import web

from bmcd.core.auth import Principal
from bmcd.core.errors import RedfishError
from bmcd.generated.registries import Base
from bmcd.generated.schemas import ODATA_TYPES

Body = dict[str, Any]
METHODS = ("GET", "HEAD", "POST", "PATCH", "PUT", "DELETE")


@dataclass
class Reply:
    """What a handler returns when a plain 200 body is not enough."""

    body: Body | None = None
    status: int = HTTPStatus.OK
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Call:
    """One request as a handler sees it."""

    request: web.Request
    method: str
    path: str
    match: dict[str, str]
    principal: Principal | None
    _body: Any = None

    @property
    def app(self) -> web.Application:
        """The application, for looking up services by key."""
        return self.request.app

    def __getitem__(self, name: str) -> str:
        """A path parameter, e.g. ``call["account_id"]``."""
        return self.match[name]

    @property
    def client(self) -> str:
        """The client's address, for logs and ClientOriginIPAddress."""
        return self.request.remote or "unknown"

    def body(self) -> Body:
        """The request's JSON object (parsed before the handler runs)."""
        if not isinstance(self._body, dict):
            raise RedfishError.of(HTTPStatus.BAD_REQUEST, Base.MalformedJSON)
        return self._body

    def has_body(self) -> bool:
        """Whether the request carried a JSON body."""
        return self._body is not None


Handler = Callable[[Call], Awaitable["Reply | Body | web.StreamResponse"]]
Owner = Callable[[Call], Awaitable["str | None"]]


@dataclass(frozen=True)
class Resource:
    """One URI: its privilege entity and what each method does.

    ``owner`` names the user a resource belongs to, when the ConfigureSelf
    privilege may reach it (one's own account or session).
    """

    path: str
    entity: str
    handlers: dict[str, Handler]
    public: frozenset[str] = frozenset()
    owner: Owner | None = None
    pattern: re.Pattern[str] = field(default=re.compile(""), compare=False)

    @property
    def allow(self) -> str:
        """The Allow header: every method this resource answers."""
        methods = list(self.handlers)
        if "GET" in methods:
            methods.insert(methods.index("GET") + 1, "HEAD")
        return ", ".join(m for m in METHODS if m in methods)


def _compile(path: str) -> re.Pattern[str]:
    regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(path))
    return re.compile(f"^{regex}/?$")


class RouteTable:
    """Every Redfish resource bmcd serves, in the order declared."""

    def __init__(self) -> None:
        self.resources: list[Resource] = []
        self.attachments: dict[str, dict[str, Any]] = {}

    def attach(self, type_name: str, prop: str, value: Any) -> None:
        """Have every ``type_name`` resource show ``prop`` (a service's link).

        This is how a service announces itself in the service root or the
        manager without the owner of those resources knowing it.
        """
        self.attachments.setdefault(type_name, {})[prop] = value

    def attached(self, type_name: str) -> dict[str, Any]:
        """What services attached to ``type_name``."""
        return dict(self.attachments.get(type_name, {}))

    def add(
        self,
        path: str,
        entity: str,
        *,
        get: Handler | None = None,
        post: Handler | None = None,
        patch: Handler | None = None,
        put: Handler | None = None,
        delete: Handler | None = None,
        public: tuple[str, ...] = (),
        owner: Owner | None = None,
    ) -> None:
        """Declare a resource; a POST handler is also served at ``path/Members``."""
        handlers = {
            m: h
            for m, h in (
                ("GET", get),
                ("POST", post),
                ("PATCH", patch),
                ("PUT", put),
                ("DELETE", delete),
            )
            if h is not None
        }
        resource = Resource(
            path, entity, handlers, frozenset(public), owner, _compile(path)
        )
        self.resources.append(resource)
        if post is not None and entity.endswith("Collection"):
            # DSP0266: a collection that accepts POST accepts it at /Members.
            members = Resource(
                f"{path}/Members",
                entity,
                {"POST": post},
                frozenset(m for m in public if m == "POST"),
                owner,
                _compile(f"{path}/Members"),
            )
            self.resources.append(members)

    def match(self, path: str) -> tuple[Resource, dict[str, str]] | None:
        """The resource serving ``path`` and its parameters, if any."""
        for resource in self.resources:
            found = resource.pattern.match(path)
            if found:
                return resource, found.groupdict()
        return None


def decode_json(raw: bytes) -> Any:
    """Parse a request body, refusing duplicate keys and non-JSON values."""

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in pairs:
            if key in result:
                raise RedfishError.of(
                    HTTPStatus.BAD_REQUEST,
                    Base.PropertyDuplicate,
                    key,
                    related=f"#/{key}",
                )
            result[key] = value
        return result

    def no_constant(name: str) -> Any:
        raise ValueError(name)

    try:
        value = json.loads(
            raw.decode("utf-8"),
            object_pairs_hook=no_duplicates,
            parse_constant=no_constant,
        )
        # JSON may spell lone UTF-16 surrogates ("\ud800"), which are no
        # text: nothing downstream could encode, store or echo them.
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except (ValueError, UnicodeError, RecursionError):
        raise RedfishError.of(HTTPStatus.BAD_REQUEST, Base.MalformedJSON) from None
    return value


def odata_type(type_name: str) -> str:
    """The ``@odata.type`` bmcd serves for a resource type."""
    return ODATA_TYPES[type_name]


def link(uri: str) -> dict[str, str]:
    """A navigation link object."""
    return {"@odata.id": uri}


def collection(uri: str, type_name: str, name: str, member_uris: list[str]) -> Body:
    """A resource collection body with its members as links."""
    return {
        "@odata.id": uri,
        "@odata.type": odata_type(type_name),
        "Name": name,
        "Members": [link(member) for member in member_uris],
        "Members@odata.count": len(member_uris),
    }

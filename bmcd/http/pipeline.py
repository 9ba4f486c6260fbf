"""The path of one Redfish request, from route match to rendered response.

Steps, in order: resolve the route, check the method, authenticate, read and
check the body, check privileges (the DMTF privilege map for the route's
entity), enforce PasswordChangeRequired, check preconditions, run the
handler, render. Errors raised anywhere become the Redfish error body in
:func:`error_middleware`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import weakref
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

from aiohttp import web

from bmcd.core import privileges
from bmcd.core.auth import Principal
from bmcd.core.errors import (
    RedfishError,
    insufficient_privilege,
    internal_error,
    no_valid_session,
)
from bmcd.generated.registries import Base
from bmcd.http import keys
from bmcd.http.query import QueryOptions, apply_query, parse_query
from bmcd.http.render import (
    JSON_TYPE,
    error_response,
    json_response,
    schema_link,
    with_etag,
)
from bmcd.http.routing import Body, Call, Reply, Resource, decode_json

_LOGGER = logging.getLogger(__name__)

WRITE_METHODS = ("POST", "PATCH", "PUT", "DELETE")
# Paths that DSP0266 lets anyone read without credentials.
_OPEN_PATHS = (
    "/redfish",
    "/redfish/",
    "/redfish/v1",
    "/redfish/v1/",
    "/redfish/v1/odata",
    "/redfish/v1/$metadata",
)


@web.middleware
async def error_middleware(
    request: web.Request,
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> web.StreamResponse:
    """Render every error as a Redfish error body; never let a fault escape."""
    deadline = keys.DEADLINE.find(request.app)
    if deadline is not None:
        deadline.request_started(request)
    try:
        return await handler(request)
    except RedfishError as err:
        # An InternalError is bmcd's fault; other 5xx (a full session table,
        # a backend that is down) are logged where they are decided.
        if err.status == HTTPStatus.INTERNAL_SERVER_ERROR:
            _LOGGER.error("%s %s failed: %s", request.method, request.path, err)
        return error_response(err)
    except web.HTTPException as exc:
        return _http_exception(exc)
    except asyncio.CancelledError:
        raise
    except Exception:
        _LOGGER.exception("Internal error on %s %s", request.method, request.path)
        return error_response(internal_error())


def _http_exception(exc: web.HTTPException) -> web.Response:
    # aiohttp raises these itself (bad request lines, oversized bodies).
    if exc.status == HTTPStatus.REQUEST_ENTITY_TOO_LARGE:
        return error_response(RedfishError.of(exc.status, Base.PayloadTooLarge))
    if exc.status == HTTPStatus.NOT_FOUND:
        return error_response(
            RedfishError.of(exc.status, Base.ResourceMissingAtURI, "unknown")
        )
    if exc.status == HTTPStatus.METHOD_NOT_ALLOWED:
        return error_response(RedfishError.of(exc.status, Base.OperationNotAllowed))
    return error_response(RedfishError.of(exc.status, Base.GeneralError))


async def dispatch(request: web.Request) -> web.StreamResponse:
    """Serve one request to any Redfish URI."""
    table = keys.ROUTES.get(request.app)
    found = table.match(request.path)
    if found is None:
        if request.path not in _OPEN_PATHS:
            await authenticate(request)
        raise RedfishError.of(
            HTTPStatus.NOT_FOUND, Base.ResourceMissingAtURI, request.path
        )
    resource, match = found
    odata_version = request.headers.get("OData-Version")
    if odata_version is not None and odata_version.strip() != "4.0":
        # DSP0266: an OData-Version the service does not support is a 412.
        raise RedfishError.of(
            HTTPStatus.PRECONDITION_FAILED,
            Base.HeaderInvalid,
            f"OData-Version: {odata_version}",
        )
    method = "GET" if request.method == "HEAD" else request.method
    handler = resource.handlers.get(method)
    if handler is None:
        error = RedfishError.of(HTTPStatus.METHOD_NOT_ALLOWED, Base.OperationNotAllowed)
        error.headers["Allow"] = resource.allow
        raise error

    options = parse_query(request.query)
    if not options.is_empty() and method != "GET":
        raise RedfishError.of(HTTPStatus.BAD_REQUEST, Base.QueryNotSupportedOnOperation)
    principal = None
    if method not in resource.public:
        principal = await authenticate(request)
    elif method == "GET" and not options.is_empty() and _has_credentials(request):
        # A public resource read with credentials may expand what they allow.
        principal = await _optional_principal(request)
    call = Call(request, method, request.path, match, principal)
    if method in ("POST", "PATCH", "PUT"):
        call._body = await read_json(request)
    if principal is not None:
        await authorize(call, resource)

    if method == "GET":
        return await _get(call, resource, handler, options)
    if method in resource.public:
        # Logging in: an anonymous caller (whose failed login PAM may hold
        # for seconds) must not hold a lock that other logins wait on.
        return _reply_response(call, resource, await handler(call))
    async with _write_lock(request.app, request.path):
        await check_if_match(call, resource)
        result = await handler(call)
    return _reply_response(call, resource, result)


async def _get(
    call: Call, resource: Resource, handler: Any, options: QueryOptions
) -> web.StreamResponse:
    result = await handler(call)
    if isinstance(result, web.StreamResponse):
        return result
    reply = result if isinstance(result, Reply) else Reply(result)
    body = reply.body
    headers = {"Allow": resource.allow, **reply.headers}
    if body is None:
        return json_response(None, reply.status, headers)
    body, etag = with_etag(body)
    if etag is not None:
        headers["ETag"] = etag
        wanted = _etags(call.request.headers.get("If-None-Match"))
        if etag in wanted or "*" in wanted:
            return web.Response(status=HTTPStatus.NOT_MODIFIED, headers=headers)
    link = schema_link(body)
    if link:
        headers["Link"] = link
    if not options.is_empty():
        body = await apply_query(body, options, _fetcher(call))
    return json_response(body, reply.status, headers)


def _reply_response(
    call: Call, resource: Resource, result: Reply | Body | web.StreamResponse
) -> web.StreamResponse:
    if isinstance(result, web.StreamResponse):
        return result
    reply = result if isinstance(result, Reply) else Reply(result)
    headers = {"Allow": resource.allow, **reply.headers}
    if reply.body is None:
        if reply.status == HTTPStatus.OK:
            reply.status = HTTPStatus.NO_CONTENT
        return web.Response(status=reply.status, headers=headers)
    body, etag = with_etag(reply.body)
    if etag is not None:
        headers["ETag"] = etag
    return json_response(body, reply.status, headers)


def _fetcher(call: Call) -> Callable[[str], Awaitable[Body | None]]:
    """Reads other resources as the same principal, for $expand and $filter."""
    table = keys.ROUTES.get(call.app)

    async def fetch(uri: str) -> Body | None:
        found = table.match(uri.split("?", 1)[0])
        if found is None:
            return None
        resource, match = found
        handler = resource.handlers.get("GET")
        if handler is None:
            return None
        inner = Call(call.request, "GET", uri, match, call.principal)
        if call.principal is None and "GET" not in resource.public:
            # Anonymous readers see through $expand only what they may read.
            return None
        try:
            if call.principal is not None:
                await authorize(inner, resource)
            result = await handler(inner)
        except RedfishError:
            return None
        body = _body_of(result)
        return None if body is None else with_etag(body)[0]

    return fetch


def _body_of(result: Reply | Body | web.StreamResponse | None) -> Body | None:
    """The JSON body a handler produced, or None (no body, or not JSON)."""
    if result is None or isinstance(result, web.StreamResponse):
        return None
    return result.body if isinstance(result, Reply) else result


def _has_credentials(request: web.Request) -> bool:
    return "X-Auth-Token" in request.headers or "Authorization" in request.headers


async def _optional_principal(request: web.Request) -> Principal | None:
    try:
        return await authenticate(request)
    except RedfishError:
        # Bad credentials on a public resource: answer as to anyone.
        return None


async def authenticate(request: web.Request) -> Principal:
    """The principal behind X-Auth-Token or HTTP Basic; 401 without one."""
    authenticator = keys.AUTHENTICATOR.get(request.app)
    token = request.headers.get("X-Auth-Token")
    if token:
        return await authenticator.token(token)
    header = request.headers.get("Authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "basic" and credentials:
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise no_valid_session() from None
        username, sep, password = decoded.partition(":")
        if not sep:
            raise no_valid_session()
        return await authenticator.basic(
            username, password, request.remote or "unknown"
        )
    raise no_valid_session()


async def read_json(request: web.Request) -> Any:
    """The JSON request body, or None when there is none; 413/415/400 if bad."""
    limit = keys.CONFIG.get(request.app).max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise RedfishError.of(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, Base.PayloadTooLarge)
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise RedfishError.of(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE, Base.PayloadTooLarge
        ) from None
    if not raw:
        return None
    if request.content_type != JSON_TYPE:
        raise RedfishError.of(
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE, Base.UnrecognizedRequestBody
        )
    return decode_json(raw)


async def authorize(call: Call, resource: Resource) -> None:
    """403 unless the principal holds the privileges this request needs."""
    principal = call.principal
    assert principal is not None
    touched: list[str] = []
    if call.method == "PATCH" and isinstance(call._body, dict):
        touched = [k for k in call._body if not k.startswith("@")]
    alternatives = privileges.required(resource.entity, call.method, touched)
    is_self = await _is_own(call, resource)

    if principal.must_change_password and not _allowed_before_change(
        call, resource, is_self
    ):
        raise RedfishError.of(
            HTTPStatus.FORBIDDEN,
            Base.PasswordChangeRequired,
            f"/redfish/v1/AccountService/Accounts/{principal.account_id}",
        )
    if not privileges.satisfied(principal.privileges, alternatives, is_self=is_self):
        _LOGGER.warning(
            "%s %s refused to %s (role %s): insufficient privilege",
            call.method,
            call.path,
            principal.username,
            principal.role_id,
        )
        raise insufficient_privilege()


async def _is_own(call: Call, resource: Resource) -> bool:
    if resource.owner is None or call.principal is None:
        return False
    try:
        owner = await resource.owner(call)
    except RedfishError:
        return False
    return owner is not None and owner == call.principal.username


def _allowed_before_change(call: Call, resource: Resource, is_self: bool) -> bool:
    # DSP0266: until the password is changed, an account may only read its
    # own account, change its password, and see and end its session.
    if resource.entity == "ManagerAccount" and is_self:
        if call.method == "PATCH":
            # Only the password: clearing the flag must not be a way out.
            body = call._body if isinstance(call._body, dict) else {}
            return {k for k in body if not k.startswith("@")} == {"Password"}
        return call.method == "GET"
    if resource.entity == "Session" and is_self:
        return call.method in ("GET", "DELETE")
    return False


def _etags(header: str | None) -> list[str]:
    if not header:
        return []
    return [tag.strip() for tag in header.split(",")]


async def check_if_match(call: Call, resource: Resource) -> None:
    """412 when If-Match names none of the resource's current ETags.

    Also 412 for ``If-None-Match: *`` on a resource that exists (RFC 9110:
    the write was meant only for a resource that is not there yet).
    """
    wanted = _etags(call.request.headers.get("If-Match"))
    none_match = "*" in _etags(call.request.headers.get("If-None-Match"))
    if (not wanted or "*" in wanted) and not none_match:
        return
    getter = resource.handlers.get("GET")
    current = None
    if getter is not None:
        try:
            result = await getter(
                Call(call.request, "GET", call.path, call.match, call.principal)
            )
        except RedfishError:
            result = None  # absent (or unreadable): no current ETag
        body = _body_of(result)
        current = None if body is None else with_etag(body)[1]
    if none_match:
        if current is not None:
            raise RedfishError.of(
                HTTPStatus.PRECONDITION_FAILED, Base.PreconditionFailed
            )
        return
    # A strong tag from a client matches our weak one by its opaque part.
    plain = {tag.removeprefix("W/") for tag in wanted}
    if current is None or current.removeprefix("W/") not in plain:
        raise RedfishError.of(HTTPStatus.PRECONDITION_FAILED, Base.PreconditionFailed)


_LOCKS: keys.Key[weakref.WeakValueDictionary[str, asyncio.Lock]] = keys.Key(
    "write_locks"
)


def _write_lock(app: web.Application, path: str) -> asyncio.Lock:
    """The lock that serializes writes to one URI (precondition + change)."""
    locks = _LOCKS.get(app)
    lock = locks.get(path)
    if lock is None:
        lock = asyncio.Lock()
        locks[path] = lock
    return lock


def install(app: web.Application) -> None:
    """Route every path to :func:`dispatch`."""
    _LOCKS.set(app, weakref.WeakValueDictionary())
    app.router.add_route("*", "/{tail:.*}", dispatch)

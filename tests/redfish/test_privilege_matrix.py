"""Every route, every method, every role: outcomes follow the privilege map.

The expectations come from the DMTF privilege registry (the generated
``bmcd.generated.privilege_map``, read through ``bmcd.core.privileges``), not
from a list in this file: a route another service adds later is walked and
checked the same way. Path parameters are filled with the ids of resources
that exist, found by crawling the service as a client would.

Deliberate reading of the registry: HEAD is held to GET's privileges (the
registry gives ManagerAccount HEAD to any Login, which would reveal which
accounts exist to users who may not read them).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from certauthority import TestCA
from testkit import ADMIN, USERS, basic, crawl, linked_uris, login

from bmcd import redfish
from bmcd.core import privileges
from bmcd.generated import privilege_map
from bmcd.http import keys
from bmcd.http.routing import METHODS, Resource, RouteTable

MakeClient = Callable[..., Awaitable[TestClient]]

# Least privileged first, so that a change one role may make (ending its own
# session) happens after the roles that must be refused have been tried.
ROLES = ("ReadOnly", "Operator", "Administrator")
SAFE = ("GET", "HEAD")


def _declared_routes() -> RouteTable:
    routes = RouteTable()
    redfish.register_all(routes)
    return routes


def _methods(resource: Resource) -> list[str]:
    methods = list(resource.handlers)
    if "GET" in methods:
        methods.append("HEAD")
    return methods


ROUTES = _declared_routes()
CASES = [(r.path, m) for r in ROUTES.resources for m in _methods(r)]
WRITES = [(path, method) for path, method in CASES if method not in SAFE]
_counter = itertools.count()


def _privilege_method(method: str) -> str:
    return "GET" if method == "HEAD" else method


def _bodies(resource: Resource, method: str) -> list[dict[str, Any] | None]:
    """Request bodies to try: an empty one, and one per property override.

    An empty body fails validation with 400 after the privilege check, which
    is enough to show the check let the request through. Override properties
    are sent as null: refused with 400 or accepted as no change, either way
    after the privilege check, and never changing a password.
    """
    if method not in ("POST", "PATCH", "PUT"):
        return [None]
    bodies: list[dict[str, Any] | None] = [{}]
    for targets, operations in privilege_map.PROPERTY_OVERRIDES.get(
        resource.entity, ()
    ):
        if method in operations:
            bodies.append(dict.fromkeys(targets))
    return bodies


def _is_public(resource: Resource, method: str) -> bool:
    """Needs no credentials: NoAuth in the registry, or logging in (DSP0266)."""
    alternatives = privileges.required(resource.entity, _privilege_method(method))
    if any(privileges.NO_AUTH in needed for needed in alternatives):
        return True
    return resource.entity == "SessionCollection" and method == "POST"


def _allowed(
    resource: Resource,
    method: str,
    role: str,
    body: dict[str, Any] | None,
    owner: str | None,
) -> bool:
    touched = [k for k in body or {} if not k.startswith("@")]
    if method != "PATCH":
        touched = []
    alternatives = privileges.required(
        resource.entity, _privilege_method(method), touched
    )
    if any(privileges.NO_AUTH in needed for needed in alternatives):
        return True
    return privileges.satisfied(
        privileges.role_privileges(role), alternatives, is_self=owner == USERS[role][0]
    )


async def _service(
    make_client: MakeClient, root: Path
) -> tuple[TestClient, dict[str, Any]]:
    """A fresh app with a session per user, and what an admin can see in it."""
    client = await make_client(state_dir=root / f"state-{next(_counter)}")
    for user in USERS.values():
        await login(client, user)
    await _seed(client)
    return client, await crawl(client, basic(ADMIN))


TRUSTED_CERTIFICATES = (
    "/redfish/v1/Managers/1/SecurityPolicy/TLS/Client/TrustedCertificates"
)


async def _seed(client: TestClient) -> None:
    """Members of collections that start empty: one trusted CA certificate."""
    response = await client.post(
        TRUSTED_CERTIFICATES,
        headers=basic(ADMIN),
        json={"CertificateString": TestCA("matrix CA").pem, "CertificateType": "PEM"},
    )
    assert response.status == 201, await response.text()


def _targets(
    routes: RouteTable, resource: Resource, bodies: dict[str, Any]
) -> list[tuple[str, str | None]]:
    """Existing URIs this route serves, each with the user it belongs to."""
    uris = sorted(
        uri
        for uri in linked_uris(bodies)
        if (found := routes.match(uri)) and found[0] is resource
    )
    if not uris and resource.path.endswith("/Members"):
        # DSP0266's POST-only twin of a collection: nothing links to it.
        parent = routes.match(resource.path.removesuffix("/Members"))
        if parent is not None:
            uris = [f"{uri}/Members" for uri, _ in _targets(routes, parent[0], bodies)]
    if not uris:
        uris = [_invented(routes, resource, linked_uris(bodies))]
    targets = [(uri, bodies.get(uri, {}).get("UserName")) for uri in uris]
    return sorted(targets, key=lambda t: (t[1] or "", t[0]))


def _invented(routes: RouteTable, resource: Resource, known: set[str]) -> str:
    """A URI of ``resource`` when none exists (an empty collection's member).

    Parameters take ids that exist where they can (Managers/1) and a made-up
    id otherwise. The privilege check comes before the handler, so the
    outcome still shows it: 403, or a 404 from the handler once let through.
    """
    segments: list[str] = []
    for part in resource.path.split("/"):
        if part.startswith("{"):
            prefix = "/".join(segments) + "/"
            ids = sorted(
                uri[len(prefix) :].split("/")[0]
                for uri in known
                if uri.startswith(prefix)
            )
            part = ids[0] if ids else "none"
        segments.append(part)
    uri = "/".join(segments)
    found = routes.match(uri)
    if found is None or found[0] is not resource:
        uri = re.sub(r"\{\w+\}", "none", resource.path)
    found = routes.match(uri)
    assert found is not None and found[0] is resource, resource.path
    return uri


def _resource(client: TestClient, path: str) -> tuple[RouteTable, Resource]:
    routes = keys.ROUTES.get(client.app)
    for resource in routes.resources:
        if resource.path == path:
            return routes, resource
    raise AssertionError(f"{path} is not in the app's route table")


async def _check(
    client: TestClient,
    resource: Resource,
    method: str,
    uri: str,
    owner: str | None,
    body: dict[str, Any] | None,
) -> None:
    """Try the request with no credentials and as each role."""
    what = f"{method} {uri} body={body}"
    response = await client.request(method, uri, json=body)
    if _is_public(resource, method):
        assert response.status not in (401, 403), f"{what} without credentials"
    else:
        assert response.status == 401, f"{what} without credentials"
        assert "WWW-Authenticate" in response.headers

    for role in ROLES:
        response = await client.request(
            method, uri, json=body, headers=basic(USERS[role])
        )
        expect = _allowed(resource, method, role, body, owner)
        detail = f"{what} as {role} (owner {owner}): {response.status}"
        if expect:
            assert response.status not in (401, 403), detail
            assert response.status < 500, detail
        else:
            assert response.status == 403, detail


async def test_reading_privileges(make_client: MakeClient, state_root: Path) -> None:
    # Reads change nothing, so every route shares one app.
    client, bodies = await _service(make_client, state_root)
    failures: list[str] = []
    for path, method in CASES:
        if method not in SAFE:
            continue
        routes, resource = _resource(client, path)
        for uri, owner in _targets(routes, resource, bodies):
            try:
                await _check(client, resource, method, uri, owner, None)
            except AssertionError as err:
                failures.append(str(err).splitlines()[0])
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize(
    ("path", "method"), WRITES, ids=[f"{m} {p}" for p, m in WRITES]
)
async def test_writing_privileges(
    make_client: MakeClient, state_root: Path, path: str, method: str
) -> None:
    client, bodies = await _service(make_client, state_root)
    routes, resource = _resource(client, path)
    count = len(_targets(routes, resource, bodies))
    # A change may remove what the next case needs: each gets a fresh app.
    for index, body in itertools.product(range(count), _bodies(resource, method)):
        if index or body != _bodies(resource, method)[0]:
            client, bodies = await _service(make_client, state_root)
        uri, owner = _targets(routes, resource, bodies)[index]
        await _check(client, resource, method, uri, owner, body)


async def test_undeclared_methods_are_405(client: TestClient) -> None:
    routes = keys.ROUTES.get(client.app)
    for resource in routes.resources:
        uri = resource.path.replace("{", "").replace("}", "")
        found = routes.match(uri)
        assert found is not None and found[0] is resource, uri
        for method in METHODS:
            if method in _methods(resource):
                continue
            for headers in ({}, basic(ADMIN)):
                response = await client.request(method, uri, headers=headers, json={})
                assert response.status == 405, f"{method} {uri}"
                assert response.headers["Allow"] == resource.allow


async def test_matrix_covers_the_app(client: TestClient) -> None:
    # The table the cases were generated from is the one the app serves.
    served = keys.ROUTES.get(client.app)
    assert [(r.path, r.entity, sorted(r.handlers)) for r in served.resources] == [
        (r.path, r.entity, sorted(r.handlers)) for r in ROUTES.resources
    ]


def test_every_entity_is_in_the_privilege_map() -> None:
    for resource in ROUTES.resources:
        assert resource.entity in privilege_map.OPERATION_MAP, resource.path


def test_declared_public_methods_match_the_registry() -> None:
    for resource in ROUTES.resources:
        for method in _methods(resource):
            declared = _privilege_method(method) in resource.public
            assert declared == _is_public(resource, method), f"{method} {resource.path}"


def test_configure_self_cases_are_exercised() -> None:
    # The cases above must include one's own account and session.
    entities = {(r.entity, m) for r in ROUTES.resources for m in _methods(r)}
    for case in (
        ("ManagerAccount", "GET"),
        ("ManagerAccount", "PATCH"),
        ("Session", "GET"),
        ("Session", "DELETE"),
    ):
        assert case in entities
        alternatives = privileges.required(
            case[0], case[1], ["Password"] if case[1] == "PATCH" else []
        )
        assert (privileges.CONFIGURE_SELF,) in alternatives, case

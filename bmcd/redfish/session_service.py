"""SessionService: logging in and out, and the session idle timeout."""

from __future__ import annotations

import datetime
from http import HTTPStatus

from bmcd.core import privileges
from bmcd.core.errors import Message, RedfishError, not_found
from bmcd.core.messages import message_json
from bmcd.core.sessions import Session
from bmcd.core.validation import check_properties
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

SERVICE_URI = "/redfish/v1/SessionService"
SESSIONS_URI = "/redfish/v1/SessionService/Sessions"


def register(routes: RouteTable) -> None:
    """Declare the SessionService resources."""
    routes.add(
        SERVICE_URI,
        "SessionService",
        get=get_session_service,
        patch=patch_session_service,
    )
    # Logging in needs no credentials (DSP0266); POST is public.
    routes.add(
        SESSIONS_URI,
        "SessionCollection",
        get=get_sessions,
        post=post_session,
        public=("POST",),
    )
    routes.add(
        "/redfish/v1/SessionService/Sessions/{session_id}",
        "Session",
        get=get_session,
        delete=delete_session,
        owner=session_owner,
    )
    routes.attach("ServiceRoot", "SessionService", link(SERVICE_URI))


async def session_owner(call: Call) -> str | None:
    """The user a session belongs to (ConfigureSelf)."""
    session = await keys.SESSIONS.get(call.app).get(call["session_id"])
    return session.username if session else None


async def get_session_service(call: Call) -> Body:
    """The session settings."""
    return {
        "@odata.id": SERVICE_URI,
        "@odata.type": odata_type("SessionService"),
        "Id": "SessionService",
        "Name": "Session Service",
        "Description": "Login sessions",
        "Status": {"State": "Enabled", "Health": "OK"},
        "ServiceEnabled": True,
        "SessionTimeout": keys.SESSIONS.get(call.app).timeout,
        "Sessions": link(SESSIONS_URI),
    }


async def patch_session_service(call: Call) -> Body:
    """Change the idle timeout (30 to 86400 seconds, per the schema)."""
    body = call.body()
    check_properties("SessionService", body, ("SessionTimeout",))
    if "SessionTimeout" in body:
        await keys.SETTINGS.get(call.app).update(
            {"session.timeout": body["SessionTimeout"]}
        )
    return await get_session_service(call)


def _timestamp(seconds: float) -> str:
    moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return moment.isoformat(timespec="seconds")


def session_body(session: Session) -> Body:
    """The Session resource (never with a token or password)."""
    body: Body = {
        "@odata.id": f"{SESSIONS_URI}/{session.id}",
        "@odata.type": odata_type("Session"),
        "Id": session.id,
        "Name": "User Session",
        "Description": f"Session of {session.username}",
        "UserName": session.username,
        "Password": None,
        "SessionType": "Redfish",
        "ClientOriginIPAddress": session.origin,
        "CreatedTime": _timestamp(session.created),
    }
    if session.context is not None:
        body["Context"] = session.context
    return body


async def get_sessions(call: Call) -> Body:
    """All sessions to managers; one's own sessions to everyone else."""
    sessions = await keys.SESSIONS.get(call.app).list()
    principal = call.principal
    assert principal is not None
    if privileges.CONFIGURE_MANAGER not in principal.privileges:
        sessions = [s for s in sessions if s.username == principal.username]
    return collection(
        SESSIONS_URI,
        "SessionCollection",
        "Session Collection",
        [f"{SESSIONS_URI}/{s.id}" for s in sessions],
    )


async def post_session(call: Call) -> Reply:
    """Log in: 201 with the token in X-Auth-Token and the session's URI."""
    body = call.body()
    check_properties(
        "Session",
        body,
        ("UserName", "Password", "Context"),
        required=("UserName", "Password"),
    )
    for name in ("UserName", "Password"):
        if not isinstance(body[name], str):
            raise RedfishError.of(
                HTTPStatus.BAD_REQUEST,
                Base.PropertyValueTypeError,
                body[name],
                name,
                related=f"#/{name}",
            )
    if not keys.SETTINGS.get(call.app).get("account.service_enabled"):
        # AccountService: while it is disabled, no new sessions (Basic works).
        raise RedfishError.of(
            HTTPStatus.SERVICE_UNAVAILABLE,
            Base.ServiceDisabled,
            "/redfish/v1/AccountService",
        )
    authenticator = keys.AUTHENTICATOR.get(call.app)
    account = await authenticator.login(body["UserName"], body["Password"], call.client)
    session, token = await keys.SESSIONS.get(call.app).create(
        account.username, call.client, body.get("Context")
    )
    reply = session_body(session)
    if keys.ACCOUNTS.get(call.app).must_change_password(account):
        # The session exists, but it may only be used to change the password.
        reply["@Message.ExtendedInfo"] = [
            message_json(
                Message(
                    Base.PasswordChangeRequired,
                    (f"/redfish/v1/AccountService/Accounts/{account.id}",),
                )
            )
        ]
    uri = f"{SESSIONS_URI}/{session.id}"
    return Reply(reply, HTTPStatus.CREATED, {"Location": uri, "X-Auth-Token": token})


async def _session(call: Call) -> Session:
    session = await keys.SESSIONS.get(call.app).get(call["session_id"])
    if session is None:
        raise not_found("Session", call["session_id"])
    return session


async def get_session(call: Call) -> Body:
    """One session."""
    return session_body(await _session(call))


async def delete_session(call: Call) -> Reply:
    """Log out (or, for an administrator, end someone's session)."""
    session = await _session(call)
    await keys.SESSIONS.get(call.app).delete(session.id)
    return Reply(None, HTTPStatus.NO_CONTENT)

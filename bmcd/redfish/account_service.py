"""AccountService: the password and lockout policy, accounts and roles."""

from __future__ import annotations

from collections.abc import Collection
from http import HTTPStatus
from typing import Any

from bmcd.contracts import Account, AccountChanges
from bmcd.core import privileges
from bmcd.core.accounts import SUPPORTED_ACCOUNT_TYPES, AccountManager
from bmcd.core.errors import RedfishError, not_found
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

SERVICE_URI = "/redfish/v1/AccountService"
ACCOUNTS_URI = "/redfish/v1/AccountService/Accounts"
ROLES_URI = "/redfish/v1/AccountService/Roles"

# AccountService property -> settings key.
_POLICY = {
    "MinPasswordLength": "account.min_password_length",
    "MaxPasswordLength": "account.max_password_length",
    "AccountLockoutThreshold": "account.lockout_threshold",
    "AccountLockoutDuration": "account.lockout_duration",
    "AccountLockoutCounterResetAfter": "account.lockout_counter_reset_after",
    "PasswordExpirationDays": "account.password_expiration_days",
    "ServiceEnabled": "account.service_enabled",
}
# Password lengths bmcd can store and hash sensibly.
PASSWORD_LENGTH_RANGE = (1, 256)
_ONE_YEAR = 365 * 24 * 3600
# The values bmcd accepts, inclusive. Beyond these a setting is a typo, not a
# policy: a threshold past 1000 guesses protects nothing, a lockout or reset
# window past a year is "until unlocked" (Duration 0) in disguise, and a
# password that lasts more than ten years never expires (null).
POLICY_RANGES = {
    "MinPasswordLength": PASSWORD_LENGTH_RANGE,
    "MaxPasswordLength": PASSWORD_LENGTH_RANGE,
    "AccountLockoutThreshold": (0, 1000),
    "AccountLockoutDuration": (0, _ONE_YEAR),
    "AccountLockoutCounterResetAfter": (0, _ONE_YEAR),
    "PasswordExpirationDays": (1, 3650),
}

_ACCOUNT_CREATE = (
    "UserName",
    "Password",
    "RoleId",
    "Enabled",
    "AccountTypes",
    "PasswordChangeRequired",
    "Locked",
)
_ACCOUNT_PATCH = (
    "UserName",
    "Password",
    "RoleId",
    "Enabled",
    "Locked",
    "PasswordChangeRequired",
    "AccountTypes",
)


def register(routes: RouteTable) -> None:
    """Declare the AccountService resources."""
    routes.add(
        SERVICE_URI,
        "AccountService",
        get=get_account_service,
        patch=patch_account_service,
    )
    routes.add(
        ACCOUNTS_URI, "ManagerAccountCollection", get=get_accounts, post=post_account
    )
    routes.add(
        "/redfish/v1/AccountService/Accounts/{account_id}",
        "ManagerAccount",
        get=get_account,
        patch=patch_account,
        delete=delete_account,
        owner=account_owner,
    )
    routes.add(ROLES_URI, "RoleCollection", get=get_roles)
    routes.add("/redfish/v1/AccountService/Roles/{role_id}", "Role", get=get_role)
    routes.attach("ServiceRoot", "AccountService", link(SERVICE_URI))


def _accounts(call: Call) -> AccountManager:
    return keys.ACCOUNTS.get(call.app)


async def account_owner(call: Call) -> str | None:
    """The user name of the account a request is about (ConfigureSelf)."""
    account = await _accounts(call).backend.get_account(call["account_id"])
    return account.username if account else None


async def get_account_service(call: Call) -> Body:
    """The account policy and links to accounts and roles."""
    settings = keys.SETTINGS.get(call.app)
    body: Body = {
        "@odata.id": SERVICE_URI,
        "@odata.type": odata_type("AccountService"),
        "Id": "AccountService",
        "Name": "Account Service",
        "Description": "BMC user accounts",
        "Status": {"State": "Enabled", "Health": "OK"},
        "SupportedAccountTypes": list(SUPPORTED_ACCOUNT_TYPES),
        "LocalAccountAuth": "Enabled",
        "Accounts": link(ACCOUNTS_URI),
        "Roles": link(ROLES_URI),
    }
    for prop, key in _POLICY.items():
        body[prop] = settings.get(key)
    body["AccountLockoutCounterResetEnabled"] = bool(
        settings.get("account.lockout_counter_reset_after")
    )
    return body


async def patch_account_service(call: Call) -> Body:
    """Change the password and lockout policy; all or nothing."""
    body = call.body()
    check_properties(
        "AccountService", body, _POLICY, nullable=("PasswordExpirationDays",)
    )
    settings = keys.SETTINGS.get(call.app)
    merged = {prop: body.get(prop, settings.get(key)) for prop, key in _POLICY.items()}
    _check_policy(merged, written=body.keys())
    await settings.update({_POLICY[p]: v for p, v in body.items() if p in _POLICY})
    await _accounts(call).apply_lockout_policy()
    return await get_account_service(call)


def _check_policy(policy: dict[str, Any], written: Collection[str]) -> None:
    # Only the written values are range-checked: a value stored before a
    # bound tightened must not block changes to the others.
    for prop, (low, high) in POLICY_RANGES.items():
        value = policy[prop]
        if prop in written and value is not None and not low <= value <= high:
            raise RedfishError.of(
                HTTPStatus.BAD_REQUEST,
                Base.PropertyValueOutOfRange,
                value,
                prop,
                related=f"#/{prop}",
            )
    if policy["MinPasswordLength"] > policy["MaxPasswordLength"]:
        raise _conflict("MinPasswordLength", "MaxPasswordLength", written)
    duration = policy["AccountLockoutDuration"]
    # The schema: the counter reset must not outlast the lockout it counts to.
    if duration and policy["AccountLockoutCounterResetAfter"] > duration:
        raise _conflict(
            "AccountLockoutCounterResetAfter", "AccountLockoutDuration", written
        )


def _conflict(first: str, second: str, written: Collection[str]) -> RedfishError:
    """PropertyValueConflict naming first a property the request wrote."""
    if first not in written:
        first, second = second, first
    return RedfishError.of(
        HTTPStatus.BAD_REQUEST,
        Base.PropertyValueConflict,
        first,
        second,
        related=f"#/{first}",
    )


def _can_see_all_accounts(call: Call) -> bool:
    principal = call.principal
    return principal is not None and bool(
        {privileges.CONFIGURE_USERS, privileges.CONFIGURE_MANAGER}
        & principal.privileges
    )


async def get_accounts(call: Call) -> Body:
    """Every account to user administrators; one's own account to others."""
    accounts = await _accounts(call).list()
    if not _can_see_all_accounts(call):
        assert call.principal is not None
        accounts = [a for a in accounts if a.username == call.principal.username]
    return collection(
        ACCOUNTS_URI,
        "ManagerAccountCollection",
        "Accounts Collection",
        [f"{ACCOUNTS_URI}/{a.id}" for a in accounts],
    )


def account_body(manager: AccountManager, account: Account) -> Body:
    """The ManagerAccount resource for ``account``."""
    expiration = manager.password_expiration(account)
    body: Body = {
        "@odata.id": f"{ACCOUNTS_URI}/{account.id}",
        "@odata.type": odata_type("ManagerAccount"),
        "Id": account.id,
        "Name": "User Account",
        "Description": "User Account",
        "UserName": account.username,
        "Password": None,
        "RoleId": account.role_id,
        "Enabled": account.enabled,
        "Locked": account.locked,
        "PasswordChangeRequired": manager.must_change_password(account),
        "PasswordExpiration": expiration.isoformat(timespec="seconds")
        if expiration
        else None,
        "AccountTypes": list(account.account_types),
        "Links": {"Role": link(f"{ROLES_URI}/{account.role_id}")},
    }
    return body


async def get_account(call: Call) -> Body:
    """One account."""
    manager = _accounts(call)
    return account_body(manager, await manager.get(call["account_id"]))


def _service_enabled(call: Call) -> None:
    if not keys.SETTINGS.get(call.app).get("account.service_enabled"):
        raise RedfishError.of(
            HTTPStatus.SERVICE_UNAVAILABLE, Base.ServiceDisabled, SERVICE_URI
        )


def _account_types(body: Body) -> tuple[str, ...] | None:
    types = body.get("AccountTypes")
    if types is None:
        return None
    for value in types:
        if value not in SUPPORTED_ACCOUNT_TYPES:
            raise RedfishError.of(
                HTTPStatus.BAD_REQUEST,
                Base.PropertyValueNotInList,
                value,
                "AccountTypes",
                related="#/AccountTypes",
            )
    return tuple(types)


async def post_account(call: Call) -> Reply:
    """Create an account from UserName, Password and RoleId."""
    body = call.body()
    check_properties(
        "ManagerAccount",
        body,
        _ACCOUNT_CREATE,
        required=("UserName", "Password", "RoleId"),
    )
    _service_enabled(call)
    if body.get("Locked") is True:
        raise RedfishError.of(
            HTTPStatus.BAD_REQUEST,
            Base.PropertyValueNotInList,
            True,
            "Locked",
            related="#/Locked",
        )
    manager = _accounts(call)
    account = await manager.create(
        body["UserName"],
        body["Password"],
        body["RoleId"],
        enabled=body.get("Enabled", True),
        password_change_required=body.get("PasswordChangeRequired", False),
        account_types=_account_types(body) or SUPPORTED_ACCOUNT_TYPES,
    )
    uri = f"{ACCOUNTS_URI}/{account.id}"
    return Reply(account_body(manager, account), HTTPStatus.CREATED, {"Location": uri})


async def patch_account(call: Call) -> Body:
    """Change an account: all requested changes, or none."""
    body = call.body()
    check_properties("ManagerAccount", body, _ACCOUNT_PATCH)
    manager = _accounts(call)
    account_id = call["account_id"]
    await manager.get(account_id)
    own_password_only = set(body) - {"@odata.etag"} == {"Password"}
    if not own_password_only:
        _service_enabled(call)
    if body.get("Locked") is True:
        raise RedfishError.of(
            HTTPStatus.BAD_REQUEST,
            Base.PropertyValueNotInList,
            True,
            "Locked",
            related="#/Locked",
        )
    changes = AccountChanges(
        password=body.get("Password"),
        role_id=body.get("RoleId"),
        enabled=body.get("Enabled"),
        locked=body.get("Locked"),
        password_change_required=body.get("PasswordChangeRequired"),
        account_types=_account_types(body),
        username=body.get("UserName"),
    )
    account = await manager.update(account_id, changes)
    keys.AUTHENTICATOR.get(call.app).forget(account.username)
    return account_body(manager, account)


async def delete_account(call: Call) -> Reply:
    """Delete an account and end its sessions."""
    _service_enabled(call)
    manager = _accounts(call)
    account = await manager.get(call["account_id"])
    await manager.delete(account.id)
    keys.AUTHENTICATOR.get(call.app).forget(account.username)
    return Reply(None, HTTPStatus.NO_CONTENT)


async def get_roles(call: Call) -> Body:
    """The predefined roles."""
    return collection(
        ROLES_URI,
        "RoleCollection",
        "Roles Collection",
        [f"{ROLES_URI}/{role}" for role in privileges.ROLES],
    )


async def get_role(call: Call) -> Body:
    """One predefined role and its privileges."""
    role = privileges.ROLES.get(call["role_id"])
    if role is None:
        raise not_found("Role", call["role_id"])
    return {
        "@odata.id": f"{ROLES_URI}/{role.id}",
        "@odata.type": odata_type("Role"),
        "Id": role.id,
        "Name": f"{role.id} Role",
        "Description": role.description,
        "RoleId": role.id,
        "IsPredefined": True,
        "AssignedPrivileges": list(role.privileges),
        "OemPrivileges": [],
    }

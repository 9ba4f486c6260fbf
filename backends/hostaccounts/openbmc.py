"""Accounts through OpenBMC's user manager (xyz.openbmc_project.User.Manager).

The user manager (phosphor-user-manager) creates the Linux users and keeps
their privilege group, group list and enabled flag; it has no way to set a
password, so bmcd sets it through PAM (pam_chauthtok) in the root helper, as
bmcweb does. An account is visible to Redfish while it is in the configured
group (default "redfish") and holds a privilege the role table names.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from bmcd.contracts import (
    Account,
    AccountChanges,
    AccountExistsError,
    AccountLimitError,
    AccountNotFoundError,
    BackendContext,
    BackendUnavailableError,
    LockoutPolicy,
    ValueRefusedError,
)

from .base import HostAccountBackend, Undo
from .dbus import Connection, DBusCallError
from .options import ROLES, Reader

_LOGGER = logging.getLogger(__name__)

SERVICE = "xyz.openbmc_project.User.Manager"
ROOT = "/xyz/openbmc_project/user"
MANAGER = "xyz.openbmc_project.User.Manager"
ATTRIBUTES = "xyz.openbmc_project.User.Attributes"
DELETE = "xyz.openbmc_project.Object.Delete"
POLICY = "xyz.openbmc_project.User.AccountPolicy"
_ERROR = "xyz.openbmc_project.User.Common.Error."
# The user manager's names are object path elements.
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,31}$")
_NO_OBJECT = frozenset(
    {
        "org.freedesktop.DBus.Error.UnknownObject",
        "org.freedesktop.DBus.Error.UnknownInterface",
        "org.freedesktop.DBus.Error.UnknownMethod",
        "org.freedesktop.DBus.Error.UnknownProperty",
        _ERROR + "UserNameDoesNotExist",
    }
)


def _path(username: str) -> str:
    return f"{ROOT}/{username}"


class OpenBMCAccounts(HostAccountBackend):
    """The ``openbmc`` accounts backend."""

    name = "openbmc"
    default_roles = {
        "Administrator": "priv-admin",
        "Operator": "priv-operator",
        "ReadOnly": "priv-user",
    }

    def __init__(self, context: BackendContext) -> None:
        super().__init__(context)
        self._bus = Connection(
            SERVICE,
            address=self.options.dbus_address,
            timeout=self.options.dbus_timeout,
        )
        self._role_of = {priv: role for role, priv in self.options.roles.items()}

    def read_dialect_options(self, reader: Reader) -> None:
        """visible_group, create_groups, apply_account_policy."""
        self.visible_group: str = reader.get("visible_group", str, "redfish")
        self.create_groups = reader.strings("create_groups", (self.visible_group,))
        if self.visible_group not in self.create_groups:
            raise reader.fail(
                "create_groups", f"must include visible_group {self.visible_group!r}"
            )
        self.apply_account_policy: bool = reader.get(
            "apply_account_policy", bool, False
        )

    def helper_groups(self) -> frozenset[str]:
        """OpenBMC marks Redfish users with one group."""
        return frozenset({self.visible_group})

    async def stop(self) -> None:
        """Disconnect from D-Bus and stop PAM."""
        await self._bus.close()
        await super().stop()

    # Reading.

    def _account(self, username: str, props: dict[str, Any]) -> Account | None:
        role = self._role_of.get(props.get("UserPrivilege", ""))
        groups = props.get("UserGroups", [])
        if role is None or self.visible_group not in groups:
            return None
        return Account(
            id=username,
            username=username,
            role_id=role,
            enabled=bool(props.get("UserEnabled", True)),
            locked=bool(props.get("UserLockedForFailedAttempt", False)),
            password_change_required=bool(props.get("UserPasswordExpired", False)),
        )

    async def fetch(self, username: str) -> Account | None:
        """The user's Attributes over D-Bus; None if absent or invisible."""
        if not _NAME_RE.match(username):
            return None
        try:
            props = await self._bus.get_all(_path(username), ATTRIBUTES)
        except DBusCallError as err:
            if err.name in _NO_OBJECT:
                return None
            raise self._error(err, username) from None
        return self._account(username, props)

    async def fetch_all(self) -> list[Account]:
        """Every user object under /xyz/openbmc_project/user."""
        try:
            objects = await self._bus.managed_objects(ROOT)
        except DBusCallError as err:
            raise self._error(err, "") from None
        accounts = []
        for path, interfaces in objects.items():
            props = interfaces.get(ATTRIBUTES)
            if props is None or not path.startswith(ROOT + "/"):
                continue
            account = self._account(path.rsplit("/", 1)[-1], props)
            if account is not None:
                accounts.append(account)
        return accounts

    # Changing.

    def _error(self, err: DBusCallError, username: str) -> Exception:
        short = err.name.removeprefix(_ERROR)
        if short == "UserNameExists":
            return AccountExistsError(username)
        if short == "UserNameDoesNotExist" or err.name in _NO_OBJECT:
            return AccountNotFoundError(username)
        if short in ("UserNamePrivFail", "UserNameGroupFail"):
            _LOGGER.error(
                "OpenBMC's user manager refused a privilege or group "
                "for %s (%s): check [backends.openbmc] roles and "
                "create_groups against its AllPrivileges and "
                "AllGroups",
                username,
                err.text,
            )
            return BackendUnavailableError(f"user manager: {err}")
        if short == "NoResource":
            return AccountLimitError(
                f"user manager has no room for another user: {err.text}"
            )
        if short == "InvalidArgument":
            # A name the user manager's own rules refuse.
            return ValueRefusedError("UserName", username, err.text)
        return BackendUnavailableError(f"user manager refused: {err}")

    async def _call(
        self,
        username: str,
        path: str,
        interface: str,
        member: str,
        signature: str = "",
        body: list[Any] | None = None,
    ) -> list[Any]:
        try:
            return await self._bus.call(path, interface, member, signature, body or [])
        except DBusCallError as err:
            raise self._error(err, username) from None

    async def _set(self, username: str, prop: str, signature: str, value: Any) -> None:
        try:
            await self._bus.set_property(
                _path(username), ATTRIBUTES, prop, signature, value
            )
        except DBusCallError as err:
            raise self._error(err, username) from None

    async def create_account(
        self,
        username: str,
        password: str,
        role_id: str,
        *,
        enabled: bool = True,
        password_change_required: bool = False,
        account_types: tuple[str, ...] = ("Redfish",),
    ) -> Account:
        """CreateUser, then the password through PAM in the helper."""
        if not _NAME_RE.match(username):
            raise ValueRefusedError(
                "UserName", username, "OpenBMC user names are letters, digits and _"
            )
        if role_id not in ROLES:
            raise BackendUnavailableError(f"no privilege for role {role_id}")
        await self._call(
            username,
            ROOT,
            MANAGER,
            "CreateUser",
            "sassb",
            [username, list(self.create_groups), self.options.roles[role_id], enabled],
        )
        self.forget(username)
        try:
            await self.privileged.request(
                "change_password", user=username, password=password
            )
            if password_change_required:
                await self.privileged.request(
                    "set_password_expired", user=username, expired=True
                )
        except BaseException:
            await self.undo(
                [lambda: self._call(username, _path(username), DELETE, "Delete")]
            )
            raise
        await self.reset_failures(username)
        _LOGGER.info(
            "Account %s created with privilege %s",
            username,
            self.options.roles[role_id],
        )
        account = await self._lookup(username, fresh=True)
        if account is None:
            raise BackendUnavailableError(f"{username} vanished after CreateUser")
        return account

    async def update_account(self, account_id: str, changes: AccountChanges) -> Account:
        """Set the changed properties; undo them if a later one fails."""
        current = await self.fetch(account_id)
        if current is None:
            raise AccountNotFoundError(account_id)
        new_name = (
            changes.username if changes.username not in (None, account_id) else None
        )
        if new_name is not None and not _NAME_RE.match(new_name):
            raise ValueRefusedError(
                "UserName", new_name, "OpenBMC user names are letters, digits and _"
            )
        if changes.password is not None:
            await self.refuse_reuse(account_id, changes.password)

        async def password() -> Undo | None:
            assert changes.password is not None
            await self.privileged.request(
                "change_password", user=account_id, password=changes.password
            )
            return None

        async def role() -> Undo:
            assert changes.role_id is not None
            await self._set(
                account_id, "UserPrivilege", "s", self.options.roles[changes.role_id]
            )
            return lambda: self._set(
                account_id, "UserPrivilege", "s", self.options.roles[current.role_id]
            )

        async def enabled() -> Undo:
            await self._set(account_id, "UserEnabled", "b", changes.enabled)
            return lambda: self._set(account_id, "UserEnabled", "b", current.enabled)

        async def unlock() -> None:
            if current.locked:
                await self._set(account_id, "UserLockedForFailedAttempt", "b", False)
            await self.reset_failures(account_id)

        async def rename() -> None:
            await self._call(
                account_id, ROOT, MANAGER, "RenameUser", "ss", [account_id, new_name]
            )
            await self.reset_failures(account_id)

        return await self.apply_account_changes(
            current,
            changes,
            new_name,
            password=password,
            role=role,
            enabled=enabled,
            unlock=unlock,
            rename=rename,
        )

    async def delete_account(self, account_id: str) -> None:
        """Delete the user object (the user manager runs userdel)."""
        if await self.fetch(account_id) is None:
            raise AccountNotFoundError(account_id)
        await self._call(account_id, _path(account_id), DELETE, "Delete")
        self.forget(account_id)
        await self.reset_failures(account_id)
        _LOGGER.info("Account %s deleted", account_id)

    async def set_lockout_policy(self, policy: LockoutPolicy) -> None:
        """bmcd's faillock file; with apply_account_policy, the BMC's too."""
        await super().set_lockout_policy(policy)
        if not self.apply_account_policy:
            return
        try:
            await self._bus.set_property(
                ROOT,
                POLICY,
                "MaxLoginAttemptBeforeLockout",
                "q",
                min(policy.threshold, 65535),
            )
            await self._bus.set_property(
                ROOT, POLICY, "AccountUnlockTimeout", "u", policy.duration
            )
        except (DBusCallError, BackendUnavailableError) as err:
            _LOGGER.error(
                "Can't set the user manager's AccountPolicy: %s; "
                "bmcd's own lockout applies",
                err,
            )

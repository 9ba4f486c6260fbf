"""Accounts through AccountsService (org.freedesktop.Accounts).

AccountsService, as on Debian and Raspberry Pi OS, creates and deletes users
and sets their password hash, lock and account type; it cannot change
supplementary groups, so the Redfish role groups are changed by bmcd's root
helper. What an account *is* (role, enabled, expiry) is read straight from
the host's databases (passwd, group, shadow), which AccountsService itself
reads: the per-request account check then needs no D-Bus round trip and
keeps working while accounts-daemon restarts.
"""

from __future__ import annotations

import asyncio
import logging
import pwd
import re
from dataclasses import replace
from typing import Any

from bmcd.contracts import (
    Account,
    AccountChanges,
    AccountExistsError,
    AccountNotFoundError,
    BackendContext,
    BackendUnavailableError,
    ValueRefusedError,
)

from . import hostdb
from .base import HostAccountBackend, Undo
from .dbus import Connection, DBusCallError
from .options import ROLES, Reader

_LOGGER = logging.getLogger(__name__)

SERVICE = "org.freedesktop.Accounts"
PATH = "/org/freedesktop/Accounts"
ACCOUNTS = "org.freedesktop.Accounts"
USER = "org.freedesktop.Accounts.User"
_ERROR = "org.freedesktop.Accounts.Error."
# AccountsService's account types.
STANDARD = 0
ADMINISTRATOR = 1


def _username_taken(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


class AccountsServiceAccounts(HostAccountBackend):
    """The ``accountsservice`` accounts backend."""

    name = "accountsservice"
    default_roles = {
        "Administrator": "bmcd-admin",
        "Operator": "bmcd-operator",
        "ReadOnly": "bmcd-readonly",
    }

    def __init__(self, context: BackendContext) -> None:
        super().__init__(context)
        self._bus = Connection(
            SERVICE,
            address=self.options.dbus_address,
            timeout=self.options.dbus_timeout,
        )
        self._groups = [self.options.roles[role] for role in ROLES]

    def read_dialect_options(self, reader: Reader) -> None:
        """remove_home, host_admin_roles."""
        self.remove_home: bool = reader.get("remove_home", bool, True)
        self.host_admin_roles = reader.strings("host_admin_roles", ())
        for role in self.host_admin_roles:
            if role not in ROLES:
                raise reader.fail("host_admin_roles", f"{role!r} is not a role")

    async def start(self) -> None:
        """Check the role groups exist, then the shared start."""
        missing = await asyncio.to_thread(hostdb.missing_groups, self._groups)
        if missing:
            _LOGGER.error(
                "Role groups %s do not exist: no account can have "
                "those roles; create them with groupadd --system",
                ", ".join(missing),
            )
        await super().start()

    async def stop(self) -> None:
        """Disconnect from D-Bus and stop PAM."""
        await self._bus.close()
        await super().stop()

    # Reading: the host's databases.

    def _role(self, groups: frozenset[str]) -> str | None:
        for role in ROLES:
            if self.options.roles[role] in groups:
                return role
        return None

    def _read(self, username: str) -> Account | None:
        user = hostdb.lookup(username, self._groups)
        if user is None:
            return None
        role = self._role(user.groups)
        if role is None:
            return None
        account = Account(id=user.name, username=user.name, role_id=role)
        shadow = hostdb.shadow(user.name)
        if shadow is None:
            return account
        today = hostdb.today()
        return replace(
            account,
            enabled=not (shadow.password_locked() or shadow.account_expired(today)),
            password_change_required=shadow.must_change(today),
            password_changed_at=shadow.changed_at(),
        )

    def _read_all(self) -> list[Account]:
        accounts = []
        for name in hostdb.group_members(self._groups):
            account = self._read(name)
            if account is not None:
                accounts.append(account)
        return accounts

    async def fetch(self, username: str) -> Account | None:
        """The user from passwd, group and shadow; None if not bmcd's."""
        return await asyncio.to_thread(self._read, username)

    async def fetch_all(self) -> list[Account]:
        """Every member of a role group."""
        return await asyncio.to_thread(self._read_all)

    # Changing: AccountsService and the helper.

    def _error(self, err: DBusCallError, username: str) -> Exception:
        short = err.name.removeprefix(_ERROR)
        if short == "UserExists":
            return AccountExistsError(username)
        if short == "UserDoesNotExist":
            return AccountNotFoundError(username)
        if short == "PermissionDenied" or err.name.endswith("AccessDenied"):
            _LOGGER.error(
                "AccountsService refused bmcd (%s): grant bmcd's user "
                "the polkit action org.freedesktop.accounts."
                "user-administration",
                err.text,
            )
        # Names useradd would refuse are caught before the call
        # (_check_host_name), so a Failed here is the service's own trouble.
        return BackendUnavailableError(f"AccountsService: {err}")

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

    async def _user_path(self, username: str) -> str:
        try:
            (path,) = await self._bus.call(
                PATH, ACCOUNTS, "FindUserByName", "s", [username]
            )
        except DBusCallError as err:
            if err.name == _ERROR + "Failed":
                # "Failed to look up user": AccountsService's not-found.
                raise AccountNotFoundError(username) from None
            raise self._error(err, username) from None
        return str(path)

    async def _user_call(
        self, username: str, member: str, signature: str, body: list[Any]
    ) -> None:
        path = await self._user_path(username)
        await self._call(username, path, USER, member, signature, body)

    def _account_type(self, role_id: str) -> int:
        return ADMINISTRATOR if role_id in self.host_admin_roles else STANDARD

    async def _set_role(self, username: str, role_id: str) -> None:
        # Join the new group before leaving the old ones: the helper only
        # acts on users that are in a role group.
        target = self.options.roles[role_id]
        await self.privileged.request("add_to_group", user=username, group=target)
        for group in self._groups:
            if group != target:
                await self.privileged.request(
                    "remove_from_group", user=username, group=group
                )

    async def _set_password(self, username: str, password: str, enabled: bool) -> None:
        hashed = await self.hash_password(password)
        await self._user_call(username, "SetPassword", "ss", [hashed, ""])
        if not enabled:
            # SetPassword unlocks the user: a disabled account stays so.
            await self._user_call(username, "SetLocked", "b", [True])

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
        """CreateUser, join the role group, SetPassword; undone on failure."""
        if role_id not in ROLES:
            raise BackendUnavailableError(f"no group for role {role_id}")
        _check_host_name(username)
        # Any host user, bmcd's or not, owns its name.
        if await asyncio.to_thread(_username_taken, username):
            raise AccountExistsError(username)
        (path,) = await self._call(
            username,
            PATH,
            ACCOUNTS,
            "CreateUser",
            "ssi",
            [username, "", self._account_type(role_id)],
        )
        self.forget(username)
        try:
            await self.privileged.request(
                "add_to_group", user=username, group=self.options.roles[role_id]
            )
            await self._set_password(username, password, enabled)
            if password_change_required:
                await self.privileged.request(
                    "set_password_expired", user=username, expired=True
                )
        except BaseException:
            await self.undo([lambda: self._delete(username, str(path))])
            raise
        finally:
            self.forget(username)
        await self.reset_failures(username)
        _LOGGER.info(
            "Account %s created in group %s", username, self.options.roles[role_id]
        )
        account = await self._lookup(username, fresh=True)
        if account is None:
            raise BackendUnavailableError(f"{username} vanished after CreateUser")
        return account

    async def update_account(self, account_id: str, changes: AccountChanges) -> Account:
        """Apply each change; undo the reversible ones if a later one fails."""
        current = await self.fetch(account_id)
        if current is None:
            raise AccountNotFoundError(account_id)
        new_name = (
            changes.username if changes.username not in (None, account_id) else None
        )
        if new_name is not None:
            _check_host_name(new_name)
        if new_name is not None and await asyncio.to_thread(_username_taken, new_name):
            raise AccountExistsError(new_name)
        enabled = current.enabled if changes.enabled is None else changes.enabled
        if changes.password is not None:
            await self.refuse_reuse(account_id, changes.password)

        async def password() -> None:
            assert changes.password is not None
            await self._set_password(account_id, changes.password, enabled)

        async def role() -> Undo:
            assert changes.role_id is not None
            await self._set_role(account_id, changes.role_id)
            if self.host_admin_roles:
                await self._user_call(
                    account_id,
                    "SetAccountType",
                    "i",
                    [self._account_type(changes.role_id)],
                )
            return lambda: self._set_role(account_id, current.role_id)

        async def lock() -> Undo:
            await self._user_call(account_id, "SetLocked", "b", [not enabled])
            return lambda: self._user_call(
                account_id, "SetLocked", "b", [not current.enabled]
            )

        async def unlock() -> None:
            await self.reset_failures(account_id)

        async def rename() -> None:
            await self._user_call(account_id, "SetUserName", "s", [new_name])
            await self.reset_failures(account_id)

        return await self.apply_account_changes(
            current,
            changes,
            new_name,
            password=password,
            role=role,
            enabled=lock,
            unlock=unlock,
            rename=rename,
        )

    async def _delete(self, username: str, path: str | None = None) -> None:
        path = path or await self._user_path(username)
        props = await self._bus.get_all(path, USER)
        await self._call(
            username,
            PATH,
            ACCOUNTS,
            "DeleteUser",
            "xb",
            [int(props["Uid"]), self.remove_home],
        )

    async def delete_account(self, account_id: str) -> None:
        """DeleteUser (with its home unless remove_home is false)."""
        if await self.fetch(account_id) is None:
            raise AccountNotFoundError(account_id)
        await self._delete(account_id)
        self.forget(account_id)
        await self.reset_failures(account_id)
        _LOGGER.info("Account %s deleted", account_id)


# Debian's useradd default NAME_REGEX, and the utmp name length limit.
_HOST_NAME = re.compile(r"[a-z_][a-z0-9_-]*\$?")
_HOST_NAME_MAX = 32


def _check_host_name(name: str) -> None:
    """Refuse, before AccountsService does, a name useradd would not take."""
    if len(name) > _HOST_NAME_MAX or not _HOST_NAME.fullmatch(name):
        raise ValueRefusedError(
            "UserName",
            name,
            "host user names are lower-case letters, digits, '_' and '-', "
            f"starting with a letter or '_', at most {_HOST_NAME_MAX} long",
        )

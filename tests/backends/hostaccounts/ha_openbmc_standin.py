# ruff: noqa: F722, F821  (D-Bus signatures as annotations, for dbus-fast)
"""A stand-in for OpenBMC's phosphor-user-manager on a private bus.

Written for the tests from the interface's published shape (names, types,
errors); it keeps users in memory unless ``host_users`` is set, in which case
(inside the tests' namespace sandbox only) it runs useradd/userdel as the
real one does. Signatures are D-Bus type strings, as dbus-fast 1.84 needs;
no ``from __future__ import annotations`` here, which would hide them.
"""

import contextlib
import subprocess

from bmcd_backends.hostaccounts import hostdb
from bmcd_backends.hostaccounts.dbus import release_stream
from dbus_fast import DBusError, PropertyAccess
from dbus_fast.aio import MessageBus
from dbus_fast.service import ServiceInterface, dbus_property, method, signal

NAME = "xyz.openbmc_project.User.Manager"
ROOT = "/xyz/openbmc_project/user"
ERR = "xyz.openbmc_project.User.Common.Error."
PRIVILEGES = ["priv-admin", "priv-operator", "priv-user", "priv-noaccess"]
GROUPS = ["ipmi", "redfish", "ssh", "web", "hostconsole"]
MAX_USERS = 15


class UserAttributes(ServiceInterface):
    """xyz.openbmc_project.User.Attributes of one user."""

    def __init__(
        self, manager: "Manager", name: str, groups: list, privilege: str, enabled: bool
    ) -> None:
        super().__init__("xyz.openbmc_project.User.Attributes")
        self.manager = manager
        self.user = name
        self.groups = list(groups)
        self.privilege = privilege
        self.enabled = enabled
        self.locked = False
        self.expired = False

    @dbus_property()
    def UserPrivilege(self) -> "s":
        return self.privilege

    @UserPrivilege.setter
    def UserPrivilege(self, value: "s"):
        if value not in PRIVILEGES:
            raise DBusError(ERR + "UserNamePrivFail", value)
        self.privilege = value

    @dbus_property()
    def UserGroups(self) -> "as":
        return self.groups

    @UserGroups.setter
    def UserGroups(self, value: "as"):
        if not set(value) <= set(GROUPS):
            raise DBusError(ERR + "UserNameGroupFail", ",".join(value))
        self.groups = list(value)

    @dbus_property()
    def UserEnabled(self) -> "b":
        return self.enabled

    @UserEnabled.setter
    def UserEnabled(self, value: "b"):
        self.enabled = value

    @dbus_property()
    def UserLockedForFailedAttempt(self) -> "b":
        return self.locked

    @UserLockedForFailedAttempt.setter
    def UserLockedForFailedAttempt(self, value: "b"):
        if value:
            raise DBusError(
                "xyz.openbmc_project.Common.Error.NotAllowed",
                "only unlocking is allowed",
            )
        self.locked = False

    @dbus_property(access=PropertyAccess.READ)
    def UserPasswordExpired(self) -> "b":
        return self.manager.password_expired(self)

    @dbus_property(access=PropertyAccess.READ)
    def RemoteUser(self) -> "b":
        return False


class UserDelete(ServiceInterface):
    """xyz.openbmc_project.Object.Delete of one user."""

    def __init__(self, manager: "Manager", name: str) -> None:
        super().__init__("xyz.openbmc_project.Object.Delete")
        self.manager = manager
        self.user = name

    @method()
    def Delete(self):
        self.manager.delete(self.user)


class AccountPolicy(ServiceInterface):
    """xyz.openbmc_project.User.AccountPolicy at the root."""

    def __init__(self) -> None:
        super().__init__("xyz.openbmc_project.User.AccountPolicy")
        self.max_attempts = 0
        self.unlock_timeout = 0

    @dbus_property()
    def MaxLoginAttemptBeforeLockout(self) -> "q":
        return self.max_attempts

    @MaxLoginAttemptBeforeLockout.setter
    def MaxLoginAttemptBeforeLockout(self, value: "q"):
        self.max_attempts = value

    @dbus_property()
    def AccountUnlockTimeout(self) -> "u":
        return self.unlock_timeout

    @AccountUnlockTimeout.setter
    def AccountUnlockTimeout(self, value: "u"):
        self.unlock_timeout = value


class Manager(ServiceInterface):
    """xyz.openbmc_project.User.Manager at the root."""

    def __init__(self, host_users: bool = False) -> None:
        super().__init__(NAME)
        self.bus = None
        self.host_users = host_users
        self.users = {}
        self.deletes = {}
        self.policy = AccountPolicy()

    def _export_user(self, attrs: UserAttributes) -> None:
        path = f"{ROOT}/{attrs.user}"
        self.bus.export(path, attrs)
        delete = self.deletes.setdefault(attrs.user, UserDelete(self, attrs.user))
        self.bus.export(path, delete)

    def export_all(self, bus) -> None:
        """Put every object on ``bus`` (again after a restart)."""
        self.bus = bus
        bus.export(ROOT, self)
        bus.export(ROOT, self.policy)
        for attrs in self.users.values():
            self._export_user(attrs)

    @method()
    def CreateUser(self, name: "s", groups: "as", privilege: "s", enabled: "b"):
        if name in self.users:
            raise DBusError(ERR + "UserNameExists", f"{name} exists")
        if not name.replace("_", "a").isalnum() or name[0].isdigit():
            raise DBusError(
                "xyz.openbmc_project.Common.Error.InvalidArgument", "bad user name"
            )
        if privilege not in PRIVILEGES:
            raise DBusError(ERR + "UserNamePrivFail", privilege)
        if not set(groups) <= set(GROUPS):
            raise DBusError(ERR + "UserNameGroupFail", ",".join(groups))
        if len(self.users) >= MAX_USERS:
            raise DBusError(ERR + "NoResource", "too many users")
        if self.host_users:
            subprocess.run(
                [
                    "useradd",
                    "-M",
                    "-N",
                    "-s",
                    "/usr/sbin/nologin",
                    "-G",
                    ",".join(groups),
                    name,
                ],
                check=True,
            )
        attrs = UserAttributes(self, name, groups, privilege, enabled)
        self.users[name] = attrs
        self._export_user(attrs)
        self.UserCreated(f"{ROOT}/{name}")

    @method()
    def RenameUser(self, old: "s", new: "s"):
        if old not in self.users:
            raise DBusError(ERR + "UserNameDoesNotExist", old)
        if new in self.users:
            raise DBusError(ERR + "UserNameExists", new)
        attrs = self.users.pop(old)
        self._unexport(old)
        if self.host_users:
            subprocess.run(["usermod", "-l", new, old], check=True)
        attrs.user = new
        self.deletes.pop(old, None)
        self.users[new] = attrs
        self._export_user(attrs)

    @signal()
    def UserCreated(self, path: "o") -> "o":
        return path

    @dbus_property(access=PropertyAccess.READ)
    def AllPrivileges(self) -> "as":
        return PRIVILEGES

    @dbus_property(access=PropertyAccess.READ)
    def AllGroups(self) -> "as":
        return GROUPS

    def _unexport(self, name: str) -> None:
        path = f"{ROOT}/{name}"
        self.bus.unexport(path)

    def delete(self, name: str) -> None:
        """Remove a user (the Delete method of its object)."""
        if name not in self.users:
            raise DBusError(ERR + "UserNameDoesNotExist", name)
        self._unexport(name)
        del self.users[name]
        self.deletes.pop(name, None)
        if self.host_users:
            subprocess.run(["userdel", name], check=True)

    def password_expired(self, attrs: UserAttributes) -> bool:
        """From shadow for host users; otherwise what a test set."""
        if not self.host_users:
            return attrs.expired
        shadow = hostdb.shadow(attrs.user)
        return shadow is not None and shadow.must_change(hostdb.today())


class StandIn:
    """The service on a bus; stop() and start() model a restart."""

    def __init__(self, address: str, host_users: bool = False) -> None:
        self.address = address
        self.manager = Manager(host_users)
        self.bus = None

    async def start(self) -> None:
        """Connect, export everything, own the well-known name."""
        self.bus = await MessageBus(bus_address=self.address).connect()
        self.manager.export_all(self.bus)
        await self.bus.request_name(NAME)

    async def stop(self) -> None:
        """Leave the bus (the name goes with the connection)."""
        if self.bus is not None:
            self.bus.disconnect()
            with contextlib.suppress(Exception):
                await self.bus.wait_for_disconnect()
            release_stream(self.bus)
            self.bus = None

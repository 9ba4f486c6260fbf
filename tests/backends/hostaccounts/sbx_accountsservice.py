"""The accountsservice backend against the real accounts-daemon.

Runs only inside the namespace sandbox (test_hostaccounts_sandbox.py): the
daemon creates real users, in a private copy of /etc. Polkit is the
python-dbusmock template, allowing everything; the role groups are changed
by the real root helper, started as a process of its own.

TODO(no AccountsService stand-in): where accounts-daemon is not installed
these tests skip; .ci/run installs the accountsservice package.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from bmcd_backends.hostaccounts import hostdb
from bmcd_backends.hostaccounts.accountsservice import AccountsServiceAccounts
from ha_support import PrivateBus, add_user, context, in_sandbox, run, unix_service

from bmcd.contracts import (
    AccountChanges,
    AccountExistsError,
    AuthOutcome,
    BackendUnavailableError,
    LockoutPolicy,
    PasswordReusedError,
)

DAEMON = Path("/usr/libexec/accounts-daemon")
GROUPS = ("bmcd-admin", "bmcd-operator", "bmcd-readonly")


def _why_not() -> str | None:
    if not in_sandbox():
        return "runs inside the namespace sandbox only"
    if not DAEMON.exists():
        return "accounts-daemon is not installed (apt-get install accountsservice)"
    try:
        import dbusmock  # noqa: F401
    except ImportError:
        return "python-dbusmock is not installed (polkit mock)"
    return None


pytestmark = pytest.mark.skipif(_why_not() is not None, reason=_why_not() or "")


class Services:
    """The private bus with polkit mock, accounts-daemon and the helper."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.bus = PrivateBus(root)
        self.env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": self.bus.address}
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.confdir = root / "pam.d"
        self.state = root / "state"
        self.helper_socket = root / "helper.sock"

    def _spawn(self, name: str, argv: list[str]) -> None:
        with (self.root / f"{name}.log").open("ab") as log:
            self.processes[name] = subprocess.Popen(
                argv, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )

    def _wait_for_name(self, name: str) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            done = subprocess.run(
                ["busctl", "--system", "status", name],
                env=self.env,
                capture_output=True,
                check=False,
            )
            if done.returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError(f"{name} did not appear on the bus")

    def start(self) -> None:
        """Everything, in order."""
        self.bus.start()
        self._spawn(
            "polkit", [sys.executable, "-m", "dbusmock", "--system", "-t", "polkitd"]
        )
        self._wait_for_name("org.freedesktop.PolicyKit1")
        subprocess.run(
            [
                "busctl",
                "--system",
                "call",
                "org.freedesktop.PolicyKit1",
                "/org/freedesktop/PolicyKit1/Authority",
                "org.freedesktop.DBus.Mock",
                "AllowUnknown",
                "b",
                "true",
            ],
            env=self.env,
            check=True,
            capture_output=True,
        )
        self.start_daemon()
        unix_service(self.confdir, self.state / "faillock.conf")
        self._spawn(
            "helper",
            [
                sys.executable,
                "-m",
                "bmcd_backends.hostaccounts.helper",
                "--socket",
                str(self.helper_socket),
                "--allowed-group",
                "root",
                *[arg for group in GROUPS for arg in ("--group", group)],
                "--pam-confdir",
                str(self.confdir),
                "--faillock-dir",
                str(self.state / "faillock"),
            ],
        )
        deadline = time.monotonic() + 10
        while not self.helper_socket.exists():
            if time.monotonic() > deadline:
                raise RuntimeError("the helper did not create its socket")
            time.sleep(0.05)

    def start_daemon(self) -> None:
        """accounts-daemon (again)."""
        self._spawn("accounts", [str(DAEMON)])
        self._wait_for_name("org.freedesktop.Accounts")

    def stop_daemon(self) -> None:
        """Kill the accounts-daemon we started."""
        process = self.processes.pop("accounts")
        process.send_signal(signal.SIGTERM)
        process.wait(10)

    def stop(self) -> None:
        """Kill what we started, by PID."""
        for process in self.processes.values():
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
        self.bus.stop()

    def options(self, **extra: object) -> dict[str, object]:
        """The backend's config table for these services."""
        return {
            "dbus_address": self.bus.address,
            "pam_confdir": str(self.confdir),
            "helper_socket": str(self.helper_socket),
            "faillock_conf": str(self.state / "faillock.conf"),
            "faillock_dir": str(self.state / "faillock"),
            "cache_seconds": 0.2,
            **extra,
        }


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    """Started once for the module."""
    for group in GROUPS:
        run("groupadd", "-f", "--system", group)
    services = Services(tmp_path_factory.mktemp("accounts"))
    try:
        # A start that fails half-way still stops what it started.
        services.start()
        yield services
    finally:
        services.stop()


@pytest.fixture
async def backend(services: Services) -> AsyncIterator[AccountsServiceAccounts]:
    """The backend, started, with threshold-3 lockout."""
    backend = AccountsServiceAccounts(context(services.state, services.options()))
    await backend.start()
    await backend.set_lockout_policy(
        LockoutPolicy(threshold=3, duration=0, reset_after=600)
    )
    yield backend
    await backend.stop()


async def test_create_log_in_and_list(backend: AccountsServiceAccounts) -> None:
    account = await backend.create_account("asalice", "Alice-pw-1", "Operator")

    assert (account.id, account.role_id, account.enabled) == (
        "asalice",
        "Operator",
        True,
    )
    user = hostdb.lookup("asalice", GROUPS)
    assert user is not None and user.groups == {"bmcd-operator"}
    shadow = hostdb.shadow("asalice")
    assert shadow is not None and shadow.password.startswith("$y$")
    assert await asyncio.to_thread(os.path.isdir, "/home/asalice")
    assert (await backend.authenticate("asalice", "Alice-pw-1")).outcome is (
        AuthOutcome.OK
    )
    assert (await backend.authenticate("asalice", "nope")).outcome is (
        AuthOutcome.BAD_CREDENTIALS
    )
    assert "asalice" in [a.id for a in await backend.list_accounts()]


async def test_host_users_outside_role_groups_are_invisible(
    backend: AccountsServiceAccounts,
) -> None:
    add_user("asplain", "Plain-pw-1")

    assert await backend.get_account("asplain") is None
    assert "asplain" not in [a.id for a in await backend.list_accounts()]
    assert (await backend.authenticate("asplain", "Plain-pw-1")).outcome is (
        AuthOutcome.BAD_CREDENTIALS
    )
    with pytest.raises(AccountExistsError):
        await backend.create_account("asplain", "Other-pw-1", "Administrator")
    with pytest.raises(AccountExistsError):
        await backend.create_account("root", "Other-pw-1", "Administrator")
    assert hostdb.lookup("asplain", GROUPS).groups == set()


async def test_role_enabled_and_password(backend: AccountsServiceAccounts) -> None:
    await backend.create_account("asbob", "Bob-pw-1", "ReadOnly")

    account = await backend.update_account(
        "asbob", AccountChanges(role_id="Administrator")
    )
    assert account.role_id == "Administrator"
    assert hostdb.lookup("asbob", GROUPS).groups == {"bmcd-admin"}

    account = await backend.update_account("asbob", AccountChanges(enabled=False))
    assert account.enabled is False
    assert (await backend.authenticate("asbob", "Bob-pw-1")).outcome is (
        AuthOutcome.DISABLED
    )
    # A new password leaves a disabled account disabled.
    account = await backend.update_account("asbob", AccountChanges(password="Bob-pw-2"))
    assert account.enabled is False
    account = await backend.update_account("asbob", AccountChanges(enabled=True))
    assert (await backend.authenticate("asbob", "Bob-pw-2")).outcome is (AuthOutcome.OK)


async def test_password_change_required(backend: AccountsServiceAccounts) -> None:
    account = await backend.create_account(
        "ascarol", "Carol-pw-1", "Operator", password_change_required=True
    )
    assert account.password_change_required is True

    result = await backend.authenticate("ascarol", "Carol-pw-1")
    assert result.outcome is AuthOutcome.OK
    assert result.account is not None and result.account.password_change_required
    # The one-time password cannot simply be set again.
    with pytest.raises(PasswordReusedError):
        await backend.update_account("ascarol", AccountChanges(password="Carol-pw-1"))
    account = await backend.update_account(
        "ascarol", AccountChanges(password="Carol-pw-2")
    )
    assert account.password_change_required is False
    assert account.password_changed_at is not None


async def test_lockout_and_unlock(backend: AccountsServiceAccounts) -> None:
    await backend.create_account("asdave", "Dave-pw-1", "Operator")

    for _ in range(3):
        await backend.authenticate("asdave", "wrong")
    result = await backend.authenticate("asdave", "Dave-pw-1")
    assert result.outcome is AuthOutcome.LOCKED
    assert (await backend.check_account("asdave")).outcome is AuthOutcome.LOCKED
    assert (await backend.get_account("asdave")).locked is True

    account = await backend.update_account("asdave", AccountChanges(locked=False))
    assert account.locked is False
    assert (await backend.authenticate("asdave", "Dave-pw-1")).outcome is (
        AuthOutcome.OK
    )


async def test_changes_made_outside_bmcd_are_seen(
    backend: AccountsServiceAccounts,
) -> None:
    await backend.create_account("aserin", "Erin-pw-1", "Operator")
    assert (await backend.check_account("aserin")).outcome is AuthOutcome.OK

    run("chpasswd", stdin="aserin:Erin-pw-9\n")
    assert (await backend.authenticate("aserin", "Erin-pw-1")).outcome is (
        AuthOutcome.BAD_CREDENTIALS
    )
    run("passwd", "-l", "aserin")
    await asyncio.sleep(0.3)
    assert (await backend.check_account("aserin")).outcome is (AuthOutcome.DISABLED)


async def test_rename_and_delete(backend: AccountsServiceAccounts) -> None:
    await backend.create_account("asfrank", "Frank-pw-1", "Operator")

    account = await backend.update_account(
        "asfrank", AccountChanges(username="asfrances")
    )
    assert account.id == "asfrances"
    assert await backend.get_account("asfrank") is None
    assert (await backend.authenticate("asfrances", "Frank-pw-1")).outcome is (
        AuthOutcome.OK
    )
    await backend.delete_account("asfrances")
    assert hostdb.lookup("asfrances", GROUPS) is None


async def test_host_admin_roles_set_the_account_type(services: Services) -> None:
    backend = AccountsServiceAccounts(
        context(services.state, services.options(host_admin_roles=["Administrator"]))
    )
    await backend.start()
    await backend.create_account("asgina", "Gina-pw-1", "Administrator")
    assert "asgina" in run("getent", "group", "sudo")

    await backend.update_account("asgina", AccountChanges(role_id="Operator"))
    assert "asgina" not in run("getent", "group", "sudo")
    await backend.stop()


async def test_daemon_down_is_reported_then_recovered(
    backend: AccountsServiceAccounts,
    services: Services,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await backend.create_account("ashank", "Hank-pw-1", "Operator")
    services.stop_daemon()
    try:
        with (
            caplog.at_level(logging.ERROR),
            pytest.raises(BackendUnavailableError, match=r"org\.freedesktop\.Accounts"),
        ):
            await backend.create_account("asivan", "Ivan-pw-1", "Operator")
        assert "unavailable" in caplog.text
        # Reading and logging in need only NSS and PAM: they go on.
        assert (await backend.check_account("ashank")).outcome is AuthOutcome.OK
        assert (await backend.authenticate("ashank", "Hank-pw-1")).outcome is (
            AuthOutcome.OK
        )
    finally:
        services.start_daemon()

    account = await backend.create_account("asivan", "Ivan-pw-1", "Operator")
    assert account.id == "asivan"


async def test_unreachable_helper_is_reported(services: Services) -> None:
    backend = AccountsServiceAccounts(
        context(
            services.state,
            services.options(helper_socket=str(services.root / "absent.sock")),
        )
    )
    await backend.start()

    with pytest.raises(BackendUnavailableError, match="root helper"):
        await backend.create_account("asjudy", "Judy-pw-1", "Operator")
    # The half-made user was removed again.
    assert hostdb.lookup("asjudy", GROUPS) is None
    await backend.stop()

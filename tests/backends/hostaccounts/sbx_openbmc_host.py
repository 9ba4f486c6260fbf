"""The openbmc backend end to end with real users, PAM and the root helper.

Runs only inside the namespace sandbox (test_hostaccounts_sandbox.py). The
stand-in user manager runs useradd and userdel as phosphor-user-manager
does; passwords go through the real helper's pam_chauthtok.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from bmcd_backends.hostaccounts import hostdb
from ha_support import MISSING, PrivateBus, context, in_sandbox, run, unix_service

from bmcd.contracts import AccountChanges, AuthOutcome, LockoutPolicy

pytestmark = pytest.mark.skipif(
    not in_sandbox() or MISSING is not None,
    reason=MISSING or "runs inside the namespace sandbox only",
)


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """The redfish group, a private bus, bmcd's PAM service and the helper."""
    run("groupadd", "-f", "redfish")
    root = tmp_path_factory.mktemp("openbmc")
    bus = PrivateBus(root)
    bus.start()
    confdir = root / "pam.d"
    unix_service(confdir, root / "state" / "faillock.conf")
    socket = root / "helper.sock"
    with (root / "helper.log").open("ab") as log:
        helper = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bmcd_backends.hostaccounts.helper",
                "--socket",
                str(socket),
                "--allowed-group",
                "root",
                "--group",
                "redfish",
                "--pam-confdir",
                str(confdir),
                "--faillock-dir",
                str(root / "state" / "faillock"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 10
    while not socket.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    yield {"root": root, "bus": Path(bus.socket), "confdir": confdir, "socket": socket}
    helper.send_signal(signal.SIGTERM)
    helper.wait(10)
    bus.stop()


@pytest.fixture
async def backend(host: dict[str, Path]) -> AsyncIterator[object]:
    """A stand-in with host users, and the backend on it."""
    from bmcd_backends.hostaccounts.openbmc import OpenBMCAccounts
    from ha_openbmc_standin import StandIn

    address = f"unix:path={host['bus']}"
    standin = StandIn(address, host_users=True)
    await standin.start()
    state = host["root"] / "state"
    backend = OpenBMCAccounts(
        context(
            state,
            {
                "dbus_address": address,
                "pam_confdir": str(host["confdir"]),
                "helper_socket": str(host["socket"]),
                "faillock_conf": str(state / "faillock.conf"),
                "faillock_dir": str(state / "faillock"),
            },
        )
    )
    await backend.start()
    await backend.set_lockout_policy(
        LockoutPolicy(threshold=3, duration=0, reset_after=600)
    )
    yield backend
    await backend.stop()
    await standin.stop()


async def test_create_log_in_expire_and_delete(backend: object) -> None:
    account = await backend.create_account("obalice", "Alice-pw-1", "Operator")

    assert account.role_id == "Operator"
    shadow = hostdb.shadow("obalice")
    assert shadow is not None and shadow.password.startswith("$y$")
    assert (await backend.authenticate("obalice", "Alice-pw-1")).outcome is (
        AuthOutcome.OK
    )

    await backend.update_account(
        "obalice", AccountChanges(password_change_required=True)
    )
    result = await backend.authenticate("obalice", "Alice-pw-1")
    assert result.outcome is AuthOutcome.OK
    assert result.account.password_change_required is True
    await backend.update_account("obalice", AccountChanges(password="Alice-pw-2"))
    result = await backend.authenticate("obalice", "Alice-pw-2")
    assert result.account.password_change_required is False

    await backend.delete_account("obalice")
    assert hostdb.lookup("obalice", ["redfish"]) is None


async def test_lockout_through_faillock(backend: object) -> None:
    await backend.create_account("obbob", "Bob-pw-1", "ReadOnly")

    for _ in range(3):
        await backend.authenticate("obbob", "wrong")
    assert (await backend.authenticate("obbob", "Bob-pw-1")).outcome is (
        AuthOutcome.LOCKED
    )
    assert (await backend.check_account("obbob")).outcome is AuthOutcome.LOCKED
    await backend.update_account("obbob", AccountChanges(locked=False))
    assert (await backend.authenticate("obbob", "Bob-pw-1")).outcome is (AuthOutcome.OK)
    await backend.delete_account("obbob")

"""Fixtures for the host account backends: a private bus and stand-ins."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from ha_support import MISSING, OpenBMCEnv, PrivateBus, pwdfile_service


@pytest.fixture
def private_bus(tmp_path: Path) -> Iterator[PrivateBus]:
    """A dbus-daemon of the test's own; its address is the system bus here."""
    if MISSING:
        pytest.skip(MISSING)
    bus = PrivateBus(tmp_path)
    bus.start()
    yield bus
    bus.stop()


@pytest.fixture
async def openbmc_env(
    private_bus: PrivateBus, tmp_path: Path
) -> AsyncIterator[OpenBMCEnv]:
    """Stand-in user manager on the private bus, fake helper, PAM on a file."""
    from ha_fake_helper import FakeHelper
    from ha_openbmc_standin import StandIn

    standin = StandIn(private_bus.address)
    await standin.start()
    state_dir = tmp_path / "state"
    pwdfile = tmp_path / "passwords"
    faillock_conf = state_dir / "faillock.conf"
    pwdfile_service(tmp_path / "pam.d", pwdfile, faillock_conf)
    helper = FakeHelper(tmp_path / "helper.sock", pwdfile, standin.manager)
    await helper.start()
    options = {
        "dbus_address": private_bus.address,
        "dbus_timeout": 3.0,
        "pam_confdir": str(tmp_path / "pam.d"),
        "helper_socket": str(tmp_path / "helper.sock"),
        "faillock_conf": str(faillock_conf),
        "faillock_dir": str(state_dir / "faillock"),
        "cache_seconds": 0,
    }
    yield OpenBMCEnv(private_bus, standin, helper, options, state_dir)
    await helper.stop()
    await standin.stop()

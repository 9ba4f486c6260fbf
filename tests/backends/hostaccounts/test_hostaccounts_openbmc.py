"""The openbmc accounts backend against a stand-in user manager on a private bus."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
from bmcd_backends.hostaccounts.openbmc import OpenBMCAccounts
from bmcd_backends.hostaccounts.options import OptionsError
from ha_support import OpenBMCEnv, context, needs_bus

from bmcd.contracts import (
    AccountBackend,
    AccountChanges,
    AccountExistsError,
    AccountNotFoundError,
    AuthOutcome,
    BackendUnavailableError,
    LockoutPolicy,
    PasswordRejectedError,
)

pytestmark = needs_bus


@pytest.fixture
async def backend(openbmc_env: OpenBMCEnv) -> AsyncIterator[OpenBMCAccounts]:
    """The backend, started, on the stand-in."""
    backend = OpenBMCAccounts(context(openbmc_env.state_dir, openbmc_env.options))
    await backend.start()
    yield backend
    await backend.stop()


async def test_implements_the_contract(backend: OpenBMCAccounts) -> None:
    assert isinstance(backend, AccountBackend)


async def test_create_list_and_log_in(
    backend: OpenBMCAccounts, openbmc_env: OpenBMCEnv
) -> None:
    account = await backend.create_account("alice", "Alice-pw-1", "Operator")

    assert (account.username, account.role_id, account.enabled) == (
        "alice",
        "Operator",
        True,
    )
    attrs = openbmc_env.standin.manager.users["alice"]
    assert attrs.privilege == "priv-operator"
    assert attrs.groups == ["redfish"]
    assert [a.id for a in await backend.list_accounts()] == ["alice"]
    ok = await backend.authenticate("alice", "Alice-pw-1")
    assert ok.outcome is AuthOutcome.OK
    assert ok.account == account
    bad = await backend.authenticate("alice", "wrong")
    assert bad.outcome is AuthOutcome.BAD_CREDENTIALS
    assert (await backend.check_account("alice")).outcome is AuthOutcome.OK


async def test_users_outside_the_redfish_group_are_invisible(
    backend: OpenBMCAccounts, openbmc_env: OpenBMCEnv
) -> None:
    manager = openbmc_env.standin.manager
    await backend.create_account("bob", "Bob-pw-1", "ReadOnly")
    await backend.create_account("noaccess", "Noaccess-1", "ReadOnly")
    # An IPMI-only user and a privilege no role maps to stay hidden.
    manager.users["bob"].groups = ["ipmi"]
    manager.users["noaccess"].privilege = "priv-noaccess"

    assert await backend.list_accounts() == []
    assert await backend.get_account("bob") is None
    assert (await backend.authenticate("bob", "Bob-pw-1")).outcome is (
        AuthOutcome.BAD_CREDENTIALS
    )


async def test_name_taken_and_not_found(backend: OpenBMCAccounts) -> None:
    await backend.create_account("carol", "Carol-pw-1", "Administrator")

    with pytest.raises(AccountExistsError):
        await backend.create_account("carol", "Carol-pw-2", "ReadOnly")
    with pytest.raises(AccountNotFoundError):
        await backend.update_account("nobody", AccountChanges(enabled=False))
    with pytest.raises(AccountNotFoundError):
        await backend.delete_account("nobody")
    assert await backend.get_account("bad-name!") is None


async def test_update_role_enabled_password_and_expiry(
    backend: OpenBMCAccounts, openbmc_env: OpenBMCEnv
) -> None:
    await backend.create_account("dave", "Dave-pw-1", "ReadOnly")

    account = await backend.update_account(
        "dave", AccountChanges(role_id="Administrator", password="Dave-pw-2")
    )
    assert account.role_id == "Administrator"
    assert openbmc_env.standin.manager.users["dave"].privilege == "priv-admin"
    assert (await backend.authenticate("dave", "Dave-pw-2")).outcome is (AuthOutcome.OK)

    account = await backend.update_account("dave", AccountChanges(enabled=False))
    assert account.enabled is False
    assert (await backend.check_account("dave")).outcome is AuthOutcome.DISABLED
    assert (await backend.authenticate("dave", "Dave-pw-2")).outcome is (
        AuthOutcome.DISABLED
    )

    account = await backend.update_account(
        "dave", AccountChanges(enabled=True, password_change_required=True)
    )
    assert account.password_change_required is True
    result = await backend.authenticate("dave", "Dave-pw-2")
    assert result.outcome is AuthOutcome.OK
    assert result.account is not None
    assert result.account.password_change_required is True


async def test_rejected_password_rolls_back_creation(
    backend: OpenBMCAccounts, openbmc_env: OpenBMCEnv
) -> None:
    openbmc_env.helper.refuse_passwords.add("password")

    with pytest.raises(PasswordRejectedError):
        await backend.create_account("erin", "password", "Operator")
    assert "erin" not in openbmc_env.standin.manager.users


async def test_rename_and_delete(
    backend: OpenBMCAccounts, openbmc_env: OpenBMCEnv
) -> None:
    await backend.create_account("frank", "Frank-pw-1", "Operator")

    account = await backend.update_account("frank", AccountChanges(username="frances"))
    assert account.id == "frances"
    assert await backend.get_account("frank") is None
    await backend.delete_account("frances")
    assert await backend.list_accounts() == []
    assert "frances" not in openbmc_env.standin.manager.users


async def test_unlock_clears_the_managers_lock(
    backend: OpenBMCAccounts, openbmc_env: OpenBMCEnv
) -> None:
    await backend.create_account("gina", "Gina-pw-1", "Operator")
    openbmc_env.standin.manager.users["gina"].locked = True

    assert (await backend.check_account("gina")).outcome is AuthOutcome.LOCKED
    assert (await backend.authenticate("gina", "Gina-pw-1")).outcome is (
        AuthOutcome.LOCKED
    )
    account = await backend.update_account("gina", AccountChanges(locked=False))
    assert account.locked is False
    assert openbmc_env.standin.manager.users["gina"].locked is False


async def test_lockout_policy_goes_to_bmcds_faillock_file(
    backend: OpenBMCAccounts, openbmc_env: OpenBMCEnv
) -> None:
    await backend.set_lockout_policy(
        LockoutPolicy(threshold=4, duration=60, reset_after=30)
    )

    text = (openbmc_env.state_dir / "faillock.conf").read_text()
    assert "deny = 4\n" in text and "unlock_time = 60\n" in text
    assert "fail_interval = 30\n" in text
    # The BMC-wide AccountPolicy is left alone unless asked for.
    assert openbmc_env.standin.manager.policy.max_attempts == 0


async def test_apply_account_policy_sets_the_bmcs_policy(
    openbmc_env: OpenBMCEnv,
) -> None:
    options = {**openbmc_env.options, "apply_account_policy": True}
    backend = OpenBMCAccounts(context(openbmc_env.state_dir, options))
    await backend.start()
    await backend.set_lockout_policy(LockoutPolicy(threshold=7, duration=90))
    await backend.stop()

    policy = openbmc_env.standin.manager.policy
    assert (policy.max_attempts, policy.unlock_timeout) == (7, 90)


async def test_privilege_the_manager_lacks_is_a_clear_error(
    openbmc_env: OpenBMCEnv, caplog: pytest.LogCaptureFixture
) -> None:
    options = {**openbmc_env.options, "roles": {"Operator": "priv-nonexistent"}}
    backend = OpenBMCAccounts(context(openbmc_env.state_dir, options))
    await backend.start()

    with caplog.at_level(logging.ERROR), pytest.raises(BackendUnavailableError):
        await backend.create_account("hank", "Hank-pw-1", "Operator")
    assert "check [backends.openbmc] roles" in caplog.text
    await backend.stop()


async def test_service_absent_then_back(
    backend: OpenBMCAccounts, openbmc_env: OpenBMCEnv, caplog: pytest.LogCaptureFixture
) -> None:
    await backend.create_account("ivan", "Ivan-pw-1", "Operator")
    await openbmc_env.standin.stop()

    with caplog.at_level(logging.ERROR):
        with pytest.raises(BackendUnavailableError, match="ServiceUnknown"):
            await backend.list_accounts()
        with pytest.raises(BackendUnavailableError):
            await backend.check_account("ivan")
    # One log line for the outage, not one per request.
    assert caplog.text.count("unavailable") == 1

    await openbmc_env.standin.start()
    assert [a.id for a in await backend.list_accounts()] == ["ivan"]


async def test_bus_restart_reconnects(
    backend: OpenBMCAccounts, openbmc_env: OpenBMCEnv
) -> None:
    await backend.create_account("judy", "Judy-pw-1", "Operator")
    await openbmc_env.standin.stop()
    openbmc_env.bus.stop()
    await asyncio.sleep(0.1)

    with pytest.raises(BackendUnavailableError):
        await backend.list_accounts()
    openbmc_env.bus.start()
    await openbmc_env.standin.start()
    assert [a.id for a in await backend.list_accounts()] == ["judy"]


async def test_cached_state_is_used_for_the_per_request_check(
    openbmc_env: OpenBMCEnv,
) -> None:
    options = {**openbmc_env.options, "cache_seconds": 0.3}
    backend = OpenBMCAccounts(context(openbmc_env.state_dir, options))
    await backend.start()
    await backend.create_account("kim", "Kim-pw-1", "Operator")
    assert (await backend.check_account("kim")).outcome is AuthOutcome.OK

    # Disabled outside bmcd: seen once the short cache runs out.
    openbmc_env.standin.manager.users["kim"].enabled = False
    await asyncio.sleep(0.4)
    assert (await backend.check_account("kim")).outcome is AuthOutcome.DISABLED
    await backend.stop()


async def test_bad_options_name_the_key(openbmc_env: OpenBMCEnv) -> None:
    for options, key in (
        ({"roles": {"Boss": "priv-admin"}}, "roles.Boss"),
        ({"pam_threads": 0}, "pam_threads"),
        ({"create_groups": ["ipmi"]}, "create_groups"),
        ({"faillock_dir": "relative"}, "faillock_dir"),
        ({"typo": 1}, "typo"),
    ):
        with pytest.raises(OptionsError, match=rf"\[backends.openbmc\] {key}"):
            OpenBMCAccounts(context(openbmc_env.state_dir, options))


async def test_broken_pam_service_is_unavailable_not_a_no(
    openbmc_env: OpenBMCEnv, caplog: pytest.LogCaptureFixture
) -> None:
    options = {**openbmc_env.options, "pam_service": "absent"}
    backend = OpenBMCAccounts(context(openbmc_env.state_dir, options))
    with caplog.at_level(logging.ERROR):
        await backend.start()
        await backend.create_account("lena", "Lena-pw-1", "Operator")

        with pytest.raises(BackendUnavailableError, match="PAM service absent"):
            await backend.authenticate("lena", "Lena-pw-1")
    assert "Can't read PAM service file" in caplog.text
    await backend.stop()

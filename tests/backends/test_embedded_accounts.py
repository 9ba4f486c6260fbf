"""The embedded account backend: scrypt hashes, CRUD, lockout, the contract."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import bmcd_backends.embedded.accounts as embedded
import pytest
from bmcd_backends.embedded.accounts import (
    EmbeddedAccountStore,
    hash_password,
    verify_password,
)

from bmcd.contracts import (
    AccountBackend,
    AccountChanges,
    AccountExistsError,
    AccountNotFoundError,
    AuthOutcome,
    BackendContext,
    LockoutPolicy,
    PasswordRejectedError,
    PasswordReusedError,
)
from bmcd.core import plugins
from bmcd.core.store import Store


@pytest.fixture
async def store(state_root: Path) -> AsyncIterator[Store]:
    db = Store(state_root / "bmcd.db")
    await db.open()
    yield db
    await db.close()


@pytest.fixture
async def backend(store: Store, state_root: Path) -> EmbeddedAccountStore:
    accounts = EmbeddedAccountStore(BackendContext(state_root, {}, store))
    await accounts.start()
    return accounts


def test_registered_as_entry_point() -> None:
    assert "embedded" in plugins.available("accounts")
    assert plugins.load("accounts", "embedded") is EmbeddedAccountStore


def test_unknown_backend_named_in_error() -> None:
    with pytest.raises(plugins.PluginError, match="no accounts backend named 'nope'"):
        plugins.load("accounts", "nope")


async def test_implements_the_contract(backend: EmbeddedAccountStore) -> None:
    assert isinstance(backend, AccountBackend)


def test_hash_is_salted_scrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.undo()  # the real work factor, not the tests' cheap one
    first = hash_password("correct horse")
    second = hash_password("correct horse")
    assert first != second
    scheme, n, r, p, _salt, _digest = first.split("$")
    assert scheme == "scrypt"
    # Memory-hard: at least 16 MiB per hash.
    assert int(n) * int(r) * 128 >= 16 * 1024 * 1024
    assert int(p) >= 1
    assert "correct horse" not in first
    assert verify_password("correct horse", first)
    assert verify_password("correct horse", second)
    assert not verify_password("correct horsE", first)


@pytest.mark.parametrize(
    "stored", ["", "plain", "md5$x$y$z$a$b", "scrypt$x$8$1$AAAA$AAAA", "scrypt$1$2$3"]
)
def test_verify_refuses_bad_hashes(stored: str) -> None:
    assert not verify_password("anything", stored)


async def test_create_and_read(backend: EmbeddedAccountStore, store: Store) -> None:
    before = time.time()
    account = await backend.create_account(
        "alice", "alice-password", "Operator", password_change_required=True
    )
    assert account.id == "alice"
    assert account.username == "alice"
    assert account.role_id == "Operator"
    assert account.enabled is True
    assert account.locked is False
    assert account.password_change_required is True
    assert account.account_types == ("Redfish",)
    assert account.password_changed_at is not None
    assert account.password_changed_at.timestamp() >= before - 1
    assert await backend.get_account("alice") == account
    assert await backend.find_account("alice") == account
    assert await backend.get_account("bob") is None

    def dump(conn: sqlite3.Connection) -> str:
        return "\n".join(conn.iterdump())

    text = await store.run(dump)
    assert "alice-password" not in text
    assert "scrypt$" in text


async def test_list_is_ordered(backend: EmbeddedAccountStore) -> None:
    for name in ("carol", "alice", "bob"):
        await backend.create_account(name, "a-password", "ReadOnly")
    names = [a.username for a in await backend.list_accounts()]
    assert names == ["alice", "bob", "carol"]


async def test_duplicate_refused(backend: EmbeddedAccountStore) -> None:
    await backend.create_account("alice", "a-password", "ReadOnly")
    with pytest.raises(AccountExistsError):
        await backend.create_account("alice", "b-password", "Administrator")
    account = await backend.get_account("alice")
    assert account is not None and account.role_id == "ReadOnly"
    assert (await backend.authenticate("alice", "a-password")).outcome is (
        AuthOutcome.OK
    )


async def test_update_is_all_or_nothing(backend: EmbeddedAccountStore) -> None:
    await backend.create_account("alice", "a-password", "ReadOnly")
    await backend.create_account("bob", "b-password", "ReadOnly")
    with pytest.raises(AccountExistsError):
        await backend.update_account(
            "alice",
            AccountChanges(
                role_id="Administrator", password="new-password", username="bob"
            ),
        )
    alice = await backend.get_account("alice")
    assert alice is not None and alice.role_id == "ReadOnly"
    assert (await backend.authenticate("alice", "a-password")).outcome is (
        AuthOutcome.OK
    )


async def test_update(backend: EmbeddedAccountStore) -> None:
    await backend.create_account(
        "alice", "a-password", "ReadOnly", password_change_required=True
    )
    first = await backend.get_account("alice")
    assert first is not None
    updated = await backend.update_account(
        "alice",
        AccountChanges(
            password="new-password",
            role_id="Operator",
            enabled=False,
            account_types=("Redfish",),
        ),
    )
    assert updated.role_id == "Operator"
    assert updated.enabled is False
    # A new password clears the demand to change it.
    assert updated.password_change_required is False
    assert updated.password_changed_at is not None
    assert first.password_changed_at is not None
    assert updated.password_changed_at >= first.password_changed_at

    renamed = await backend.update_account(
        "alice", AccountChanges(username="alicia", enabled=True)
    )
    assert renamed.id == "alicia"
    assert await backend.get_account("alice") is None
    assert (await backend.authenticate("alicia", "new-password")).outcome is (
        AuthOutcome.OK
    )

    flagged = await backend.update_account(
        "alicia", AccountChanges(password_change_required=True)
    )
    assert flagged.password_change_required is True


async def test_missing_accounts(backend: EmbeddedAccountStore) -> None:
    with pytest.raises(AccountNotFoundError):
        await backend.update_account("ghost", AccountChanges(enabled=False))
    with pytest.raises(AccountNotFoundError):
        await backend.delete_account("ghost")


async def test_missing_account_password_change(backend: EmbeddedAccountStore) -> None:
    with pytest.raises(AccountNotFoundError):
        await backend.update_account("ghost", AccountChanges(password="a-password"))


@pytest.mark.parametrize("must_change", [True, False])
async def test_current_password_is_no_change(
    backend: EmbeddedAccountStore, must_change: bool
) -> None:
    await backend.create_account(
        "alice", "a-password", "ReadOnly", password_change_required=must_change
    )
    before = await backend.get_account("alice")
    with pytest.raises(PasswordReusedError) as raised:
        await backend.update_account(
            "alice",
            AccountChanges(password="a-password", password_change_required=False),
        )
    # Callers that only know PasswordRejectedError still refuse it.
    assert isinstance(raised.value, PasswordRejectedError)
    # Nothing changed: the one-time password still has to go.
    assert await backend.get_account("alice") == before

    changed = await backend.update_account(
        "alice", AccountChanges(password="b-password")
    )
    assert changed.password_change_required is False


async def test_delete(backend: EmbeddedAccountStore) -> None:
    await backend.create_account("alice", "a-password", "ReadOnly")
    await backend.delete_account("alice")
    assert await backend.get_account("alice") is None
    assert (await backend.authenticate("alice", "a-password")).outcome is (
        AuthOutcome.BAD_CREDENTIALS
    )


async def test_authenticate(backend: EmbeddedAccountStore) -> None:
    await backend.create_account("alice", "a-password", "ReadOnly")
    await backend.create_account("bob", "b-password", "ReadOnly", enabled=False)
    ok = await backend.authenticate("alice", "a-password")
    assert ok.outcome is AuthOutcome.OK
    assert ok.account is not None and ok.account.username == "alice"
    assert (await backend.authenticate("alice", "b-password")).outcome is (
        AuthOutcome.BAD_CREDENTIALS
    )
    assert (await backend.authenticate("nobody", "a-password")).outcome is (
        AuthOutcome.BAD_CREDENTIALS
    )
    assert (await backend.authenticate("bob", "b-password")).outcome is (
        AuthOutcome.DISABLED
    )
    assert (await backend.authenticate("bob", "wrong")).outcome is (
        AuthOutcome.BAD_CREDENTIALS
    )
    assert (await backend.check_account("alice")).outcome is AuthOutcome.OK
    assert (await backend.check_account("bob")).outcome is AuthOutcome.DISABLED
    assert (await backend.check_account("nobody")).outcome is (
        AuthOutcome.BAD_CREDENTIALS
    )


async def test_hashing_runs_off_the_event_loop(
    backend: EmbeddedAccountStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop_thread = threading.current_thread()
    threads: list[threading.Thread] = []

    def spy(function: Any) -> Any:
        def wrapper(*args: Any) -> Any:
            threads.append(threading.current_thread())
            return function(*args)

        return wrapper

    monkeypatch.setattr(embedded, "hash_password", spy(hash_password))
    monkeypatch.setattr(embedded, "verify_password", spy(verify_password))
    await backend.create_account("alice", "a-password", "ReadOnly")
    await backend.authenticate("alice", "a-password")
    await backend.authenticate("nobody", "a-password")
    await backend.update_account("alice", AccountChanges(password="b-password"))
    # Unknown users are hashed too, so timing does not reveal who exists.
    assert len(threads) >= 4
    assert loop_thread not in threads


async def test_lockout(
    backend: EmbeddedAccountStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await backend.set_lockout_policy(
        LockoutPolicy(threshold=3, duration=60, reset_after=60)
    )
    await backend.create_account("alice", "a-password", "ReadOnly")
    for _ in range(2):
        await backend.authenticate("alice", "wrong")
    assert (await backend.authenticate("alice", "a-password")).outcome is (
        AuthOutcome.OK
    )
    # A success starts the count again.
    for _ in range(2):
        await backend.authenticate("alice", "wrong")
    account = await backend.get_account("alice")
    assert account is not None and not account.locked
    await backend.authenticate("alice", "wrong")
    locked = await backend.authenticate("alice", "a-password")
    assert locked.outcome is AuthOutcome.LOCKED
    assert (await backend.check_account("alice")).outcome is AuthOutcome.LOCKED

    later = time.time() + 61
    monkeypatch.setattr(
        embedded, "time", type("Clock", (), {"time": staticmethod(lambda: later)})
    )
    assert (await backend.authenticate("alice", "a-password")).outcome is (
        AuthOutcome.OK
    )


async def test_lockout_window_runs_from_the_last_failure(
    backend: EmbeddedAccountStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await backend.set_lockout_policy(
        LockoutPolicy(threshold=3, duration=600, reset_after=60)
    )
    await backend.create_account("alice", "a-password", "ReadOnly")
    start = time.time()
    for step in (0, 50, 100):
        monkeypatch.setattr(
            embedded,
            "time",
            type("Clock", (), {"time": staticmethod(lambda step=step: start + step)}),
        )
        await backend.authenticate("alice", "wrong")
    assert (await backend.authenticate("alice", "a-password")).outcome is (
        AuthOutcome.LOCKED
    )

    # 61 s after the last failure the count starts again.
    await backend.update_account("alice", AccountChanges(locked=False))
    for step in (200, 261, 322):
        monkeypatch.setattr(
            embedded,
            "time",
            type("Clock", (), {"time": staticmethod(lambda step=step: start + step)}),
        )
        await backend.authenticate("alice", "wrong")
    assert (await backend.authenticate("alice", "a-password")).outcome is (
        AuthOutcome.OK
    )


async def test_lockout_without_duration_needs_unlock(
    backend: EmbeddedAccountStore,
) -> None:
    await backend.set_lockout_policy(
        LockoutPolicy(threshold=1, duration=0, reset_after=0)
    )
    await backend.create_account("alice", "a-password", "ReadOnly")
    await backend.authenticate("alice", "wrong")
    assert (await backend.authenticate("alice", "a-password")).outcome is (
        AuthOutcome.LOCKED
    )
    account = await backend.update_account("alice", AccountChanges(locked=False))
    assert account.locked is False
    assert (await backend.authenticate("alice", "a-password")).outcome is (
        AuthOutcome.OK
    )


async def test_state_survives_reopen(state_root: Path) -> None:
    path = state_root / "again.db"
    for attempt in range(2):
        db = Store(path)
        await db.open()
        accounts = EmbeddedAccountStore(BackendContext(state_root, {}, db))
        await accounts.start()
        if attempt == 0:
            await accounts.create_account("alice", "a-password", "Operator")
        else:
            result = await accounts.authenticate("alice", "a-password")
            assert result.outcome is AuthOutcome.OK
        await accounts.stop()
        await db.close()

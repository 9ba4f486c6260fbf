"""bmcd.core.sessions: tokens as hashes, idle expiry, the session bound."""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bmcd.core import sessions as sessions_module
from bmcd.core.errors import RedfishError
from bmcd.core.sessions import SessionManager
from bmcd.core.settings import Settings
from bmcd.core.store import Store


class Clock:
    """A settable stand-in for the time module inside bmcd.core.sessions."""

    def __init__(self) -> None:
        self.now = time.time()

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(sessions_module, "time", fake)
    return fake


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    db = Store(tmp_path / "bmcd.db")
    await db.open()
    yield db
    await db.close()


async def _manager(
    store: Store, idle: int = 60, limit: int = 8, per_user: int | None = 8
) -> SessionManager:
    settings = Settings(store)
    await settings.load()
    await settings.update({"session.timeout": idle})
    manager = SessionManager(store, settings, limit, per_user)
    await manager.start()
    return manager


async def test_create_and_lookup(store: Store, clock: Clock) -> None:
    manager = await _manager(store)
    session, token = await manager.create("alice", "10.0.0.1", "ctx")
    assert session.username == "alice"
    assert session.origin == "10.0.0.1"
    assert session.context == "ctx"
    found = await manager.lookup(token)
    assert found is not None and found.id == session.id
    assert await manager.lookup(token + "x") is None
    assert await manager.get(session.id) == found


async def test_tokens_are_random_and_hashed(store: Store, clock: Clock) -> None:
    manager = await _manager(store)
    tokens = {(await manager.create("alice", "o", None))[1] for _ in range(5)}
    assert len(tokens) == 5
    assert all(len(token) >= 32 for token in tokens)
    rows = await store.run(
        lambda c: c.execute("SELECT token_hash FROM sessions").fetchall()
    )
    stored = {row[0] for row in rows}
    assert stored == {hashlib.sha256(t.encode()).hexdigest() for t in tokens}


async def test_idle_expiry(store: Store, clock: Clock) -> None:
    manager = await _manager(store, idle=60)
    session, token = await manager.create("alice", "o", None)
    clock.now += 59
    assert await manager.lookup(token) is not None
    clock.now += 61
    assert await manager.lookup(token) is None
    assert await manager.get(session.id) is None
    assert await manager.list() == []


async def test_use_keeps_a_session_alive(store: Store, clock: Clock) -> None:
    manager = await _manager(store, idle=30)
    _, token = await manager.create("alice", "o", None)
    # Used every 14 or 17 s, it is never idle for 30 s; it must stay.
    for step in (14, 17, 14, 17, 16, 29):
        clock.now += step
        assert await manager.lookup(token) is not None


async def test_use_keeps_a_session_listed(store: Store, clock: Clock) -> None:
    manager = await _manager(store, idle=30)
    session, token = await manager.create("alice", "o", None)
    clock.now += 14
    assert await manager.lookup(token) is not None
    clock.now += 20
    # Idle for 20 s only: listing (which sweeps expired ones) keeps it.
    assert [s.id for s in await manager.list()] == [session.id]
    assert await manager.get(session.id) is not None
    assert await manager.lookup(token) is not None


async def test_expired_sessions_removed_at_start(store: Store, clock: Clock) -> None:
    manager = await _manager(store, idle=60)
    await manager.create("alice", "o", None)
    clock.now += 120
    again = await _manager(store, idle=60)
    count = await store.run(
        lambda c: c.execute("SELECT COUNT(*) FROM sessions").fetchone()[0]
    )
    assert count == 0
    assert await again.list() == []


async def test_limit(store: Store, clock: Clock) -> None:
    manager = await _manager(store, limit=2)
    await manager.create("alice", "o", None)
    await manager.create("bob", "o", None)
    with pytest.raises(RedfishError) as raised:
        await manager.create("carol", "o", None)
    assert raised.value.status == 503
    assert raised.value.messages[0].key == "SessionLimitExceeded"
    # Expired sessions do not count against the limit.
    clock.now += 3600
    await manager.create("carol", "o", None)


async def test_one_account_cannot_take_every_session(
    store: Store, clock: Clock
) -> None:
    manager = await _manager(store, limit=8, per_user=None)  # default: a quarter
    for _ in range(2):
        await manager.create("bob", "o", None)
    with pytest.raises(RedfishError) as raised:
        await manager.create("bob", "o", None)
    assert raised.value.messages[0].key == "SessionLimitExceeded"
    await manager.create("admin", "o", None)


async def test_delete_and_delete_user(store: Store, clock: Clock) -> None:
    manager = await _manager(store)
    one, token = await manager.create("alice", "o", None)
    await manager.create("alice", "o", None)
    other, _ = await manager.create("bob", "o", None)
    assert await manager.delete(one.id) is True
    assert await manager.delete(one.id) is False
    assert await manager.lookup(token) is None
    await manager.delete_user("alice")
    assert [s.id for s in await manager.list()] == [other.id]


async def test_recent_uses_are_written_on_stop(store: Store, clock: Clock) -> None:
    manager = await _manager(store, idle=60)
    _, token = await manager.create("alice", "10.0.0.1", None)
    clock.now += 10
    assert await manager.lookup(token) is not None  # kept in memory only
    await manager.stop()

    restarted = await _manager(store, idle=60)
    clock.now += 55  # 65 s after creation, 55 s after the last use
    assert await restarted.lookup(token) is not None

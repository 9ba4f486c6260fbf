"""bmcd.core.store: transactions, migrations, and refusing what it cannot read."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from bmcd.core.config import Config
from bmcd.core.services import core_services
from bmcd.core.settings import Settings
from bmcd.core.store import Store, StoreError, prepare_state_dir
from bmcd.http.app import create_app


def _create_items(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE items (name TEXT PRIMARY KEY)")


def _add_size(conn: sqlite3.Connection) -> None:
    conn.execute("ALTER TABLE items ADD COLUMN size INTEGER NOT NULL DEFAULT 0")


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    db = Store(tmp_path / "state.db")
    await db.open()
    yield db
    await db.close()


async def _version(store: Store, component: str) -> int | None:
    row = await store.run(
        lambda c: c.execute(
            "SELECT version FROM schema_versions WHERE component=?", (component,)
        ).fetchone()
    )
    return None if row is None else int(row[0])


async def test_run_commits(store: Store) -> None:
    await store.migrate("items", (_create_items,))
    await store.run(lambda c: c.execute("INSERT INTO items VALUES('a')"))
    rows = await store.run(lambda c: c.execute("SELECT name FROM items").fetchall())
    assert [r[0] for r in rows] == ["a"]


async def test_run_rolls_back_on_error(store: Store) -> None:
    await store.migrate("items", (_create_items,))

    def half_done(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO items VALUES('a')")
        raise ValueError("second step failed")

    with pytest.raises(ValueError):
        await store.run(half_done)
    count = await store.run(
        lambda c: c.execute("SELECT COUNT(*) FROM items").fetchone()[0]
    )
    assert count == 0


async def test_run_sync_from_a_thread(store: Store) -> None:
    await store.migrate("items", (_create_items,))
    await asyncio.to_thread(
        store.run_sync, lambda c: c.execute("INSERT INTO items VALUES('t')")
    )
    count = await store.run(
        lambda c: c.execute("SELECT COUNT(*) FROM items").fetchone()[0]
    )
    assert count == 1


async def test_migrations_run_once_and_in_order(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    first = Store(path)
    await first.open()
    await first.migrate("items", (_create_items,))
    assert await _version(first, "items") == 1
    await first.close()

    second = Store(path)
    await second.open()
    await second.migrate("items", (_create_items, _add_size))
    assert await _version(second, "items") == 2
    await second.run(lambda c: c.execute("INSERT INTO items VALUES('a', 3)"))
    # Running again changes nothing (a second CREATE TABLE would fail).
    await second.migrate("items", (_create_items, _add_size))
    await second.close()


async def test_components_are_independent(store: Store) -> None:
    await store.migrate("items", (_create_items,))
    await store.migrate("other", ())
    assert await _version(store, "items") == 1
    assert await _version(store, "other") is None


async def test_failed_migration_changes_nothing(store: Store) -> None:
    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE half (x)")
        conn.execute("THIS IS NOT SQL")

    with pytest.raises(StoreError, match="migrating items to version 1"):
        await store.migrate("items", (broken,))
    assert await _version(store, "items") is None
    tables = await store.run(
        lambda c: c.execute(
            "SELECT name FROM sqlite_master WHERE name='half'"
        ).fetchall()
    )
    assert tables == []


async def test_newer_database_refused(store: Store) -> None:
    await store.migrate("items", (_create_items, _add_size))
    with pytest.raises(StoreError) as raised:
        await store.migrate("items", (_create_items,))
    message = str(raised.value)
    assert str(store.path) in message
    assert "newer" in message
    assert "version 2" in message


async def test_store_not_open(tmp_path: Path) -> None:
    db = Store(tmp_path / "state.db")
    with pytest.raises(StoreError, match="not open"):
        await db.run(lambda c: None)
    await db.close()


# --- The state database of bmcd itself -----------------------------------------


async def test_state_newer_than_code_stops_start(config: Config) -> None:
    async with core_services(config):
        pass
    path = config.state_dir / "bmcd.db"
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE schema_versions SET version=99 WHERE component='settings'")
    conn.close()
    before = path.read_bytes()

    with pytest.raises(StoreError, match="newer than this bmcd"):
        async with core_services(config):
            pass
    assert path.read_bytes() == before


async def test_corrupt_state_stops_start_and_is_kept(config: Config) -> None:
    config.state_dir.mkdir(parents=True)
    path = config.state_dir / "bmcd.db"
    garbage = b"this is not a database\n" * 300
    path.write_bytes(garbage)

    with pytest.raises(StoreError) as raised:
        async with core_services(config):
            pass
    message = str(raised.value)
    assert str(path) in message
    assert "move the file aside" in message
    assert "loses every account" in message
    assert path.read_bytes() == garbage


async def _items_database(path: Path) -> None:
    """A database with a table spread over many pages."""
    store = Store(path)
    await store.open()
    await store.migrate("items", (_create_items,))
    await store.run(
        lambda c: c.executemany(
            "INSERT INTO items VALUES(?)", ((f"{i:0>200}",) for i in range(500))
        )
    )
    await store.close()


def _damage_page(path: Path, page: int) -> bytes:
    """Overwrite a page's cells, as a failing disk would; return the file."""
    size = 4096  # SQLite's default page size, which bmcd keeps
    data = bytearray(path.read_bytes())
    data[(page - 1) * size + 8 : page * size] = b"\xff" * (size - 8)
    path.write_bytes(bytes(data))
    return bytes(data)


async def test_damaged_page_is_found_at_open(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    await _items_database(path)
    damaged = _damage_page(path, 10)

    store = Store(path)
    with pytest.raises(StoreError) as raised:
        await store.open()
    await store.close()
    message = str(raised.value)
    assert str(path) in message
    assert "damaged" in message
    assert "move the file aside" in message
    assert "loses every account" in message
    assert path.read_bytes() == damaged


async def test_unopenable_database_is_not_called_damaged(tmp_path: Path) -> None:
    # What SQLite reports for a file it may not open (mode, owner, read-only
    # mount) is the same "unable to open database file" (SQLITE_CANTOPEN).
    path = tmp_path / "state.db"
    path.mkdir()

    store = Store(path)
    with pytest.raises(StoreError) as raised:
        await store.open()
    await store.close()
    message = str(raised.value)
    assert str(path) in message
    assert "owner and mode" in message
    # Moving the database aside would throw every account away.
    assert "aside" not in message


async def test_database_errors_in_migrate_become_store_errors(store: Store) -> None:
    await store.run(lambda c: c.execute("DROP TABLE schema_versions"))
    with pytest.raises(StoreError) as raised:
        await store.migrate("items", (_create_items,))
    assert str(store.path) in str(raised.value)
    assert "no such table" in str(raised.value)


def test_state_dir_must_be_a_directory(tmp_path: Path) -> None:
    afile = tmp_path / "state"
    afile.write_text("not a directory")
    with pytest.raises(StoreError, match=r"state is a file, not a directory"):
        prepare_state_dir(afile)
    with pytest.raises(StoreError, match=r"lies below a file"):
        prepare_state_dir(afile / "below")

    prepare_state_dir(tmp_path / "new" / "state")
    assert (tmp_path / "new" / "state").stat().st_mode & 0o777 == 0o700


async def test_corrupt_state_stops_the_app(config: Config) -> None:
    config.state_dir.mkdir(parents=True)
    path = config.state_dir / "bmcd.db"
    path.write_bytes(b"\0garbage" * 1000)
    runner = web.AppRunner(create_app(config))
    with pytest.raises(StoreError):
        await runner.setup()
    await runner.cleanup()
    assert path.read_bytes() == b"\0garbage" * 1000


async def test_settings_survive_reopen(config: Config) -> None:
    async with core_services(config) as core:
        await core.settings.update({"session.timeout": 99})
        uuid = core.settings.get("service.uuid")
    async with core_services(config) as core:
        assert core.settings.get("session.timeout") == 99
        assert core.settings.get("service.uuid") == uuid


async def test_settings_defaults(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    await store.open()
    settings = Settings(store)
    await settings.load()
    assert settings.get("session.timeout") == 1800
    assert settings.get("account.min_password_length") == 8
    await store.close()


async def test_state_dir_is_private(config: Config) -> None:
    config = dataclasses.replace(config, state_dir=config.state_dir / "new")
    async with core_services(config):
        pass
    assert config.state_dir.stat().st_mode & 0o077 == 0

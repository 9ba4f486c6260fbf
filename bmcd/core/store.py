"""bmcd's state database: one SQLite file, used from one worker thread.

All SQL runs on a single dedicated thread so that the event loop never waits
on disk and SQLite never sees two threads. Each :meth:`Store.run` call is one
transaction: it commits when the function returns and rolls back when it
raises, so a crash mid-write leaves the previous state.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

_LOGGER = logging.getLogger(__name__)

T = TypeVar("T")

Migration = Callable[[sqlite3.Connection], None]


class StoreError(Exception):
    """The database cannot be opened or migrated; start-up must stop."""


class Store:
    """The SQLite database in the state directory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="bmcd-db")
        self._conn: sqlite3.Connection | None = None

    async def open(self) -> None:
        """Open (creating if absent) the database file."""
        await self._submit(self._open)

    def _open(self) -> None:
        try:
            conn = sqlite3.connect(
                self.path, isolation_level=None, timeout=10, check_same_thread=False
            )
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_versions ("
                "component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
            )
        except sqlite3.Error as err:
            raise StoreError(
                f"cannot open the state database {self.path}: {err}; "
                "move the file aside to start with empty state"
            ) from err
        self._conn = conn

    async def close(self) -> None:
        """Close the database and stop its thread."""
        if self._conn is not None:
            await self._submit(self._conn.close)
            self._conn = None
        self._executor.shutdown(wait=True)

    async def migrate(self, component: str, migrations: Sequence[Migration]) -> None:
        """Bring ``component``'s tables up to ``len(migrations)``.

        Each migration runs in its own transaction with its version bump. A
        database newer than this code is refused rather than guessed at.
        """
        await self._submit(self._migrate, component, migrations)

    def _migrate(self, component: str, migrations: Sequence[Migration]) -> None:
        conn = self._connection()
        row = conn.execute(
            "SELECT version FROM schema_versions WHERE component=?", (component,)
        ).fetchone()
        current = row[0] if row else 0
        if current > len(migrations):
            raise StoreError(
                f"{self.path}: {component} tables are at version {current}, "
                f"newer than this bmcd knows ({len(migrations)}); "
                "install a newer bmcd or restore a backup"
            )
        for version in range(current + 1, len(migrations) + 1):
            step = migrations[version - 1]

            def apply(
                conn: sqlite3.Connection, version: int = version, step: Migration = step
            ) -> None:
                self._apply(conn, component, version, step)

            try:
                self._transaction(apply)
            except sqlite3.Error as err:
                raise StoreError(
                    f"{self.path}: migrating {component} to "
                    f"version {version} failed: {err}"
                ) from err
            _LOGGER.info(
                "State database: %s tables migrated to version %d", component, version
            )

    @staticmethod
    def _apply(
        conn: sqlite3.Connection, component: str, version: int, migration: Migration
    ) -> None:
        migration(conn)
        conn.execute(
            "INSERT INTO schema_versions(component, version) "
            "VALUES(?, ?) ON CONFLICT(component) DO UPDATE "
            "SET version=excluded.version",
            (component, version),
        )

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work(conn)`` as one transaction on the database thread."""
        return await self._submit(self._transaction, work)

    def run_sync(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` as one transaction from a thread that is not the loop."""
        return self._executor.submit(self._transaction, work).result()

    def _transaction(self, work: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = work(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError("the state database is not open")
        return self._conn

    async def _submit(self, func: Callable[..., T], *args: object) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, func, *args)

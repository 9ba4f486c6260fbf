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


# SQLite primary result codes (sqlite3.h): the file is no usable database...
_DAMAGED_CODES = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB
# ... or bmcd may not, or cannot, read and write it.
_ACCESS_CODES = {3, 8, 10, 14, 23}  # PERM, READONLY, IOERR, CANTOPEN, AUTH
_BUSY_CODES = {5, 6}  # SQLITE_BUSY, SQLITE_LOCKED: another process holds it
_INTEGRITY_PROBLEMS = 3  # how many quick_check findings a message quotes
_DAMAGED_ADVICE = (
    "restore it from a backup, or stop bmcd and move the file aside to start "
    "with empty state (that loses every account, session and setting)"
)


class StoreError(Exception):
    """The state directory or database cannot be used; start-up must stop."""


def prepare_state_dir(state_dir: Path) -> None:
    """Create the state directory (mode 0700) or refuse one bmcd cannot use."""
    try:
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    except (FileExistsError, NotADirectoryError) as err:
        where = "is" if isinstance(err, FileExistsError) else "lies below"
        raise StoreError(
            f"the state directory {state_dir} {where} a file, not a directory; "
            "point server.state_dir (or --state-dir) at a directory"
        ) from None
    except OSError as err:
        raise StoreError(
            f"cannot create the state directory {state_dir}: "
            f"{err.strerror or err}; check the owner and mode of its parent"
        ) from None


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
        except sqlite3.Error as err:
            raise self._error("cannot open", err) from err
        try:
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA synchronous=FULL")
            self._check_integrity(conn)
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_versions ("
                "component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
            )
        except sqlite3.Error as err:
            conn.close()
            raise self._error("cannot open", err) from err
        except StoreError:
            conn.close()
            raise
        self._conn = conn

    def _check_integrity(self, conn: sqlite3.Connection) -> None:
        # Cheap on bmcd's small file, and a damaged page found now stops
        # start-up with advice instead of failing some request later.
        rows = conn.execute(f"PRAGMA quick_check({_INTEGRITY_PROBLEMS})").fetchall()
        lines = [line for row in rows for line in str(row[0]).splitlines()]
        if lines == ["ok"]:
            return
        problems = [line for line in lines if not line.startswith("***")]
        raise StoreError(
            f"the state database {self.path} is damaged "
            f"({'; '.join(problems[:_INTEGRITY_PROBLEMS])}); {_DAMAGED_ADVICE}"
        )

    def _error(self, doing: str, err: sqlite3.Error) -> StoreError:
        """A StoreError for ``err`` whose advice fits its cause."""
        code = getattr(err, "sqlite_errorcode", 0) & 0xFF
        if code in _DAMAGED_CODES:
            return StoreError(
                f"the state database {self.path} is damaged or not an SQLite "
                f"database ({err}); {_DAMAGED_ADVICE}"
            )
        text = f"{doing} the state database {self.path}: {err}"
        if code in _ACCESS_CODES:
            text += (
                f"; check the owner and mode of the state directory "
                f"{self.path.parent} and of {self.path.name} in it: the user "
                "bmcd runs as must be able to read and write both, on a "
                "writable file system"
            )
        elif code in _BUSY_CODES:
            text += "; is another bmcd running with the same state directory?"
        return StoreError(text)

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
        try:
            row = conn.execute(
                "SELECT version FROM schema_versions WHERE component=?", (component,)
            ).fetchone()
        except sqlite3.Error as err:
            raise self._error(f"cannot read {component}'s version from", err) from err
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
                raise self._error(
                    f"migrating {component} to version {version} failed in", err
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

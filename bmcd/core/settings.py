"""Service-wide settings that clients change at run time, kept in the store.

Values are JSON in one table, so that a setting added later needs no schema
change; each has a default here and is read through :class:`Settings`.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from typing import Any

from bmcd.core.store import Store

DEFAULTS: dict[str, Any] = {
    "account.min_password_length": 8,
    "account.max_password_length": 64,
    "account.lockout_threshold": 5,
    "account.lockout_duration": 300,
    "account.lockout_counter_reset_after": 300,
    "account.password_expiration_days": None,
    "account.service_enabled": True,
    "session.timeout": 1800,
    "manager.service_identification": "",
    "manager.datetime_local_offset": "+00:00",
}


def _migration_1(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL)")


class Settings:
    """A cached view of the settings table; writes go through to SQLite."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._values: dict[str, Any] = dict(DEFAULTS)

    async def load(self) -> None:
        """Create the table if needed and read every stored value."""
        await self._store.migrate("settings", (_migration_1,))
        rows = await self._store.run(
            lambda c: c.execute("SELECT key, value FROM settings").fetchall()
        )
        for key, value in rows:
            self._values[key] = json.loads(value)
        if "service.uuid" not in self._values:
            # Generated once, then stable across restarts (DSP0266 asks it).
            await self.update({"service.uuid": str(uuid.uuid4())})

    def get(self, key: str) -> Any:
        """The current value of ``key``."""
        return self._values[key]

    async def update(self, values: dict[str, Any]) -> None:
        """Store several values in one transaction, then publish them."""

        def write(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "INSERT INTO settings(key, value) VALUES(?, ?) ON CONFLICT(key) "
                "DO UPDATE SET value=excluded.value",
                [(key, json.dumps(value)) for key, value in values.items()],
            )

        await self._store.run(write)
        self._values.update(values)

"""Redfish sessions: tokens stored as hashes, surviving restarts.

The token is shown to the client once, at creation; only its SHA-256 is
stored, so a copy of the database does not let anyone log in. Sessions expire
after SessionService's idle timeout.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import sqlite3
import time
from dataclasses import dataclass
from http import HTTPStatus

from bmcd.core.errors import RedfishError
from bmcd.core.settings import Settings
from bmcd.core.store import Store

_LOGGER = logging.getLogger(__name__)

# How stale last_used may get before a request writes it again; keeps most
# authenticated requests free of a database write.
_TOUCH_INTERVAL = 15.0


@dataclass(frozen=True)
class Session:
    """One login session."""

    id: str
    username: str
    created: float
    last_used: float
    origin: str
    context: str | None


def _migration_1(conn: sqlite3.Connection) -> None:
    conn.execute("""
        CREATE TABLE sessions (
            id TEXT PRIMARY KEY,
            token_hash TEXT NOT NULL UNIQUE,
            username TEXT NOT NULL,
            created REAL NOT NULL,
            last_used REAL NOT NULL,
            origin TEXT NOT NULL,
            context TEXT
        )""")


_TOKEN = re.compile(r"[0-9a-f]{64}")


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class SessionManager:
    """Creates, finds, lists and ends sessions."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        max_sessions: int,
        max_per_user: int | None = None,
    ) -> None:
        self._store = store
        self._settings = settings
        self._max_sessions = max_sessions
        # One account must not be able to take every slot and lock out the
        # administrators; by default it gets a quarter of them.
        self._max_per_user = max_per_user or max(1, max_sessions // 4)
        # Uses newer than the stored last_used (see _TOUCH_INTERVAL), by id.
        self._used: dict[str, float] = {}

    async def start(self) -> None:
        """Create the sessions table and forget sessions that expired."""
        await self._store.migrate("sessions", (_migration_1,))
        await self.expire()

    @property
    def timeout(self) -> int:
        """The idle timeout in seconds."""
        return int(self._settings.get("session.timeout"))

    async def create(
        self, username: str, origin: str, context: str | None
    ) -> tuple[Session, str]:
        """Open a session; returns it with its token (shown only now)."""
        await self.expire()
        # Hex, so that clients and validators can judge its randomness.
        token = secrets.token_hex(32)
        now = time.time()
        session = Session(secrets.token_hex(10), username, now, now, origin, context)

        def insert(conn: sqlite3.Connection) -> None:
            (count,) = conn.execute("SELECT COUNT(*) FROM sessions").fetchone()
            (own,) = conn.execute(
                "SELECT COUNT(*) FROM sessions WHERE username=?", (username,)
            ).fetchone()
            if count >= self._max_sessions or own >= self._max_per_user:
                raise RedfishError.of(
                    HTTPStatus.SERVICE_UNAVAILABLE, "SessionLimitExceeded"
                )
            conn.execute(
                "INSERT INTO sessions VALUES(?, ?, ?, ?, ?, ?, ?)",
                (session.id, _token_hash(token), username, now, now, origin, context),
            )

        try:
            await self._store.run(insert)
        except RedfishError:
            _LOGGER.warning(
                "Session for %s refused: the limit of %d sessions, %d per "
                "account, is reached",
                username,
                self._max_sessions,
                self._max_per_user,
            )
            raise
        _LOGGER.info("Session %s opened for %s from %s", session.id, username, origin)
        return session, token

    async def lookup(self, token: str) -> Session | None:
        """The live session that ``token`` belongs to, refreshing its idle time."""
        if not _TOKEN.fullmatch(token):
            return None  # not one bmcd issued (and maybe not even text)
        row = await self._store.run(
            lambda c: c.execute(
                "SELECT * FROM sessions WHERE token_hash=?", (_token_hash(token),)
            ).fetchone()
        )
        if row is None:
            return None
        session = self._session(row)
        now = time.time()
        if now - self._last_used(session) > self.timeout:
            await self.delete(session.id)
            _LOGGER.info("Session %s of %s expired", session.id, session.username)
            return None
        if now - session.last_used > _TOUCH_INTERVAL:
            await self._store.run(
                lambda c: c.execute(
                    "UPDATE sessions SET last_used=? WHERE id=?", (now, session.id)
                )
            )
            self._used.pop(session.id, None)
        else:
            self._used[session.id] = now
        return session

    async def get(self, session_id: str) -> Session | None:
        """The session with id ``session_id``, if it is still live."""
        row = await self._store.run(
            lambda c: c.execute(
                "SELECT * FROM sessions WHERE id=?", (session_id,)
            ).fetchone()
        )
        if row is None:
            return None
        session = self._session(row)
        if time.time() - self._last_used(session) > self.timeout:
            return None
        return session

    async def list(self) -> list[Session]:
        """Every live session, oldest first."""
        await self.expire()
        rows = await self._store.run(
            lambda c: c.execute("SELECT * FROM sessions ORDER BY created").fetchall()
        )
        return [self._session(row) for row in rows]

    async def delete(self, session_id: str) -> bool:
        """End a session; False when there was none."""
        self._used.pop(session_id, None)
        cursor = await self._store.run(
            lambda c: c.execute("DELETE FROM sessions WHERE id=?", (session_id,))
        )
        return bool(cursor.rowcount)

    async def delete_user(self, username: str) -> None:
        """End every session of ``username`` (account deleted or disabled)."""
        await self._store.run(
            lambda c: c.execute("DELETE FROM sessions WHERE username=?", (username,))
        )

    async def stop(self) -> None:
        """Write the recent uses that only live in memory (clean shutdown)."""
        used = [(when, session_id) for session_id, when in self._used.items()]
        self._used.clear()
        if used:
            await self._store.run(
                lambda c: c.executemany(
                    "UPDATE sessions SET last_used=MAX(last_used, ?) WHERE id=?", used
                )
            )

    async def expire(self) -> None:
        """Delete every session idle longer than the timeout."""
        cutoff = time.time() - self.timeout
        used = [(when, session_id) for session_id, when in self._used.items()]
        self._used.clear()

        def sweep(conn: sqlite3.Connection) -> None:
            # Uses not yet written still count as activity.
            conn.executemany(
                "UPDATE sessions SET last_used=MAX(last_used, ?) WHERE id=?", used
            )
            conn.execute("DELETE FROM sessions WHERE last_used < ?", (cutoff,))

        await self._store.run(sweep)

    def _last_used(self, session: Session) -> float:
        return max(session.last_used, self._used.get(session.id, 0.0))

    @staticmethod
    def _session(row: sqlite3.Row) -> Session:
        return Session(
            row["id"],
            row["username"],
            row["created"],
            row["last_used"],
            row["origin"],
            row["context"],
        )

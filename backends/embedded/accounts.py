"""Accounts kept in bmcd's own SQLite database, with scrypt password hashes."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import secrets
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime

from bmcd.contracts import (
    Account,
    AccountChanges,
    AccountExistsError,
    AccountNotFoundError,
    AuthOutcome,
    AuthResult,
    BackendContext,
    LockoutPolicy,
    PasswordReusedError,
    verdict,
)

_LOGGER = logging.getLogger(__name__)

# scrypt parameters: 16 MiB of memory per hash, about 50 ms on a small ARM core.
_SCRYPT_N = 2**14
_SCRYPT_R = 8
_SCRYPT_P = 1
_SCRYPT_MAXMEM = 64 * 1024 * 1024


def _migration_1(conn: sqlite3.Connection) -> None:
    conn.execute("""
        CREATE TABLE embedded_accounts (
            username TEXT PRIMARY KEY,
            password_hash TEXT NOT NULL,
            role_id TEXT NOT NULL,
            enabled INTEGER NOT NULL,
            password_change_required INTEGER NOT NULL,
            password_changed_at REAL NOT NULL,
            account_types TEXT NOT NULL,
            failed_logins INTEGER NOT NULL DEFAULT 0,
            first_failure_at REAL NOT NULL DEFAULT 0,
            locked_until REAL NOT NULL DEFAULT 0
        )""")


def _migration_2(conn: sqlite3.Connection) -> None:
    # The reset window runs from the latest failure, not the first.
    conn.execute(
        "ALTER TABLE embedded_accounts "
        "RENAME COLUMN first_failure_at TO last_failure_at"
    )


_MIGRATIONS = (_migration_1, _migration_2)


def hash_password(password: str) -> str:
    """Return a self-describing scrypt hash of ``password`` (slow: use a thread)."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode(),
        salt=salt,
        n=_SCRYPT_N,
        r=_SCRYPT_R,
        p=_SCRYPT_P,
        maxmem=_SCRYPT_MAXMEM,
    )
    encoded_salt = base64.b64encode(salt).decode()
    encoded_digest = base64.b64encode(digest).decode()
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${encoded_salt}${encoded_digest}"


def verify_password(password: str, stored: str) -> bool:
    """Check ``password`` against a hash made by :func:`hash_password`."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(
            password.encode(),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=_SCRYPT_MAXMEM,
            dklen=len(expected),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


# A hash to check against when the user does not exist, so that the time taken
# does not tell an attacker which user names are real.
_DUMMY_HASH: str | None = None


def _dummy_hash() -> str:
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = hash_password(secrets.token_hex(8))
    return _DUMMY_HASH


class EmbeddedAccountStore:
    """The account backend that needs nothing but bmcd's state database."""

    def __init__(self, context: BackendContext) -> None:
        self._db = context.database
        self._policy = LockoutPolicy()

    async def start(self) -> None:
        """Create or migrate the accounts table."""
        await self._db.migrate("accounts.embedded", _MIGRATIONS)

    async def stop(self) -> None:
        """Nothing to release: the database belongs to the core."""

    async def set_lockout_policy(self, policy: LockoutPolicy) -> None:
        """Use ``policy`` for the next failed logins."""
        self._policy = policy

    async def list_accounts(self) -> Sequence[Account]:
        """Every account, ordered by user name."""
        rows = await self._db.run(
            lambda c: c.execute(
                "SELECT * FROM embedded_accounts ORDER BY username"
            ).fetchall()
        )
        now = time.time()
        return [self._account(row, now) for row in rows]

    async def get_account(self, account_id: str) -> Account | None:
        """The account whose id (its user name) is ``account_id``."""
        row = await self._db.run(lambda c: self._row(c, account_id))
        return self._account(row, time.time()) if row else None

    async def find_account(self, username: str) -> Account | None:
        """The account named ``username``."""
        return await self.get_account(username)

    async def create_account(
        self,
        username: str,
        password: str,
        role_id: str,
        *,
        enabled: bool = True,
        password_change_required: bool = False,
        account_types: tuple[str, ...] = ("Redfish",),
    ) -> Account:
        """Insert a new account; its id is its user name."""
        password_hash = await asyncio.to_thread(hash_password, password)

        def insert(conn: sqlite3.Connection) -> None:
            try:
                conn.execute(
                    "INSERT INTO embedded_accounts(username, password_hash, "
                    "role_id, enabled, password_change_required, "
                    "password_changed_at, account_types) VALUES(?,?,?,?,?,?,?)",
                    (
                        username,
                        password_hash,
                        role_id,
                        int(enabled),
                        int(password_change_required),
                        time.time(),
                        json.dumps(list(account_types)),
                    ),
                )
            except sqlite3.IntegrityError:
                raise AccountExistsError(username) from None

        await self._db.run(insert)
        _LOGGER.info("Account %s created with role %s", username, role_id)
        account = await self.get_account(username)
        assert account is not None
        return account

    async def update_account(self, account_id: str, changes: AccountChanges) -> Account:
        """Apply every change in one transaction."""
        password_hash = None
        if changes.password is not None:
            await self._refuse_current_password(account_id, changes.password)
            password_hash = await asyncio.to_thread(hash_password, changes.password)

        def update(conn: sqlite3.Connection) -> str:
            if self._row(conn, account_id) is None:
                raise AccountNotFoundError(account_id)
            fields: dict[str, object] = {}
            if password_hash is not None:
                fields["password_hash"] = password_hash
                fields["password_changed_at"] = time.time()
                # A password set by someone else must be changed by its owner;
                # the caller says so through password_change_required.
                fields["password_change_required"] = 0
            if changes.role_id is not None:
                fields["role_id"] = changes.role_id
            if changes.enabled is not None:
                fields["enabled"] = int(changes.enabled)
            if changes.locked is False:
                fields.update(failed_logins=0, last_failure_at=0, locked_until=0)
            if changes.password_change_required is not None:
                fields["password_change_required"] = int(
                    changes.password_change_required
                )
            if changes.account_types is not None:
                fields["account_types"] = json.dumps(list(changes.account_types))
            if changes.username is not None and changes.username != account_id:
                fields["username"] = changes.username
            if fields:
                assignments = ", ".join(f"{name}=?" for name in fields)
                try:
                    conn.execute(
                        f"UPDATE embedded_accounts SET {assignments} WHERE username=?",
                        (*fields.values(), account_id),
                    )
                except sqlite3.IntegrityError:
                    raise AccountExistsError(str(changes.username)) from None
            return changes.username or account_id

        new_id = await self._db.run(update)
        account = await self.get_account(new_id)
        assert account is not None
        return account

    async def _refuse_current_password(self, account_id: str, password: str) -> None:
        # Always, not only while PasswordChangeRequired is stored: expiry is
        # the core's business, and re-setting the current password is no
        # change in any case. A concurrent password change can slip between
        # this check and the update; the last writer wins, as for any change.
        row = await self._db.run(lambda c: self._row(c, account_id))
        if row is None:
            raise AccountNotFoundError(account_id)
        stored = row["password_hash"]
        if await asyncio.to_thread(verify_password, password, stored):
            raise PasswordReusedError(
                f"the new password of {account_id} is its current password"
            )

    async def delete_account(self, account_id: str) -> None:
        """Remove the account."""

        def delete(conn: sqlite3.Connection) -> None:
            cursor = conn.execute(
                "DELETE FROM embedded_accounts WHERE username=?", (account_id,)
            )
            if cursor.rowcount == 0:
                raise AccountNotFoundError(account_id)

        await self._db.run(delete)
        _LOGGER.info("Account %s deleted", account_id)

    async def authenticate(self, username: str, password: str) -> AuthResult:
        """Check the password; count failures and lock per the policy."""
        row = await self._db.run(lambda c: self._row(c, username))
        stored = row["password_hash"] if row else _dummy_hash()
        matches = await asyncio.to_thread(verify_password, password, stored)
        if row is None:
            return AuthResult(AuthOutcome.BAD_CREDENTIALS)

        now = time.time()
        account = self._account(row, now)
        if account.locked:
            return AuthResult(AuthOutcome.LOCKED, account)
        if not matches:
            await self._db.run(lambda c: self._count_failure(c, username, now))
            return AuthResult(AuthOutcome.BAD_CREDENTIALS, account)
        if not account.enabled:
            return AuthResult(AuthOutcome.DISABLED, account)
        if row["failed_logins"]:
            await self._db.run(
                lambda c: c.execute(
                    "UPDATE embedded_accounts SET failed_logins=0, "
                    "last_failure_at=0 WHERE username=?",
                    (username,),
                )
            )
            account = replace(account, locked=False)
        return AuthResult(AuthOutcome.OK, account)

    async def check_account(self, username: str) -> AuthResult:
        """Whether ``username`` may still use a verified credential."""
        return verdict(await self.get_account(username))

    def _count_failure(
        self, conn: sqlite3.Connection, username: str, now: float
    ) -> None:
        row = self._row(conn, username)
        if row is None:
            return
        policy = self._policy
        failures = row["failed_logins"]
        # AccountLockoutCounterResetAfter counts from the last failed attempt.
        if policy.reset_after and now - row["last_failure_at"] > policy.reset_after:
            failures = 0
        failures += 1
        locked_until = row["locked_until"]
        if policy.threshold and failures >= policy.threshold:
            # Duration 0 means locked until an administrator unlocks it.
            locked_until = now + policy.duration if policy.duration else float("inf")
            failures = 0
            _LOGGER.warning(
                "Account %s locked after %d failed logins", username, policy.threshold
            )
        conn.execute(
            "UPDATE embedded_accounts SET failed_logins=?, "
            "last_failure_at=?, locked_until=? WHERE username=?",
            (failures, now, locked_until, username),
        )

    @staticmethod
    def _row(conn: sqlite3.Connection, username: str) -> sqlite3.Row | None:
        conn.row_factory = sqlite3.Row
        row: sqlite3.Row | None = conn.execute(
            "SELECT * FROM embedded_accounts WHERE username=?", (username,)
        ).fetchone()
        return row

    @staticmethod
    def _account(row: sqlite3.Row, now: float) -> Account:
        return Account(
            id=row["username"],
            username=row["username"],
            role_id=row["role_id"],
            enabled=bool(row["enabled"]),
            locked=row["locked_until"] > now,
            password_change_required=bool(row["password_change_required"]),
            password_changed_at=datetime.fromtimestamp(row["password_changed_at"], UTC),
            account_types=tuple(json.loads(row["account_types"])),
        )

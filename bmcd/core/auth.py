"""Who is asking: HTTP Basic credentials and session tokens to principals.

Verified Basic credentials are cached briefly (keyed by an HMAC, never the
password) so that a client sending Basic on every request does not pay a
memory-hard hash each time; every cache hit still re-checks that the account
is enabled, unlocked and unchanged, so the cache never outlives a lockout.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import time
from dataclasses import dataclass

from bmcd.contracts import Account, AuthOutcome, AuthResult
from bmcd.core.accounts import AccountManager, call_backend
from bmcd.core.errors import no_valid_session
from bmcd.core.privileges import role_privileges
from bmcd.core.sessions import Session, SessionManager

_LOGGER = logging.getLogger(__name__)

_CACHE_LIMIT = 256
# Enough of a refused user name to recognise it; a client may send megabytes.
_LOGGED_NAME_CHARS = 64


@dataclass(frozen=True)
class Principal:
    """An authenticated caller."""

    username: str
    account_id: str
    role_id: str
    privileges: frozenset[str]
    session_id: str | None = None
    must_change_password: bool = False


class Authenticator:
    """Checks credentials against the account backend and sessions."""

    def __init__(
        self,
        accounts: AccountManager,
        sessions: SessionManager,
        *,
        failure_delay: float,
        cache_seconds: float,
    ) -> None:
        self._accounts = accounts
        self._sessions = sessions
        self._failure_delay = failure_delay
        self._cache_seconds = cache_seconds
        self._cache_key = secrets.token_bytes(32)
        self._cache: dict[bytes, tuple[str, float]] = {}

    def forget(self, username: str | None = None) -> None:
        """Drop cached credentials (of one user, or all)."""
        if username is None:
            self._cache.clear()
            return
        for key in [k for k, (user, _) in self._cache.items() if user == username]:
            del self._cache[key]

    async def login(self, username: str, password: str, origin: str) -> Account:
        """Verify a password for a new session or Basic request; 401 if wrong."""
        key = hmac.new(
            self._cache_key, f"{username}\0{password}".encode(), hashlib.sha256
        ).digest()
        cached = self._cache.get(key)
        if cached and cached[1] > time.monotonic():
            result = await call_backend(self._accounts.backend.check_account(username))
        else:
            result = await call_backend(
                self._accounts.backend.authenticate(username, password)
            )
        if result.outcome is not AuthOutcome.OK or result.account is None:
            self._cache.pop(key, None)
            await self._refuse(username, origin, result)
        assert result.account is not None
        if self._cache_seconds and not cached:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[key] = (username, time.monotonic() + self._cache_seconds)
        return result.account

    async def basic(self, username: str, password: str, origin: str) -> Principal:
        """The principal for HTTP Basic credentials."""
        account = await self.login(username, password, origin)
        return self._principal(account, None)

    async def token(self, token: str) -> Principal:
        """The principal for an X-Auth-Token; 401 if unknown or expired."""
        session = await self._sessions.lookup(token)
        if session is None:
            raise no_valid_session()
        return await self.for_session(session)

    async def for_session(self, session: Session) -> Principal:
        """The principal of a live session, re-checking its account."""
        result = await call_backend(
            self._accounts.backend.check_account(session.username)
        )
        if result.outcome is AuthOutcome.LOCKED and result.account is not None:
            # Lockout stops password guessing; it must not let a guesser end
            # the sessions the real user already opened.
            return self._principal(result.account, session.id)
        if result.outcome is not AuthOutcome.OK or result.account is None:
            # The account went away or was disabled: so does the session.
            await self._sessions.delete(session.id)
            _LOGGER.info(
                "Session %s closed: account %s is %s",
                session.id,
                session.username,
                result.outcome.value,
            )
            raise no_valid_session()
        return self._principal(result.account, session.id)

    def _principal(self, account: Account, session_id: str | None) -> Principal:
        return Principal(
            username=account.username,
            account_id=account.id,
            role_id=account.role_id,
            privileges=role_privileges(account.role_id),
            session_id=session_id,
            must_change_password=self._accounts.must_change_password(account),
        )

    async def _refuse(self, username: str, origin: str, result: AuthResult) -> None:
        _LOGGER.warning(
            "Login as %s from %s refused: %s",
            _loggable(username),
            origin,
            result.outcome.value,
        )
        # Slow down guessing without holding up anyone else's request.
        await asyncio.sleep(self._failure_delay)
        # A locked account is refused like a wrong password, so that lockout
        # does not confirm which names exist.
        raise no_valid_session()


def _loggable(username: str) -> str:
    """A client-supplied user name for the log: quoted, its first 64 characters."""
    if len(username) <= _LOGGED_NAME_CHARS:
        return repr(username)
    shown = repr(username[:_LOGGED_NAME_CHARS])
    return f"{shown}... ({len(username)} characters)"

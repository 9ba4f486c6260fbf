"""The account backend role (entry-point group ``bmcd.accounts``).

An account backend owns user accounts: it lists, creates, changes and deletes
them and checks passwords. bmcd's core enforces the password length policy
and the privilege rules before it calls the backend; the backend enforces
lockout (its own counters or, for PAM, pam_faillock) and keeps secrets.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable


class BackendError(Exception):
    """Base of the errors a backend raises for bmcd to turn into messages."""


class AccountExistsError(BackendError):
    """The user name is taken."""


class AccountNotFoundError(BackendError):
    """No such account (it may have been removed outside bmcd)."""


class PasswordRejectedError(BackendError):
    """The backend's own password rules refused the password."""


class PasswordReusedError(PasswordRejectedError):
    """The new password is the account's current password.

    Setting the current password again is no change: it must not clear
    PasswordChangeRequired or restart password expiry.
    """


class BackendUnavailableError(BackendError):
    """The service behind the backend is absent or not answering."""


class AccountLimitError(BackendError):
    """The backend has no room for another account."""


class ValueRefusedError(BackendError):
    """The backend's own rules refuse a value, e.g. a user name useradd rejects.

    Attributes:
        property_name: the Redfish property, e.g. ``"UserName"``.
        value: the refused value.
    """

    def __init__(self, property_name: str, value: str, reason: str) -> None:
        super().__init__(f"{property_name} {value!r}: {reason}")
        self.property_name = property_name
        self.value = value


@dataclass(frozen=True)
class Account:
    """One account as bmcd shows it.

    Attributes:
        id: stable identifier used in the URI (the user name is fine).
        username: the login name.
        role_id: one of bmcd's Redfish role ids (Administrator, Operator,
            ReadOnly).
        enabled: False when the account may not log in.
        locked: True while locked out after failed logins.
        password_change_required: the next login must change the password.
        password_changed_at: when the password was last set, if known.
        account_types: Redfish AccountTypes values, e.g. ("Redfish",).
    """

    id: str
    username: str
    role_id: str
    enabled: bool = True
    locked: bool = False
    password_change_required: bool = False
    password_changed_at: datetime | None = None
    account_types: tuple[str, ...] = ("Redfish",)


@dataclass(frozen=True)
class AccountChanges:
    """A set of changes to one account; None leaves a field as it is.

    ``locked`` may only be set to False (unlock).
    """

    password: str | None = None
    role_id: str | None = None
    enabled: bool | None = None
    locked: bool | None = None
    password_change_required: bool | None = None
    account_types: tuple[str, ...] | None = None
    username: str | None = None


@dataclass(frozen=True)
class LockoutPolicy:
    """AccountService's lockout settings; zero disables a limit.

    Attributes:
        threshold: failed logins that lock the account (0: never).
        duration: seconds an account stays locked (0: until unlocked).
        reset_after: seconds after which the failure count starts again.
    """

    threshold: int = 5
    duration: int = 300
    reset_after: int = 300


class AuthOutcome(enum.Enum):
    """Why a login succeeded or failed (the client only learns yes or no)."""

    OK = "ok"
    BAD_CREDENTIALS = "bad credentials"
    DISABLED = "disabled"
    LOCKED = "locked"


@dataclass(frozen=True)
class AuthResult:
    """The outcome of a password check, with the account when it matched."""

    outcome: AuthOutcome
    account: Account | None = None


def verdict(account: Account | None) -> AuthResult:
    """Whether a known-good credential may still be used by ``account``.

    The usual body of :meth:`AccountBackend.check_account`: gone is a bad
    credential, then locked, then disabled.
    """
    if account is None:
        return AuthResult(AuthOutcome.BAD_CREDENTIALS)
    if account.locked:
        return AuthResult(AuthOutcome.LOCKED, account)
    if not account.enabled:
        return AuthResult(AuthOutcome.DISABLED, account)
    return AuthResult(AuthOutcome.OK, account)


@runtime_checkable
class AccountBackend(Protocol):
    """Stores accounts and checks passwords.

    Methods are coroutines and must not block the event loop: hashing, PAM
    and D-Bus round trips run in threads or asynchronously.
    """

    async def start(self) -> None:
        """Prepare for use (open files, connect, migrate tables)."""

    async def stop(self) -> None:
        """Release everything ``start`` acquired."""

    async def list_accounts(self) -> Sequence[Account]:
        """Return every account bmcd manages, in a stable order."""

    async def get_account(self, account_id: str) -> Account | None:
        """Return one account by id, or None when there is none."""

    async def find_account(self, username: str) -> Account | None:
        """Return one account by user name, or None when there is none."""

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
        """Create an account.

        Raises:
            AccountExistsError: the user name is taken.
            PasswordRejectedError: the backend refused the password.
            BackendUnavailableError: the account service cannot be reached.
        """

    async def update_account(self, account_id: str, changes: AccountChanges) -> Account:
        """Apply ``changes`` all together or not at all.

        Raises:
            AccountNotFoundError: no such account.
            AccountExistsError: a new user name is taken.
            PasswordReusedError: the new password is the current one. A
                backend may refuse that always (the embedded one does) and
                must at least while the account must change its password
                (password_change_required set or the password expired).
            PasswordRejectedError: the backend refused the password.
            BackendUnavailableError: the account service cannot be reached.
        """

    async def delete_account(self, account_id: str) -> None:
        """Delete an account.

        Raises:
            AccountNotFoundError: no such account.
            BackendUnavailableError: the account service cannot be reached.
        """

    async def authenticate(self, username: str, password: str) -> AuthResult:
        """Check a password, counting failures toward lockout.

        A locked or disabled account never authenticates, whatever the
        password. Must not reveal through timing whether the user exists.
        """

    async def check_account(self, username: str) -> AuthResult:
        """Re-check that an already verified account may still log in.

        Called on every use of a cached credential or a session, so it must
        be cheap. Returns OK with the current account, or the reason not.
        """

    async def set_lockout_policy(self, policy: LockoutPolicy) -> None:
        """Apply AccountService's lockout settings."""

"""Account rules that hold whatever backend stores the accounts.

The backend stores accounts and checks passwords; this module enforces what
Redfish and AccountService promise on top: user name syntax, the password
length policy, known roles, password expiry and that an enabled Administrator
always remains.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Sequence
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import TypeVar

from bmcd.contracts import (
    Account,
    AccountBackend,
    AccountChanges,
    AccountExistsError,
    AccountLimitError,
    AccountNotFoundError,
    BackendUnavailableError,
    LockoutPolicy,
    PasswordRejectedError,
    PasswordReusedError,
    ValueRefusedError,
)
from bmcd.core.errors import RedfishError, not_found
from bmcd.core.privileges import ROLES
from bmcd.core.sessions import SessionManager
from bmcd.core.settings import Settings
from bmcd.generated.registries import Base

_LOGGER = logging.getLogger(__name__)

ADMINISTRATOR = "Administrator"
SUPPORTED_ACCOUNT_TYPES = ("Redfish",)
# User names travel in URIs, HTTP Basic credentials, logs and (for host
# accounts) /etc/passwd: none of these characters is safe in all of them.
USERNAME_MAX_LENGTH = 32
_USERNAME_FORBIDDEN = frozenset("/:\\ \t?#%")

T = TypeVar("T")


class AccountManager:
    """Creates, changes and removes accounts through the account backend."""

    def __init__(
        self, backend: AccountBackend, settings: Settings, sessions: SessionManager
    ) -> None:
        self.backend = backend
        self._settings = settings
        self._sessions = sessions

    async def apply_lockout_policy(self) -> None:
        """Hand AccountService's lockout settings to the backend."""
        threshold = self._settings.get("account.lockout_threshold")
        duration = self._settings.get("account.lockout_duration")
        if not duration:
            # AccountService: a lockout duration of 0 means no lockout at all.
            threshold = 0
        await self.backend.set_lockout_policy(
            LockoutPolicy(
                threshold=threshold,
                duration=duration,
                reset_after=self._settings.get("account.lockout_counter_reset_after"),
            )
        )

    def password_expiration(self, account: Account) -> datetime | None:
        """When the account's password expires, or None if it never does."""
        days = self._settings.get("account.password_expiration_days")
        if not days or account.password_changed_at is None:
            return None
        return account.password_changed_at + timedelta(days=days)

    def must_change_password(self, account: Account) -> bool:
        """True while the account may do nothing but change its password."""
        expires = self.password_expiration(account)
        expired = expires is not None and expires <= datetime.now(UTC)
        return account.password_change_required or expired

    async def list(self) -> Sequence[Account]:
        """Every account."""
        return await call_backend(self.backend.list_accounts())

    async def get(self, account_id: str) -> Account:
        """One account, or 404."""
        account = await call_backend(self.backend.get_account(account_id))
        if account is None:
            raise not_found("ManagerAccount", account_id)
        return account

    async def create(
        self,
        username: str,
        password: str,
        role_id: str,
        *,
        enabled: bool = True,
        password_change_required: bool = False,
        account_types: tuple[str, ...] = SUPPORTED_ACCOUNT_TYPES,
    ) -> Account:
        """Create an account after checking name, role and password policy."""
        check_username(username)
        self.check_role(role_id)
        self.check_password(password)
        try:
            account = await call_backend(
                self.backend.create_account(
                    username,
                    password,
                    role_id,
                    enabled=enabled,
                    password_change_required=password_change_required,
                    account_types=account_types,
                )
            )
        except AccountExistsError:
            raise RedfishError.of(
                HTTPStatus.CONFLICT,
                Base.ResourceAlreadyExists,
                "ManagerAccount",
                "UserName",
                username,
                related="#/UserName",
            ) from None
        return account

    async def update(self, account_id: str, changes: AccountChanges) -> Account:
        """Change an account; refused changes leave it untouched."""
        account = await self.get(account_id)
        if changes.username is not None and changes.username != account.username:
            check_username(changes.username)
        if changes.role_id is not None:
            self.check_role(changes.role_id)
        if changes.password is not None:
            self.check_password(changes.password)
        if changes.locked is True:
            raise RedfishError.of(
                HTTPStatus.BAD_REQUEST,
                Base.PropertyValueNotInList,
                True,
                "Locked",
                related="#/Locked",
            )
        loses_admin = (
            account.role_id == ADMINISTRATOR
            and account.enabled
            and (
                (changes.role_id not in (None, ADMINISTRATOR))
                or changes.enabled is False
            )
        )
        if loses_admin:
            await self._keep_an_administrator(
                account, "RoleId" if changes.role_id else "Enabled"
            )
        try:
            updated = await call_backend(
                self.backend.update_account(account_id, changes)
            )
        except AccountNotFoundError:
            raise not_found("ManagerAccount", account_id) from None
        except AccountExistsError:
            raise RedfishError.of(
                HTTPStatus.CONFLICT,
                Base.ResourceAlreadyExists,
                "ManagerAccount",
                "UserName",
                changes.username or "",
                related="#/UserName",
            ) from None
        if changes.enabled is False or changes.username not in (None, account.username):
            await self._sessions.delete_user(account.username)
        return updated

    async def delete(self, account_id: str) -> None:
        """Delete an account and its sessions; never the last Administrator."""
        account = await self.get(account_id)
        if account.role_id == ADMINISTRATOR and account.enabled:
            await self._keep_an_administrator(account, None)
        try:
            await call_backend(self.backend.delete_account(account_id))
        except AccountNotFoundError:
            raise not_found("ManagerAccount", account_id) from None
        await self._sessions.delete_user(account.username)

    def check_role(self, role_id: str) -> None:
        """400 unless ``role_id`` names a role bmcd has."""
        if role_id not in ROLES:
            raise RedfishError.of(
                HTTPStatus.BAD_REQUEST,
                Base.PropertyValueNotInList,
                role_id,
                "RoleId",
                related="#/RoleId",
            )

    def check_password(self, password: str) -> None:
        """400 unless the password meets AccountService's length policy."""
        low = self._settings.get("account.min_password_length")
        high = self._settings.get("account.max_password_length")
        if not low <= len(password) <= high:
            raise RedfishError.of(
                HTTPStatus.BAD_REQUEST,
                Base.PasswordIncorrectLength,
                related="#/Password",
            )

    async def _keep_an_administrator(self, account: Account, prop: str | None) -> None:
        others = [
            a
            for a in await self.list()
            if a.id != account.id and a.role_id == ADMINISTRATOR and a.enabled
        ]
        if others:
            return
        _LOGGER.warning(
            "Refused to remove %s: it is the last enabled Administrator",
            account.username,
        )
        if prop is None:
            raise RedfishError.of(HTTPStatus.CONFLICT, Base.ResourceCannotBeDeleted)
        raise RedfishError.of(
            HTTPStatus.CONFLICT,
            Base.PropertyValueConflict,
            prop,
            "RoleId",
            related=f"#/{prop}",
        )


def check_username(name: str) -> None:
    """400 unless ``name`` is a user name bmcd can put in URIs and logs."""
    if (
        0 < len(name) <= USERNAME_MAX_LENGTH
        and name.isprintable()
        and not _USERNAME_FORBIDDEN.intersection(name)
        # The URI segments "." and ".." are dot-segments, not names.
        and name not in (".", "..")
    ):
        return
    raise RedfishError.of(
        HTTPStatus.BAD_REQUEST,
        Base.PropertyValueFormatError,
        name,
        "UserName",
        related="#/UserName",
    )


async def call_backend(awaitable: Awaitable[T]) -> T:
    """Await an account backend call, turning its errors into Redfish ones.

    A backend that cannot answer is a 503: neither yes nor no, so sessions
    stay and the client may retry.
    """
    try:
        return await awaitable
    except BackendUnavailableError as err:
        _LOGGER.error("Account backend unavailable: %s", err)
        raise RedfishError.of(
            HTTPStatus.SERVICE_UNAVAILABLE, Base.ServiceTemporarilyUnavailable, 10
        ) from None
    except PasswordReusedError as err:
        # A client mistake, not the operator's concern: no warning.
        _LOGGER.info("Password change refused: %s", err)
        raise RedfishError.of(
            HTTPStatus.BAD_REQUEST, Base.PasswordReuseTooRecent, related="#/Password"
        ) from None
    except PasswordRejectedError as err:
        _LOGGER.warning("Account backend refused a password: %s", err)
        raise RedfishError.of(
            HTTPStatus.BAD_REQUEST, Base.PasswordComplexityNotMet, related="#/Password"
        ) from None
    except ValueRefusedError as err:
        _LOGGER.warning("Account backend refused a value: %s", err)
        raise RedfishError.of(
            HTTPStatus.BAD_REQUEST,
            Base.PropertyValueFormatError,
            err.value,
            err.property_name,
            related=f"#/{err.property_name}",
        ) from None
    except AccountLimitError as err:
        _LOGGER.warning("Account not created: %s", err)
        raise RedfishError.of(
            HTTPStatus.CONFLICT, Base.CreateLimitReachedForResource
        ) from None

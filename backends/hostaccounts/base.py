"""What both host account backends share: PAM, lockout, the account check.

A dialect (OpenBMC or AccountsService) says where accounts live and how to
change them; this class turns that into the AccountBackend contract:
passwords are checked by PAM in a pool of its own, lockout is bmcd's own
pam_faillock file and tally directory, and the per-request account check
reads the dialect's state (briefly cached) plus the tally, never PAM.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from pathlib import Path

from bmcd.contracts import (
    Account,
    AccountChanges,
    AccountNotFoundError,
    AuthOutcome,
    AuthResult,
    BackendContext,
    BackendUnavailableError,
    LockoutPolicy,
    PasswordReusedError,
    verdict,
)

from . import cryptpw, faillock, hostdb, pam
from .helper import HelperConfig, Operations
from .options import CommonOptions, Reader, common
from .privileged import (
    HelperClient,
    InProcess,
    Privileged,
)

_LOGGER = logging.getLogger(__name__)

_CACHE_LIMIT = 1024
# PAM answers that mean "wrong password" or "no such user": the same to a client.
_REFUSED = frozenset(
    {
        pam.PamStatus.AUTH_ERR,
        pam.PamStatus.PERM_DENIED,
        pam.PamStatus.USER_UNKNOWN,
        pam.PamStatus.MAXTRIES,
        pam.PamStatus.CRED_INSUFFICIENT,
        pam.PamStatus.IGNORE,
    }
)
Undo = Callable[[], Awaitable[object]]
# One change to an account; returns how to take it back, if it can be.
Step = Callable[[], Awaitable["Undo | None"]]


class HostAccountBackend:
    """The shared half of the host account backends; dialects subclass it."""

    #: Entry-point name, used in the config table name and messages.
    name = "host"
    #: Role -> group or privilege, when the config has no roles table.
    default_roles: dict[str, str] = {}

    def __init__(self, context: BackendContext) -> None:
        self._reader = Reader(self.name, context.options)
        self.options: CommonOptions = common(
            self._reader, context.state_dir, self.default_roles
        )
        self.read_dialect_options(self._reader)
        self._reader.check_unknown()
        self._faillock = faillock.FaillockSettings.from_policy(
            self.options.faillock_dir, LockoutPolicy()
        )
        self._pam = pam.PamRunner(
            self.options.pam_service,
            confdir=self.options.pam_confdir,
            threads=self.options.pam_threads,
        )
        self.privileged = self._privileged()
        self._cache: dict[str, tuple[float, Account | None]] = {}

    # Hooks for the dialects.

    def read_dialect_options(self, reader: Reader) -> None:
        """Read the dialect's own keys from its config table."""

    def helper_groups(self) -> frozenset[str]:
        """The host groups that mark an account as bmcd's."""
        return frozenset(self.options.roles.values())

    async def fetch(self, username: str) -> Account | None:
        """The account as the host has it now (dialect; no tally)."""
        raise NotImplementedError

    async def fetch_all(self) -> list[Account]:
        """Every visible account (dialect; no tally)."""
        raise NotImplementedError

    # Shared plumbing.

    def _privileged(self) -> Privileged:
        if self.options.helper_socket is not None:
            return HelperClient(self.options.helper_socket)
        if os.geteuid() != 0:
            _LOGGER.warning(
                "[backends.%s] helper_socket is empty but bmcd is not root: "
                "password and group changes will fail",
                self.name,
            )
        return InProcess(
            Operations(
                HelperConfig(
                    groups=self.helper_groups(),
                    min_uid=self.options.min_uid,
                    allow_users=frozenset(self.options.allow_users),
                    pam_service=self.options.pam_service,
                    pam_confdir=self.options.pam_confdir,
                    faillock_dir=self.options.faillock_dir,
                )
            )
        )

    async def start(self) -> None:
        """Write the lockout file and check the PAM service file."""
        await asyncio.to_thread(
            faillock.write_settings, self.options.faillock_conf, self._faillock
        )
        await asyncio.to_thread(self._check_pam_service)

    def _check_pam_service(self) -> None:
        directory = self.options.pam_confdir or Path("/etc/pam.d")
        path = directory / self.options.pam_service
        try:
            text = path.read_text()
        except OSError as err:
            _LOGGER.error(
                "Can't read PAM service file %s (%s): logins will "
                "fail; install bmcd's etc/pam.d/bmcd there",
                path,
                err.strerror,
            )
            return
        if f"conf={self.options.faillock_conf}" not in text:
            _LOGGER.warning(
                "PAM service file %s does not pass conf=%s to pam_faillock: "
                "AccountService's lockout settings will not apply",
                path,
                self.options.faillock_conf,
            )

    async def stop(self) -> None:
        """Stop the PAM threads."""
        self._pam.close()

    async def set_lockout_policy(self, policy: LockoutPolicy) -> None:
        """Rewrite bmcd's pam_faillock settings from AccountService's."""
        settings = faillock.FaillockSettings.from_policy(
            self.options.faillock_dir, policy
        )
        await asyncio.to_thread(
            faillock.write_settings, self.options.faillock_conf, settings
        )
        self._faillock = settings
        _LOGGER.info(
            "Lockout: deny=%d unlock_time=%d fail_interval=%d in %s",
            settings.deny,
            settings.unlock_time,
            settings.fail_interval,
            self.options.faillock_conf,
        )

    def forget(self, username: str | None = None) -> None:
        """Drop cached account state (one user's, or everyone's)."""
        if username is None:
            self._cache.clear()
        else:
            self._cache.pop(username, None)

    async def _lookup(
        self,
        username: str,
        *,
        fresh: bool = False,
    ) -> Account | None:
        now = time.monotonic()
        cached = self._cache.get(username)
        if not fresh and cached is not None and cached[0] > now:
            account = cached[1]
        else:
            account = await self.fetch(username)
            if self.options.cache_seconds:
                if len(self._cache) >= _CACHE_LIMIT:
                    self._cache.clear()
                self._cache[username] = (now + self.options.cache_seconds, account)
        if account is None:
            return None
        return await self._with_tally(account)

    async def _with_tally(self, account: Account) -> Account:
        if account.locked:
            return account
        locked = await asyncio.to_thread(
            faillock.is_locked, self._faillock, account.username
        )
        return replace(account, locked=True) if locked else account

    async def refuse_reuse(self, username: str, password: str) -> None:
        """Raise PasswordReusedError when ``password`` is the current one.

        Setting the same password again would clear a must-change state (a
        one-time or expired password) without changing anything.
        """
        entry = await asyncio.to_thread(hostdb.shadow, username)
        if entry is None or entry.password_locked():
            return
        if await asyncio.to_thread(cryptpw.verify, password, entry.password):
            raise PasswordReusedError(username)

    async def hash_password(self, password: str) -> str:
        """A crypt(3) hash in the configured scheme (in a thread)."""
        prefix = (
            cryptpw.YESCRYPT
            if self.options.password_hash == "yescrypt"
            else cryptpw.SHA512
        )
        return await asyncio.to_thread(cryptpw.hash_password, password, prefix)

    async def reset_failures(self, username: str) -> None:
        """Clear the user's pam_faillock tally (unlock)."""
        try:
            await asyncio.to_thread(faillock.reset, self._faillock, username)
        except PermissionError:
            # Tallies that PAM made while bmcd ran as root belong to the
            # user: only the helper can clear them.
            await self.privileged.request("reset_failures", user=username)

    # The contract.

    async def list_accounts(self) -> Sequence[Account]:
        """Every visible account, by user name."""
        accounts = sorted(await self.fetch_all(), key=lambda a: a.username)
        return [await self._with_tally(a) for a in accounts]

    async def get_account(self, account_id: str) -> Account | None:
        """One account by id (its user name)."""
        return await self._lookup(account_id, fresh=True)

    async def find_account(self, username: str) -> Account | None:
        """One account by user name."""
        return await self._lookup(username, fresh=True)

    async def authenticate(self, username: str, password: str) -> AuthResult:
        """Check the password with PAM, whatever the user; then the account."""
        # PAM runs for every name, visible or not, so that timing does not
        # tell which names are bmcd accounts.
        # TODO(contract passes no client address): set PAM_RHOST so that
        # pam_faillock records where failures came from.
        result = await self._pam.login(username, password)
        if result.status in pam.SERVICE_FAULTS:
            _LOGGER.error(
                "PAM service %r failed for %s at %s: %s %s",
                self.options.pam_service,
                username,
                result.step,
                result.status.name,
                "; ".join(result.messages),
            )
            raise BackendUnavailableError(
                f"PAM service {self.options.pam_service}: {result.status.name}"
            )
        self.forget(username)
        account = await self._lookup(username, fresh=True)
        if account is None:
            return AuthResult(AuthOutcome.BAD_CREDENTIALS)
        if account.locked:
            return AuthResult(AuthOutcome.LOCKED, account)
        if not account.enabled or result.status is pam.PamStatus.ACCT_EXPIRED:
            return AuthResult(AuthOutcome.DISABLED, account)
        if result.status is pam.PamStatus.SUCCESS:
            return AuthResult(AuthOutcome.OK, account)
        if result.status in (
            pam.PamStatus.NEW_AUTHTOK_REQD,
            pam.PamStatus.AUTHTOK_EXPIRED,
        ):
            return AuthResult(
                AuthOutcome.OK, replace(account, password_change_required=True)
            )
        if result.status not in _REFUSED:
            _LOGGER.warning(
                "PAM refused %s at %s with %s",
                username,
                result.step,
                result.status.name,
            )
        return AuthResult(AuthOutcome.BAD_CREDENTIALS, account)

    async def check_account(self, username: str) -> AuthResult:
        """Still allowed? The dialect's (cached) state plus the tally."""
        return verdict(await self._lookup(username))

    async def undo(self, steps: list[Undo]) -> None:
        """Roll back applied steps, newest first, logging what cannot be."""
        for step in reversed(steps):
            try:
                await step()
            except Exception as err:
                _LOGGER.error("Can't roll back a partial account change: %s", err)

    async def apply_account_changes(
        self,
        current: Account,
        changes: AccountChanges,
        new_name: str | None,
        *,
        password: Step,
        role: Step,
        enabled: Step,
        unlock: Step,
        rename: Step,
    ) -> Account:
        """Apply ``changes`` through the dialect's steps, in one fixed order.

        The order and the test of which steps a change needs are the same for
        every dialect; so is setting password expiry through the helper.
        """
        account_id = current.id

        async def expiry() -> None:
            await self.privileged.request(
                "set_password_expired",
                user=account_id,
                expired=bool(changes.password_change_required),
            )
            return None

        await self.apply_changes(
            account_id,
            changes,
            [
                (changes.password is not None, password),
                (changes.role_id not in (None, current.role_id), role),
                (changes.enabled not in (None, current.enabled), enabled),
                (changes.locked is False, unlock),
                (changes.password_change_required is not None, expiry),
                (new_name is not None, rename),
            ],
        )
        account = await self._lookup(new_name or account_id, fresh=True)
        if account is None:
            raise AccountNotFoundError(new_name or account_id)
        return account

    async def apply_changes(
        self,
        username: str,
        changes: AccountChanges,
        steps: list[tuple[bool, Step]],
    ) -> None:
        """Run the wanted steps in order; on failure undo the ones done."""
        done: list[Undo] = []
        try:
            for wanted, step in steps:
                if wanted:
                    undo = await step()
                    if undo is not None:
                        done.append(undo)
        except BaseException:
            await self.undo(done)
            raise
        finally:
            self.forget(username)
            if changes.username:
                self.forget(changes.username)

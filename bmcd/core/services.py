"""Opening and closing the core's state: database, settings, accounts, sessions."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from bmcd.contracts import AccountBackend, BackendContext
from bmcd.core import plugins
from bmcd.core.accounts import AccountManager
from bmcd.core.config import Config
from bmcd.core.sessions import SessionManager
from bmcd.core.settings import Settings
from bmcd.core.store import Store

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class CoreServices:
    """The open core state."""

    store: Store
    settings: Settings
    sessions: SessionManager
    accounts: AccountManager


@asynccontextmanager
async def core_services(config: Config) -> AsyncIterator[CoreServices]:
    """Open the state database and the account backend; close them after."""
    config.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    store = Store(config.state_dir / "bmcd.db")
    await store.open()
    try:
        settings = Settings(store)
        await settings.load()
        backend = account_backend(config, store)
        await backend.start()
        try:
            sessions = SessionManager(
                store, settings, config.max_sessions, config.max_sessions_per_user
            )
            await sessions.start()
            accounts = AccountManager(backend, settings, sessions)
            await accounts.apply_lockout_policy()
            try:
                yield CoreServices(store, settings, sessions, accounts)
            finally:
                await sessions.stop()
        finally:
            await backend.stop()
    finally:
        await store.close()


def account_backend(config: Config, store: Store) -> AccountBackend:
    """The account backend the config names, found by entry point."""
    name = config.backends["accounts"]
    factory = plugins.load("accounts", name)
    try:
        backend = factory(
            BackendContext(
                state_dir=config.state_dir,
                options=config.backend_options.get(name, {}),
                database=store,
            )
        )
    except ValueError as err:
        # A backend refuses its [backends.<name>] options this way.
        raise plugins.PluginError(f"accounts backend {name!r}: {err}") from err
    if not isinstance(backend, AccountBackend):
        raise plugins.PluginError(
            f"accounts backend {name!r} does not implement AccountBackend"
        )
    _LOGGER.info("Accounts backend: %s", name)
    return backend


async def add_account(
    config: Config, username: str, password: str, role_id: str
) -> None:
    """Create an account without a running daemon (``bmcd account add``)."""
    async with core_services(config) as core:
        await core.accounts.create(username, password, role_id)

"""Shared fixtures: a bmcd application on a temporary state directory."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import bmcd_backends.embedded.accounts as embedded_accounts
import pytest
from aiohttp.test_utils import TestClient
from testkit import (
    ADMIN,
    OPERATOR,
    READONLY,
    USERS,
    basic,
    crawl,
    error_ids,
    linked_uris,
    login,
    token_header,
)

from bmcd.core.config import Config
from bmcd.core.services import core_services
from bmcd.http.app import create_app

# Still importable from here for older tests; new ones use testkit.
__all__ = [
    "ADMIN",
    "OPERATOR",
    "READONLY",
    "USERS",
    "basic",
    "crawl",
    "error_ids",
    "linked_uris",
    "login",
    "token_header",
]


@pytest.fixture(autouse=True)
def cheap_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the embedded backend's scrypt cheap, so tests stay fast.

    The hash format and salting are unchanged; only the work factor drops.
    """
    monkeypatch.setattr(embedded_accounts, "_SCRYPT_N", 2**8)


@pytest.fixture
def account_backend() -> str:
    """The accounts backend (entry-point name) the app under test uses.

    Override this fixture (or parametrize it) to run the same tests against
    another backend of the ``bmcd.accounts`` group.
    """
    return "embedded"


@pytest.fixture
def state_root(tmp_path: Path) -> Iterator[Path]:
    """A fresh directory for state: on tmpfs when there is one.

    SQLite's fsyncs on a real disk would dominate the suite's run time.
    """
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path
        return
    path = Path(tempfile.mkdtemp(prefix="bmcd-test-", dir=shm))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def config(state_root: Path, account_backend: str) -> Config:
    """A configuration whose state lives in a fresh temporary directory."""
    return dataclasses.replace(
        Config(),
        state_dir=state_root / "state",
        login_failure_delay=0.0,
        source="tests",
        backends={"accounts": account_backend},
    )


@pytest.fixture
def make_client(
    aiohttp_client: Callable[..., Awaitable[TestClient]], config: Config
) -> Callable[..., Awaitable[TestClient]]:
    """Start the app on ``config`` (or a variant) with one user per role."""

    async def make(
        cfg: Config | None = None, *, users: bool = True, **overrides: Any
    ) -> TestClient:
        cfg = dataclasses.replace(cfg or config, **overrides)
        if users:
            # One opening of the state for all three: each costs fsyncs.
            async with core_services(cfg) as core:
                for role, (name, password) in USERS.items():
                    await core.accounts.create(name, password, role)
        return await aiohttp_client(create_app(cfg))

    return make


@pytest.fixture
async def client(make_client: Callable[..., Awaitable[TestClient]]) -> TestClient:
    """The app with an Administrator, an Operator and a ReadOnly user."""
    return await make_client()


@pytest.fixture
def admin() -> dict[str, str]:
    """Basic credentials of the Administrator."""
    return basic(ADMIN)


def run(coro: Awaitable[Any]) -> Any:
    """Run a coroutine from synchronous test code."""
    return asyncio.get_event_loop().run_until_complete(coro)

"""Shared fixtures: a bmcd application on a temporary state directory."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bmcd.core.config import Config
from bmcd.core.services import add_account
from bmcd.http.app import create_app

ADMIN = ("root", "root-password-1")
OPERATOR = ("oper", "oper-password-1")
READONLY = ("reader", "reader-password-1")
USERS = {"Administrator": ADMIN, "Operator": OPERATOR, "ReadOnly": READONLY}


def basic(user: tuple[str, str]) -> dict[str, str]:
    """An Authorization header for HTTP Basic."""
    token = base64.b64encode(f"{user[0]}:{user[1]}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@pytest.fixture
def config(tmp_path: Path) -> Config:
    """A configuration whose state lives in a fresh temporary directory."""
    return dataclasses.replace(
        Config(), state_dir=tmp_path / "state", login_failure_delay=0.0,
        source="tests")


@pytest.fixture
def make_client(
    aiohttp_client: Callable[..., Awaitable[TestClient]], config: Config
) -> Callable[..., Awaitable[TestClient]]:
    """Start the app on ``config`` (or a variant) with one user per role."""

    async def make(cfg: Config | None = None, *, users: bool = True,
                   **overrides: Any) -> TestClient:
        cfg = dataclasses.replace(cfg or config, **overrides)
        if users:
            for role, (name, password) in USERS.items():
                await add_account(cfg, name, password, role)
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

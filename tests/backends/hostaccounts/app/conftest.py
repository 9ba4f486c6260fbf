"""Runs the core's privilege matrix with the openbmc backend configured.

The matrix test (tests/redfish/test_privilege_matrix.py) is collected again
here, unchanged; these fixtures, closer to it than tests/conftest.py, swap
the account backend for ``openbmc`` on the stand-in user manager, with
passwords checked by PAM (pam_pwdfile through pam_start_confdir).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bmcd.core.config import Config

MakeClient = Callable[..., Awaitable[TestClient]]


@pytest.fixture
def account_backend() -> str:
    """The backend under test."""
    return "openbmc"


@pytest.fixture
def config(config: Config, openbmc_env: Any, account_backend: str) -> Config:
    """The core's test config, with the openbmc backend's options."""
    return dataclasses.replace(
        config,
        backends={**config.backends, "accounts": account_backend},
        backend_options={
            **config.backend_options,
            account_backend: openbmc_env.options,
        },
    )


@pytest.fixture
def make_client(make_client: MakeClient, openbmc_env: Any) -> MakeClient:
    """Each app the matrix makes starts from a fresh host, like a new state."""

    async def make(*args: Any, **kwargs: Any) -> TestClient:
        openbmc_env.reset()
        return await make_client(*args, **kwargs)

    return make

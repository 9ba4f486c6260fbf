"""The bmcd command: ``bmcd account add`` and start-up errors."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from testkit import basic

from bmcd import cli
from bmcd.core.config import Config
from bmcd.core.services import core_services
from bmcd.http.app import create_app

ClientFactory = Callable[..., Awaitable[TestClient]]


@pytest.fixture(autouse=True)
def isolated_cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep the command away from /etc/bmcd and from the test's log capture."""
    monkeypatch.setattr(cli, "DEFAULT_CONFIG_FILE", tmp_path / "absent.toml")
    monkeypatch.setattr(cli, "setup_logging", lambda level: None)


def _stdin(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(text))


def _main(argv: list[str]) -> int:
    # In a thread of its own, the command's asyncio.run() leaves the event
    # loop of the test's thread alone (pytest-asyncio 0.20 keeps one there).
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(cli.main, argv).result()


def _add(state: Path, name: str, role: str = "Administrator") -> int:
    return _main(
        [
            "account",
            "add",
            name,
            "--role",
            role,
            "--state-dir",
            str(state),
            "--password-stdin",
        ]
    )


async def test_account_add(
    monkeypatch: pytest.MonkeyPatch,
    config: Config,
    aiohttp_client: ClientFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _stdin(monkeypatch, "first-admin-password\n")
    code = await asyncio.to_thread(_add, config.state_dir, "boss")
    assert code == 0
    assert "boss" in capsys.readouterr().out

    client = await aiohttp_client(create_app(config))
    headers = basic(("boss", "first-admin-password"))
    response = await client.get(
        "/redfish/v1/AccountService/Accounts/boss", headers=headers
    )
    assert response.status == 200
    body = await response.json()
    assert body["RoleId"] == "Administrator"
    assert body["PasswordChangeRequired"] is False
    # An account existed at first start: no generated administrator.
    assert not (config.state_dir / "initial-admin-password").exists()
    listed = await (
        await client.get("/redfish/v1/AccountService/Accounts", headers=headers)
    ).json()
    assert listed["Members@odata.count"] == 1


def test_account_add_with_a_role(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _stdin(monkeypatch, "viewer-password\r\n")
    assert _add(tmp_path / "state", "viewer", "ReadOnly") == 0
    _stdin(monkeypatch, "another-password\n")
    assert _add(tmp_path / "state", "viewer") == 1


def test_account_add_refuses_a_short_password(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _stdin(monkeypatch, "short\n")
    assert _add(tmp_path / "state", "boss") == 1
    err = capsys.readouterr().err
    assert "boss not created" in err
    assert "length" in err


@pytest.mark.parametrize(
    "name", ["", "x/y", "p:q", "new\nline", "x" * 300, ".", "..", "with space"]
)
def test_account_add_refuses_a_bad_name(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
) -> None:
    _stdin(monkeypatch, "a-good-password\n")
    assert _add(tmp_path / "state", name) == 1
    err = capsys.readouterr().err
    assert "not created" in err
    assert "for the property UserName is not a format" in err

    async def listed() -> int:
        config = Config(state_dir=tmp_path / "state")
        async with core_services(config) as core:
            return len(await core.accounts.list())

    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(asyncio.run, listed()).result() == 0


def test_account_add_refuses_an_unknown_role(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as raised:
        _add(tmp_path / "state", "boss", "Wizard")
    assert raised.value.code == 2


def test_bad_config_names_file_key_and_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bmcd.toml"
    path.write_text('[server]\nmax_body_bytes = "lots"\n')
    code = _main(["serve", "--config", str(path)])
    assert code == 2
    err = capsys.readouterr().err
    assert f"{path}: server.max_body_bytes: must be an integer" in err


def test_bad_listen_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = _main(["serve", "--listen", "nowhere", "--state-dir", str(tmp_path)])
    assert code == 2
    assert "--listen" in capsys.readouterr().err


def test_corrupt_state_stops_the_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "bmcd.db").write_bytes(b"garbage" * 500)
    _stdin(monkeypatch, "first-admin-password\n")
    with caplog.at_level(logging.CRITICAL):
        assert _add(state, "boss") == 1
    assert "Cannot start" in caplog.text
    assert str(state / "bmcd.db") in caplog.text
    assert (state / "bmcd.db").read_bytes() == b"garbage" * 500


# --- The first administrator when no account exists ---------------------------


async def test_first_start_creates_a_one_time_administrator(
    aiohttp_client: ClientFactory, config: Config
) -> None:
    runner = web.AppRunner(create_app(config))
    await runner.setup()
    await runner.cleanup()
    secret = config.state_dir / "initial-admin-password"
    assert secret.stat().st_mode & 0o777 == 0o600
    name, _, password = secret.read_text().strip().partition(":")
    assert name == "admin"
    assert len(password) >= 12

    client = await aiohttp_client(create_app(config))
    headers = basic((name, password))
    response = await client.get("/redfish/v1/AccountService", headers=headers)
    assert response.status == 403
    response = await client.patch(
        "/redfish/v1/AccountService/Accounts/admin",
        headers=headers,
        json={"Password": "my-own-password"},
    )
    assert response.status == 200
    headers = basic((name, "my-own-password"))
    response = await client.get("/redfish/v1/AccountService/Accounts", headers=headers)
    assert response.status == 200
    assert (await response.json())["Members@odata.count"] == 1


async def test_no_administrator_made_when_accounts_exist(config: Config) -> None:
    async with core_services(config) as core:
        await core.accounts.create("boss", "boss-password", "Administrator")
    runner = web.AppRunner(create_app(dataclasses.replace(config)))
    await runner.setup()
    await runner.cleanup()
    assert not (config.state_dir / "initial-admin-password").exists()

"""Pieces of the host account backends that need no bus and no root."""

from __future__ import annotations

import asyncio
import os
import pwd
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from bmcd_backends.hostaccounts import cryptpw, faillock, hostdb, pam
from bmcd_backends.hostaccounts.helper import (
    HelperConfig,
    HelperServer,
    Operations,
    RequestError,
)
from bmcd_backends.hostaccounts.privileged import HelperClient
from ha_support import pam_module, pwdfile_service

from bmcd.contracts import (
    AccountNotFoundError,
    BackendUnavailableError,
    LockoutPolicy,
)

# --- crypt(3) hashes through libcrypt ---


@pytest.mark.parametrize("prefix", cryptpw.PREFIXES)
def test_hashes_verify_and_are_salted(prefix: str) -> None:
    first = cryptpw.hash_password("Sekrit-pw-1", prefix)
    second = cryptpw.hash_password("Sekrit-pw-1", prefix)

    assert first.startswith(prefix) and first != second
    assert cryptpw.verify("Sekrit-pw-1", first)
    assert not cryptpw.verify("sekrit-pw-1", first)


def test_bad_inputs_raise() -> None:
    with pytest.raises(cryptpw.CryptError):
        cryptpw.gensalt("$1$")
    with pytest.raises(cryptpw.CryptError):
        cryptpw.hash_password("nul\0inside")
    assert not cryptpw.verify("x", "not-a-hash")


# --- pam_faillock settings and tallies ---


def test_policy_maps_onto_faillock_options(tmp_path: Path) -> None:
    settings = faillock.FaillockSettings.from_policy(
        tmp_path, LockoutPolicy(threshold=5, duration=300, reset_after=0)
    )

    assert (settings.deny, settings.unlock_time) == (5, 300)
    # "Never reset" becomes pam_faillock's longest window.
    assert settings.fail_interval == faillock.MAX_INTERVAL
    big = faillock.FaillockSettings.from_policy(
        tmp_path, LockoutPolicy(threshold=10**6, duration=10**9, reset_after=10)
    )
    assert (big.deny, big.unlock_time) == (65535, faillock.MAX_INTERVAL)


def test_settings_file_is_written_atomically(tmp_path: Path) -> None:
    conf = tmp_path / "state" / "faillock.conf"
    settings = faillock.FaillockSettings(tmp_path / "state" / "tally", 3, 0, 900)

    faillock.write_settings(conf, settings)

    assert conf.read_text().splitlines()[2:] == [
        f"dir = {tmp_path / 'state' / 'tally'}",
        "deny = 3",
        "unlock_time = 0",
        "fail_interval = 900",
    ]
    assert (tmp_path / "state" / "tally").is_dir()
    assert oct(conf.stat().st_mode & 0o777) == "0o640"
    assert [p.name for p in conf.parent.iterdir() if p.name.startswith(".")] == []


_USER = "nobody"


def _tally(directory: Path, *records: tuple[int, int]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    data = b"".join(
        struct.pack("=52sHHQ", b"bmcd", 0, status, when) for status, when in records
    )
    (directory / _USER).write_bytes(data)


@pytest.fixture
def tallies(tmp_path: Path) -> Iterator[Path]:
    try:
        pwd.getpwnam(_USER)
    except KeyError:
        pytest.skip(f"no {_USER} user to read tallies for")
    yield tmp_path / "tally"


def test_tally_reading_follows_pam_faillock(tallies: Path) -> None:
    now = int(time.time())
    settings = faillock.FaillockSettings(tallies, 3, 60, 900)

    _tally(tallies, (1, now - 5), (1, now - 4))
    assert not faillock.is_locked(settings, _USER, now)
    _tally(tallies, (1, now - 5), (1, now - 4), (1, now - 3))
    assert faillock.is_locked(settings, _USER, now)
    # The lock lifts unlock_time after the latest failure.
    assert not faillock.is_locked(settings, _USER, now + 60)
    # Invalid records and failures outside the window do not count.
    _tally(tallies, (0, now - 5), (1, now - 4), (1, now - 3))
    assert not faillock.is_locked(settings, _USER, now)
    _tally(tallies, (1, now - 2000), (1, now - 4), (1, now - 3))
    assert not faillock.is_locked(settings, _USER, now)
    # unlock_time 0: locked until reset; deny 0: never.
    _tally(tallies, (1, now - 5000), (1, now - 4900), (1, now - 4800))
    assert faillock.is_locked(faillock.FaillockSettings(tallies, 3, 0, 900), _USER, now)
    assert not faillock.is_locked(
        faillock.FaillockSettings(tallies, 0, 0, 900), _USER, now
    )


def test_reset_clears_and_unknown_users_are_never_locked(tallies: Path) -> None:
    now = int(time.time())
    settings = faillock.FaillockSettings(tallies, 1, 0, 900)
    _tally(tallies, (1, now))
    assert faillock.is_locked(settings, _USER, now)

    faillock.reset(settings, _USER)

    assert (tallies / _USER).stat().st_size == 0
    assert not faillock.is_locked(settings, _USER, now)
    assert not faillock.is_locked(settings, "no-such-user-here", now)
    assert not faillock.is_locked(settings, "../etc", now)
    assert not faillock.is_locked(settings, "root", now)
    faillock.reset(settings, "never-failed")


# --- shadow fields ---


def test_shadow_rules() -> None:
    today = 20000
    fresh = hostdb.Shadow("$y$abc", today - 1, 99999, -1)
    assert not fresh.password_locked() and not fresh.must_change(today)
    assert not fresh.account_expired(today)
    assert hostdb.Shadow("!$y$abc", today, 99999, -1).password_locked()
    assert hostdb.Shadow("!", today, 99999, -1).password_locked()
    assert hostdb.Shadow("$y$abc", 0, 99999, -1).must_change(today)
    assert hostdb.Shadow("$y$abc", today - 91, 90, -1).must_change(today)
    assert hostdb.Shadow("$y$abc", today, -1, 1).account_expired(today)
    assert fresh.changed_at() is not None
    assert hostdb.shadow("no-such-user-here") is None


# --- the helper's request checks and socket ---


class Recorder:
    """Stands in for running commands: records them."""

    def __init__(self) -> None:
        self.commands: list[tuple[list[str], str | None]] = []

    def __call__(self, argv: list[str], stdin: str | None) -> None:
        self.commands.append((argv, stdin))


@pytest.fixture
def operations() -> Operations:
    return Operations(HelperConfig(groups=frozenset({"bmcd-admin"})), Recorder())


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        ({"op": "shell", "user": "x"}, "invalid"),
        ({"user": "x"}, "invalid"),
        ("set_password_hash", "invalid"),
        ({"op": "set_password_hash", "user": "x", "hash": 3}, "invalid"),
        ({"op": "set_password_hash", "user": "bad name", "hash": "$y$x"}, "invalid"),
        ({"op": "add_to_group", "user": "x", "group": "sudo"}, "invalid"),
        ({"op": "set_enabled", "user": "x", "enabled": 1}, "invalid"),
        ({"op": "reset_failures", "user": "x", "more": True}, "invalid"),
        (
            {"op": "set_password_hash", "user": "no_such_user_x", "hash": "$y$x"},
            "not_found",
        ),
        ({"op": "set_enabled", "user": "root", "enabled": False}, "invalid"),
    ],
)
def test_helper_refuses(operations: Operations, request_: object, code: str) -> None:
    with pytest.raises(RequestError) as caught:
        operations.handle(request_)
    assert caught.value.code == code
    assert operations._run.commands == []  # type: ignore[attr-defined]


def _serve(
    tmp_path: Path,
    operations: Operations,
    *,
    allow: bool,
) -> tuple[HelperServer, Path]:
    path = tmp_path / "helper.sock"
    uids = frozenset({os.getuid()}) if allow else frozenset()
    server = HelperServer(path, operations, uids, frozenset())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, path


async def test_helper_client_round_trip(tmp_path: Path, operations: Operations) -> None:
    server, path = _serve(tmp_path, operations, allow=True)
    client = HelperClient(path, timeout=5)
    try:
        with pytest.raises(AccountNotFoundError):
            await client.request("set_enabled", user="no_such_user_x", enabled=True)
        with pytest.raises(BackendUnavailableError, match=r"\(invalid\)"):
            await client.request("format_disk", user="x")
    finally:
        await asyncio.to_thread(server.shutdown)
        server.server_close()


async def test_helper_refuses_other_peers(
    tmp_path: Path, operations: Operations
) -> None:
    server, path = _serve(tmp_path, operations, allow=False)
    try:
        with pytest.raises(BackendUnavailableError, match=r"\(denied\)"):
            await HelperClient(path, timeout=5).request(
                "set_enabled", user="x", enabled=True
            )
    finally:
        await asyncio.to_thread(server.shutdown)
        server.server_close()


async def test_absent_helper_is_reported(tmp_path: Path) -> None:
    with pytest.raises(BackendUnavailableError, match="is bmcd-helper running"):
        await HelperClient(tmp_path / "none.sock", timeout=2).request(
            "reset_failures", user="x"
        )


# --- PAM through ctypes, on pam_pwdfile (no host users) ---

needs_pwdfile = pytest.mark.skipif(
    pam_module("pam_pwdfile.so") is None, reason="libpam-pwdfile is not installed"
)


@pytest.fixture
def pwdfile_pam(tmp_path: Path) -> Path:
    confdir = tmp_path / "pam.d"
    pwdfile = tmp_path / "passwords"
    faillock.write_settings(
        tmp_path / "fl.conf", faillock.FaillockSettings(tmp_path / "fl", 0, 0, 900)
    )
    pwdfile_service(confdir, pwdfile, tmp_path / "fl.conf")
    pwdfile.write_text(f"pwuser:{cryptpw.hash_password('Right-pw-1')}\n")
    return confdir


@needs_pwdfile
def test_pam_login(pwdfile_pam: Path) -> None:
    ok = pam.login("bmcd", "pwuser", "Right-pw-1", confdir=pwdfile_pam)
    bad = pam.login("bmcd", "pwuser", "wrong", confdir=pwdfile_pam)

    assert (ok.status, ok.step) == (pam.PamStatus.SUCCESS, "account")
    assert bad.step == "auth" and bad.status is not pam.PamStatus.SUCCESS
    missing = pam.login("no-such-service", "pwuser", "x", confdir=pwdfile_pam)
    assert missing.status is not pam.PamStatus.SUCCESS


@needs_pwdfile
async def test_pam_runs_off_the_event_loop(pwdfile_pam: Path) -> None:
    # Without nodelay a failure holds its PAM thread about two seconds.
    slow = pwdfile_pam / "slow"
    slow.write_text((pwdfile_pam / "bmcd").read_text().replace(" nodelay", ""))
    runner = pam.PamRunner("slow", confdir=pwdfile_pam, threads=4)
    try:
        failures = [
            asyncio.ensure_future(runner.login("pwuser", "wrong")) for _ in range(4)
        ]
        await asyncio.sleep(0.1)
        started = time.monotonic()
        await asyncio.sleep(0.05)
        # The loop stayed free while the four failures waited in PAM.
        assert time.monotonic() - started < 0.5
        assert not any(f.done() for f in failures)
        results = await asyncio.gather(*failures)
        assert all(r.status is not pam.PamStatus.SUCCESS for r in results)
    finally:
        runner.close()


@pytest.mark.parametrize("name", ["alice", "_svc", "bob-2", "x" * 32])
def test_host_names_useradd_takes(name: str) -> None:
    from bmcd_backends.hostaccounts.accountsservice import _check_host_name

    _check_host_name(name)


@pytest.mark.parametrize("name", ["Alice", "1abc", "a b", "é", "x" * 33, ""])
def test_host_names_useradd_refuses(name: str) -> None:
    from bmcd_backends.hostaccounts.accountsservice import _check_host_name

    from bmcd.contracts import ValueRefusedError

    with pytest.raises(ValueRefusedError):
        _check_host_name(name)

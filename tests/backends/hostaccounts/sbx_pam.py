"""PAM, the helper and faillock against the real pam_unix stack.

Runs only inside the namespace sandbox (test_hostaccounts_sandbox.py): it adds
and changes throwaway users in a private copy of /etc.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
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
from ha_support import add_user, in_sandbox, run, unix_service

from bmcd.contracts import LockoutPolicy

pytestmark = pytest.mark.skipif(
    not in_sandbox(), reason="runs inside the namespace sandbox only"
)

GROUPS = ("bmcd-admin", "bmcd-operator", "bmcd-readonly")


@pytest.fixture(scope="module", autouse=True)
def role_groups() -> None:
    """bmcd's role groups, as the package's postinst would create them."""
    for group in GROUPS:
        run("groupadd", "-f", "--system", group)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[Path, faillock.FaillockSettings]]:
    """bmcd's shipped PAM service in a confdir, with deny=3 lockout."""
    confdir = tmp_path / "pam.d"
    conf = tmp_path / "state" / "faillock.conf"
    unix_service(confdir, conf)
    settings = faillock.FaillockSettings.from_policy(
        tmp_path / "state" / "faillock",
        LockoutPolicy(threshold=3, duration=0, reset_after=600),
    )
    faillock.write_settings(conf, settings)
    yield confdir, settings


def login(confdir: Path, user: str, password: str) -> pam.PamStatus:
    return pam.login("bmcd", user, password, confdir=confdir).status


def test_login_right_wrong_and_unknown(service: tuple) -> None:
    confdir, _ = service
    add_user("pamok", "Right-pw-1")

    assert login(confdir, "pamok", "Right-pw-1") is pam.PamStatus.SUCCESS
    assert login(confdir, "pamok", "wrong") is not pam.PamStatus.SUCCESS
    assert login(confdir, "nosuchuser", "x") is not pam.PamStatus.SUCCESS


def test_fail_delay_without_nodelay(tmp_path: Path) -> None:
    confdir = tmp_path / "slow.d"
    unix_service(confdir, tmp_path / "fl.conf", nodelay=False)
    faillock.write_settings(
        tmp_path / "fl.conf", faillock.FaillockSettings(tmp_path / "fl", 0, 0, 900)
    )
    add_user("pamslow", "Right-pw-1")

    started = time.monotonic()
    assert login(confdir, "pamslow", "wrong") is not pam.PamStatus.SUCCESS
    assert time.monotonic() - started > 1.0


def test_expired_password_and_expired_account(service: tuple) -> None:
    confdir, _ = service
    add_user("pamexp", "Right-pw-1")
    add_user("pamgone", "Right-pw-1")
    add_user("pamlock", "Right-pw-1")

    run("chage", "-d", "0", "pamexp")
    run("usermod", "-e", "1", "pamgone")
    run("passwd", "-l", "pamlock")

    assert login(confdir, "pamexp", "Right-pw-1") is pam.PamStatus.NEW_AUTHTOK_REQD
    assert login(confdir, "pamgone", "Right-pw-1") is pam.PamStatus.ACCT_EXPIRED
    assert login(confdir, "pamlock", "Right-pw-1") is not pam.PamStatus.SUCCESS
    shadow = hostdb.shadow("pamexp")
    assert shadow is not None and shadow.must_change(hostdb.today())
    gone = hostdb.shadow("pamgone")
    assert gone is not None and gone.account_expired(hostdb.today())
    locked = hostdb.shadow("pamlock")
    assert locked is not None and locked.password_locked()


def test_faillock_lockout_and_reset(service: tuple) -> None:
    confdir, settings = service
    add_user("pamfail", "Right-pw-1")

    for _ in range(3):
        assert login(confdir, "pamfail", "wrong") is not pam.PamStatus.SUCCESS
    assert faillock.is_locked(settings, "pamfail")
    # Locked: even the right password is refused.
    assert login(confdir, "pamfail", "Right-pw-1") is not pam.PamStatus.SUCCESS
    assert "pamfail" in run(
        "faillock", "--dir", str(settings.tally_dir), "--user", "pamfail"
    )

    faillock.reset(settings, "pamfail")
    assert not faillock.is_locked(settings, "pamfail")
    assert login(confdir, "pamfail", "Right-pw-1") is pam.PamStatus.SUCCESS


def test_lock_lifts_after_unlock_time(tmp_path: Path) -> None:
    confdir = tmp_path / "pam.d"
    conf = tmp_path / "faillock.conf"
    unix_service(confdir, conf)
    settings = faillock.FaillockSettings.from_policy(
        tmp_path / "fl", LockoutPolicy(threshold=2, duration=1, reset_after=60)
    )
    faillock.write_settings(conf, settings)
    add_user("pamtime", "Right-pw-1")

    for _ in range(2):
        login(confdir, "pamtime", "wrong")
    assert faillock.is_locked(settings, "pamtime")
    time.sleep(2.1)
    assert not faillock.is_locked(settings, "pamtime")
    assert login(confdir, "pamtime", "Right-pw-1") is pam.PamStatus.SUCCESS


def test_successful_login_clears_failures(service: tuple) -> None:
    confdir, settings = service
    add_user("pamclear", "Right-pw-1")

    login(confdir, "pamclear", "wrong")
    login(confdir, "pamclear", "wrong")
    assert login(confdir, "pamclear", "Right-pw-1") is pam.PamStatus.SUCCESS
    login(confdir, "pamclear", "wrong")
    assert not faillock.is_locked(settings, "pamclear")


def test_root_change_password_with_pam_chauthtok(service: tuple) -> None:
    confdir, _ = service
    add_user("pamchg", "Old-pw-123")

    result = pam.change_password("bmcd", "pamchg", "New-pw-456", confdir=confdir)

    assert result.status is pam.PamStatus.SUCCESS, result
    assert login(confdir, "pamchg", "New-pw-456") is pam.PamStatus.SUCCESS
    assert login(confdir, "pamchg", "Old-pw-123") is not pam.PamStatus.SUCCESS
    shadow = hostdb.shadow("pamchg")
    assert shadow is not None and shadow.password.startswith("$y$")


# The root helper's operations, for real.


@pytest.fixture
def operations(service: tuple) -> Operations:
    confdir, settings = service
    return Operations(
        HelperConfig(
            groups=frozenset(GROUPS),
            pam_confdir=confdir,
            faillock_dir=settings.tally_dir,
        )
    )


def test_helper_sets_a_libcrypt_hash(operations: Operations, service: tuple) -> None:
    confdir, _ = service
    add_user("hlphash", None, "bmcd-operator")
    for prefix in cryptpw.PREFIXES:
        hashed = cryptpw.hash_password("Hashed-pw-1", prefix)

        operations.handle(
            {"op": "set_password_hash", "user": "hlphash", "hash": hashed}
        )

        assert login(confdir, "hlphash", "Hashed-pw-1") is pam.PamStatus.SUCCESS


def test_helper_group_changes_and_adoption_rule(operations: Operations) -> None:
    add_user("hlpnew")  # just created: no password yet
    add_user("hlpowned", "Someone-pw-1")  # someone's existing account

    operations.handle({"op": "add_to_group", "user": "hlpnew", "group": "bmcd-admin"})
    assert hostdb.lookup("hlpnew", GROUPS).groups == {"bmcd-admin"}
    with pytest.raises(RequestError, match="not a bmcd account"):
        operations.handle(
            {"op": "add_to_group", "user": "hlpowned", "group": "bmcd-admin"}
        )
    with pytest.raises(RequestError, match="not a bmcd role group"):
        operations.handle({"op": "add_to_group", "user": "hlpnew", "group": "sudo"})
    with pytest.raises(RequestError, match="system user"):
        operations.handle(
            {
                "op": "set_password_hash",
                "user": "root",
                "hash": cryptpw.hash_password("x"),
            }
        )
    with pytest.raises(RequestError, match="not in a bmcd role group"):
        operations.handle({"op": "set_enabled", "user": "hlpowned", "enabled": False})

    operations.handle(
        {"op": "add_to_group", "user": "hlpnew", "group": "bmcd-readonly"}
    )
    operations.handle(
        {"op": "remove_from_group", "user": "hlpnew", "group": "bmcd-admin"}
    )
    assert hostdb.lookup("hlpnew", GROUPS).groups == {"bmcd-readonly"}


def test_helper_expiry_enable_and_reset(operations: Operations, service: tuple) -> None:
    confdir, settings = service
    add_user("hlpflags", "Flags-pw-1", "bmcd-operator")

    operations.handle(
        {"op": "set_password_expired", "user": "hlpflags", "expired": True}
    )
    assert login(confdir, "hlpflags", "Flags-pw-1") is (pam.PamStatus.NEW_AUTHTOK_REQD)
    operations.handle(
        {"op": "set_password_expired", "user": "hlpflags", "expired": False}
    )
    assert login(confdir, "hlpflags", "Flags-pw-1") is pam.PamStatus.SUCCESS

    operations.handle({"op": "set_enabled", "user": "hlpflags", "enabled": False})
    assert login(confdir, "hlpflags", "Flags-pw-1") is not pam.PamStatus.SUCCESS
    operations.handle({"op": "set_enabled", "user": "hlpflags", "enabled": True})
    assert login(confdir, "hlpflags", "Flags-pw-1") is pam.PamStatus.SUCCESS

    for _ in range(3):
        login(confdir, "hlpflags", "wrong")
    assert faillock.is_locked(settings, "hlpflags")
    operations.handle({"op": "reset_failures", "user": "hlpflags"})
    assert not faillock.is_locked(settings, "hlpflags")


def test_helper_change_password_through_pam(
    operations: Operations, service: tuple
) -> None:
    confdir, _ = service
    add_user("hlppam", "Old-pw-123", "bmcd-admin")

    operations.handle(
        {"op": "change_password", "user": "hlppam", "password": "New-pw-456"}
    )

    assert login(confdir, "hlppam", "New-pw-456") is pam.PamStatus.SUCCESS


@pytest.mark.parametrize(
    "request_",
    [
        {"op": "rm -rf", "user": "x"},
        {"op": "set_password_hash", "user": "hlpx", "hash": "plain"},
        {"op": "set_password_hash", "user": "hlpx", "hash": "$y$abc:def\nroot:x"},
        {"op": "add_to_group", "user": "../etc", "group": "bmcd-admin"},
        {"op": "set_enabled", "user": "hlpx", "enabled": "no"},
        {"op": "set_enabled", "user": "hlpx", "enabled": True, "extra": 1},
        ["not", "an", "object"],
    ],
)
def test_helper_refuses_malformed_requests(
    operations: Operations, request_: object
) -> None:
    with pytest.raises(RequestError) as caught:
        operations.handle(request_)
    assert caught.value.code in ("invalid", "not_found")


def _ask(path: Path, request: dict) -> dict:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(str(path))
        sock.sendall(json.dumps(request).encode() + b"\n")
        return json.loads(sock.makefile().readline())


def test_helper_socket_checks_the_peer(operations: Operations, tmp_path: Path) -> None:
    import threading

    add_user("hlpsock", "Sock-pw-1", "bmcd-operator")
    # A directory the unprivileged child below can reach.
    public = Path(tempfile.mkdtemp(dir="/tmp"))
    public.chmod(0o755)
    path = public / "helper.sock"
    server = HelperServer(path, operations, frozenset(), frozenset({0}))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        assert oct(path.stat().st_mode & 0o777) == "0o660"
        assert _ask(
            path, {"op": "set_password_expired", "user": "hlpsock", "expired": True}
        ) == {"ok": True}
        assert _ask(path, {"op": "nope"})["error"] == "invalid"
        # A process of another user and group is refused before it may ask,
        # even when the socket's mode would let it connect.
        path.chmod(0o666)
        read, write = os.pipe()
        child = os.fork()
        if child == 0:
            os.close(read)
            try:
                os.setgid(65534)
                os.setuid(65534)
                reply = _ask(
                    path,
                    {"op": "set_password_expired", "user": "hlpsock", "expired": False},
                )
            except Exception as err:
                reply = {"error": repr(err)}
            finally:
                os.write(write, json.dumps(reply).encode())
                os._exit(0)
        os.close(write)
        os.waitpid(child, 0)
        with os.fdopen(read) as pipe:
            text = pipe.read()
        assert json.loads(text)["error"] == "denied"
        shadow = hostdb.shadow("hlpsock")
        assert shadow is not None and shadow.last_change == 0
    finally:
        server.shutdown()
        server.server_close()
        path.unlink(missing_ok=True)
        public.rmdir()

"""The real daemon: HTTPS, first login, shutdown, restart and start-up failures."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import threading
import time
from pathlib import Path

import pytest
from daemon_process import (
    ADMIN,
    START_TIMEOUT,
    Daemon,
    Response,
    StartDaemon,
    bmcd_command,
    free_port,
    write_config,
)

pytestmark = pytest.mark.e2e

ACCOUNTS = "/redfish/v1/AccountService/Accounts"
SESSIONS = "/redfish/v1/SessionService/Sessions"
RESET = "/redfish/v1/Managers/1/Actions/Manager.Reset"
# Client-side reasons meaning this OpenSSL cannot even offer the old protocol.
_CLIENT_CANNOT_OFFER = {"NO_PROTOCOLS_AVAILABLE", "NO_CIPHERS_AVAILABLE"}


def _handshake(daemon: Daemon, version: ssl.TLSVersion) -> str:
    """Handshake with exactly ``version``; return the negotiated version."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    # Let the client offer old protocols at all (OpenSSL 3 refuses by default).
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    context.minimum_version = context.maximum_version = version
    address = ("127.0.0.1", daemon.port)
    with (
        socket.create_connection(address, timeout=10) as raw,
        context.wrap_socket(raw) as tls,
    ):
        return str(tls.version())


def test_https_with_tls_1_2_minimum(daemon: Daemon) -> None:
    assert _handshake(daemon, ssl.TLSVersion.TLSv1_2) == "TLSv1.2"
    assert _handshake(daemon, ssl.TLSVersion.TLSv1_3) == "TLSv1.3"

    with pytest.raises((ssl.SSLError, ConnectionResetError)) as refused:
        _handshake(daemon, ssl.TLSVersion.TLSv1_1)
    if getattr(refused.value, "reason", None) in _CLIENT_CANNOT_OFFER:
        pytest.skip("this OpenSSL cannot offer TLS 1.1, so refusal is untestable")


def test_plain_http_gets_no_answer(daemon: Daemon) -> None:
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as raw:
        raw.sendall(
            b"GET /redfish/v1 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        try:
            answer = raw.recv(4096)
        except ConnectionResetError:
            answer = b""
    assert not answer.startswith(b"HTTP/")


def test_self_signed_certificate_and_private_key(daemon: Daemon) -> None:
    assert stat.S_IMODE(daemon.key_file.stat().st_mode) == 0o600
    # The request helper verifies the server against the generated file, for
    # the name 127.0.0.1, so the certificate served is that one.
    response = daemon.request("GET", "/redfish/v1")
    assert response.status == 200
    assert response.json()["Links"]["Sessions"]["@odata.id"] == SESSIONS


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("admin", [True, False], ids=["account-add", "serve"])
def test_state_files_are_private(start_daemon: StartDaemon, admin: bool) -> None:
    # Whichever command creates the database (account add or the first
    # serve), the password hashes in it are the daemon user's alone.
    old_umask = os.umask(0o022)  # what the test's own files would get
    try:
        daemon = start_daemon(admin=admin)
    finally:
        os.umask(old_umask)

    state = daemon.state_dir
    assert _mode(state) == 0o700
    assert _mode(state / "bmcd.db") == 0o600
    assert _mode(state / "tls") == 0o700
    assert _mode(daemon.key_file) == 0o600
    assert _mode(daemon.cert_file) == 0o644  # public by design
    for path in state.rglob("*"):
        if path.is_file() and path != daemon.cert_file:
            assert _mode(path) & 0o077 == 0, path


def _password_change_required(response: Response) -> bool:
    return any(m.endswith(".PasswordChangeRequired") for m in response.message_ids())


def test_first_start_makes_an_admin_that_must_change_password(
    start_daemon: StartDaemon,
) -> None:
    daemon = start_daemon(admin=False)
    password_file = daemon.state_dir / "initial-admin-password"
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    assert password_file.stat().st_uid == os.geteuid()
    user, _, password = password_file.read_text().strip().partition(":")
    assert user and password

    login = daemon.request("POST", SESSIONS, {"UserName": user, "Password": password})
    assert login.status == 201
    token = login.headers["X-Auth-Token"]
    info = login.json()["@Message.ExtendedInfo"]
    assert info[0]["MessageId"].endswith(".PasswordChangeRequired")
    own_account = info[0]["MessageArgs"][0]

    refused = daemon.request("GET", ACCOUNTS, token=token)
    assert refused.status == 403
    assert _password_change_required(refused)
    refused = daemon.request("GET", ACCOUNTS, auth=(user, password))
    assert refused.status == 403
    assert daemon.request("GET", own_account, token=token).status == 200

    new_password = "a-new-admin-password-1"
    changed = daemon.request(
        "PATCH", own_account, {"Password": new_password}, token=token
    )
    assert changed.status in (200, 204), changed.body

    assert daemon.request("GET", ACCOUNTS, token=token).status == 200
    assert daemon.request("GET", ACCOUNTS, auth=(user, new_password)).status == 200
    assert daemon.request("GET", ACCOUNTS, auth=(user, password)).status == 401


def test_basic_auth_lists_accounts(daemon: Daemon) -> None:
    response = daemon.request("GET", ACCOUNTS, auth=ADMIN)
    assert response.status == 200
    members = [m["@odata.id"] for m in response.json()["Members"]]
    names = [
        daemon.request("GET", uri, auth=ADMIN).json()["UserName"] for uri in members
    ]
    assert ADMIN[0] in names
    assert daemon.request("GET", ACCOUNTS).status == 401


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_readme_curl_command(daemon: Daemon) -> None:
    # Exactly the check the README gives a new user.
    done = subprocess.run(
        [
            "curl",
            "-sS",
            "-k",
            "-u",
            f"{ADMIN[0]}:{ADMIN[1]}",
            f"{daemon.url}{ACCOUNTS}",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert '"Members"' in done.stdout


def test_sigterm_lets_a_request_in_flight_finish(start_daemon: StartDaemon) -> None:
    daemon = start_daemon(extra_config="\n[security]\nlogin_failure_delay = 2\n")
    answers: list[Response | BaseException] = []

    def failed_login() -> None:
        try:
            answers.append(
                daemon.request(
                    "POST", SESSIONS, {"UserName": ADMIN[0], "Password": "wrong"}
                )
            )
        except BaseException as err:  # reported by the assertion below
            answers.append(err)

    client = threading.Thread(target=failed_login)
    client.start()
    # Logged before the delay starts: the request is now in flight.
    daemon.wait_for_log("refused")
    os.kill(daemon.pid, signal.SIGTERM)
    client.join(START_TIMEOUT)

    assert not client.is_alive()
    assert isinstance(answers[0], Response), answers[0]
    assert answers[0].status == 401
    assert daemon.stop() == 0


def test_sigterm_after_the_clean_stop_does_not_kill_bmcd(
    start_daemon: StartDaemon,
) -> None:
    daemon = start_daemon()
    assert daemon.proc is not None

    # Keep sending SIGTERM until the process is gone: some arrive after
    # "bmcd stopped cleanly", while the interpreter winds down. Killing a
    # zombie that nobody has waited for yet is harmless.
    while daemon.proc.poll() is None:
        os.kill(daemon.pid, signal.SIGTERM)
        time.sleep(0.002)

    assert daemon.stop() == 0


def _listening_pid(port: int) -> int | None:
    """The process holding the IPv4 listening socket on ``port``, if any."""
    wanted = f":{port:04X}"
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1].endswith(wanted) and fields[3] == "0A":
            inode = fields[9]
    if inode is None:
        return None
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            links = [
                os.readlink(f"/proc/{pid}/fd/{fd}")
                for fd in os.listdir(f"/proc/{pid}/fd")
            ]
        except OSError:
            continue
        if f"socket:[{inode}]" in links:
            return int(pid)
    return None


def test_reset_restarts_the_same_process_and_keeps_state(daemon: Daemon) -> None:
    token, session = daemon.login(*ADMIN)
    uuid = daemon.request("GET", "/redfish/v1").json()["UUID"]
    pid = daemon.pid
    assert _listening_pid(daemon.port) == pid

    reset = daemon.request("POST", RESET, {"ResetType": "ForceRestart"}, token=token)
    assert reset.status == 204
    daemon.wait_for_log("Restarting bmcd")
    daemon.wait_ready(serving_count=2)

    # exec() keeps the PID: the process we started is the one serving again.
    assert daemon.proc is not None and daemon.proc.poll() is None
    assert _listening_pid(daemon.port) == pid
    log = daemon.log()
    assert log.index("stopped cleanly") < log.index("Restarting bmcd")
    assert daemon.request("GET", "/redfish/v1").json()["UUID"] == uuid
    assert daemon.request("GET", session, token=token).status == 200
    assert daemon.request("GET", ACCOUNTS, token=token).status == 200


def _serve_once(config: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        bmcd_command("serve", "--config", str(config)),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
        check=False,
    )


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ('[server]\nmax_body_bytes = "lots"\n', "server.max_body_bytes"),
        ("[server]\nlisten_port = 8443\n", "server.listen_port"),
        ('[server]\nlisten = ["127.0.0.1:99999"]\n', "server.listen"),
        ('[logging]\nlevel = "chatty"\n', "logging.level"),
    ],
)
def test_bad_config_stops_start_up(tmp_path: Path, toml: str, key: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(toml)

    done = _serve_once(config, tmp_path)

    assert done.returncode != 0
    assert str(config) in done.stderr
    assert key in done.stderr
    assert not (tmp_path / "state").exists()


def test_corrupt_state_database_stops_start_up(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    state_dir.mkdir(mode=0o700)
    database = state_dir / "bmcd.db"
    garbage = b"this is not an SQLite database\n" * 200
    database.write_bytes(garbage)
    config = write_config(tmp_path / "bmcd.toml", free_port(), state_dir)

    done = _serve_once(config, tmp_path)

    assert done.returncode != 0
    assert str(database) in done.stderr
    assert "Serving Redfish" not in done.stderr
    # Never silently reset: the operator's file is exactly as it was.
    assert database.read_bytes() == garbage

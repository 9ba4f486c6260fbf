"""The real daemon talks to systemd: READY, watchdog, reload, socket activation."""

from __future__ import annotations

import base64
import http.client
import itertools
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from deploy_fakes import Daemon, NotifySocket, free_port

from bmcd.http.tls import make_self_signed

pytestmark = pytest.mark.e2e

START_TIMEOUT = 60.0
WATCHDOG_USEC = 200_000  # pings every 0.1 s
STALL_SECONDS = 2.0

StartDaemon = Callable[..., Daemon]

REPO = Path(__file__).resolve().parents[2]
# Variables that systemd (or the developer's shell) may have set for us.
_SYSTEMD_VARS = (
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
    "JOURNAL_STREAM",
)


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    """A fake NOTIFY_SOCKET in the test's temporary directory."""
    listener = NotifySocket(tmp_path / "notify")
    yield listener
    listener.close()


@pytest.fixture
def start_daemon(tmp_path: Path, notify_socket: NotifySocket) -> Iterator[StartDaemon]:
    """Start bmcd with a fake systemd environment; stop it after the test."""
    started: list[Daemon] = []

    def start(
        *args: str,
        env: dict[str, str] | None = None,
        port: int | None = None,
        wrapper: Sequence[str] = (),
        pass_fds: Sequence[int] = (),
    ) -> Daemon:
        port = port or free_port()
        environment = {k: v for k, v in os.environ.items() if k not in _SYSTEMD_VARS}
        environment["NOTIFY_SOCKET"] = str(notify_socket.path)
        environment.update(env or {})
        command = [
            *wrapper,
            sys.executable,
            "-m",
            "bmcd",
            "serve",
            "--listen",
            f"127.0.0.1:{port}",
            "--state-dir",
            str(tmp_path / "state"),
            *args,
        ]
        log = tmp_path / f"bmcd-{len(started)}.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                command,
                cwd=REPO,
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                pass_fds=pass_fds,
            )
        notify_socket.sender = process
        daemon = Daemon(process, log, port)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.stop()


def _insecure() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _connect(port: int) -> http.client.HTTPSConnection:
    return http.client.HTTPSConnection(
        "127.0.0.1", port, timeout=10, context=_insecure()
    )


def _get_root(connection: http.client.HTTPSConnection) -> int:
    connection.request("GET", "/redfish/v1")
    response = connection.getresponse()
    response.read()
    return response.status


def _get_root_once(port: int) -> int:
    connection = _connect(port)
    try:
        return _get_root(connection)
    finally:
        connection.close()


def _peer_certificate(port: int) -> bytes:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        _insecure().wrap_socket(raw) as tls,
    ):
        certificate = tls.getpeercert(binary_form=True)
    assert certificate is not None
    return certificate


def _activation_wrapper(fd: int) -> list[str]:
    """A command prefix that passes ``fd`` as systemd does (sd_listen_fds)."""
    # The socket becomes fd 3, and LISTEN_PID names the process that gets it
    # (exec keeps the PID).
    return [
        sys.executable,
        "-c",
        f"import os, sys; os.dup2({fd}, 3); os.close({fd}); "
        "os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS='1'); "
        "os.execv(sys.argv[1], sys.argv[1:])",
    ]


def _pings(messages: list[tuple[float, str]]) -> list[float]:
    return [at for at, text in messages if "WATCHDOG=1" in text.split("\n")]


def test_ready_watchdog_and_stopping(
    start_daemon: StartDaemon, notify_socket: NotifySocket
) -> None:
    daemon = start_daemon(env={"WATCHDOG_USEC": str(WATCHDOG_USEC)})

    ready = notify_socket.wait_for("READY=1", START_TIMEOUT)
    assert f"STATUS=Serving Redfish on https://127.0.0.1:{daemon.port}" in ready
    assert len(_pings(notify_socket.collect(1.0))) >= 3
    assert _get_root_once(daemon.port) == 200

    daemon.signal(signal.SIGTERM)
    notify_socket.wait_for("STOPPING=1", 10)
    assert daemon.process.wait(30) == 0


def test_no_watchdog_pings_unless_asked(
    start_daemon: StartDaemon, notify_socket: NotifySocket
) -> None:
    start_daemon()

    notify_socket.wait_for("READY=1", START_TIMEOUT)
    assert _pings(notify_socket.collect(0.5)) == []


def test_stalled_loop_stops_watchdog_pings(
    start_daemon: StartDaemon, notify_socket: NotifySocket
) -> None:
    daemon = start_daemon(
        env={
            "WATCHDOG_USEC": str(WATCHDOG_USEC),
            "BMCD_DEBUG_STALL_SECONDS": str(STALL_SECONDS),
        }
    )
    notify_socket.wait_for("READY=1", START_TIMEOUT)
    notify_socket.collect(0.3)

    daemon.signal(signal.SIGUSR2)
    notify_socket.collect(STALL_SECONDS + 1.5)
    pings = _pings(notify_socket.messages)

    gaps = [later - earlier for earlier, later in itertools.pairwise(pings)]
    print(f"watchdog gaps: longest {max(gaps):.2f} s over {len(pings)} pings")
    # Pings come every 0.1 s; the stall silences them for its whole length...
    assert max(gaps) >= STALL_SECONDS * 0.8
    # ...and they resume once the loop runs again.
    assert pings[-1] > pings[0] + STALL_SECONDS
    assert daemon.process.poll() is None
    assert _get_root_once(daemon.port) == 200


def test_stall_hook_is_off_by_default(
    start_daemon: StartDaemon, notify_socket: NotifySocket
) -> None:
    daemon = start_daemon()
    notify_socket.wait_for("READY=1", START_TIMEOUT)

    assert "Test hook on" not in daemon.output()


def test_sighup_reloads_without_dropping_connections(
    tmp_path: Path,
    request: pytest.FixtureRequest,
    start_daemon: StartDaemon,
    notify_socket: NotifySocket,
) -> None:
    cert, key = tmp_path / "server.crt", tmp_path / "server.key"
    make_self_signed(cert, key)
    config = tmp_path / "bmcd.toml"
    config.write_text(f'[tls]\ncertificate = "{cert}"\nkey = "{key}"\n')
    daemon = start_daemon("--config", str(config))
    notify_socket.wait_for("READY=1", START_TIMEOUT)
    kept = _connect(daemon.port)
    request.addfinalizer(kept.close)
    assert _get_root(kept) == 200
    old_certificate = _peer_certificate(daemon.port)

    # A renewed certificate: new handshakes get it, open connections stay.
    make_self_signed(cert, key)
    config.write_text(config.read_text() + '[logging]\nlevel = "debug"\n')
    daemon.signal(signal.SIGHUP)
    notify_socket.wait_for("RELOADING=1", 10)
    notify_socket.wait_for("READY=1", 10)
    local_port = kept.sock.getsockname()[1]
    assert _get_root(kept) == 200
    assert kept.sock.getsockname()[1] == local_port
    assert _peer_certificate(daemon.port) != old_certificate
    assert "Log level is now debug" in daemon.output()

    # A setting that needs a restart is named, and the rest still applies.
    config.write_text(config.read_text() + "[sessions]\nmax_sessions = 3\n")
    daemon.signal(signal.SIGHUP)
    notify_socket.wait_for("READY=1", 10)
    assert "sessions.max_sessions take effect only after a restart" in (daemon.output())

    # A broken file is reported and the running configuration is kept.
    config.write_text("[server\n")
    daemon.signal(signal.SIGHUP)
    notify_socket.wait_for("READY=1", 10)
    assert "Configuration not reloaded" in daemon.output()

    # A missing certificate keeps the one in use.
    config.write_text(
        f'[tls]\ncertificate = "{tmp_path}/none.crt"\nkey = "{tmp_path}/none.key"\n'
    )
    current = _peer_certificate(daemon.port)
    daemon.signal(signal.SIGHUP)
    notify_socket.wait_for("READY=1", 10)
    assert "HTTPS certificate not reloaded" in daemon.output()
    assert _peer_certificate(daemon.port) == current
    assert _get_root(kept) == 200
    assert daemon.process.poll() is None


def test_socket_activation(
    start_daemon: StartDaemon, notify_socket: NotifySocket
) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    fd = listener.fileno()
    # --listen names a different, unused port: the passed socket wins.
    daemon = start_daemon(wrapper=_activation_wrapper(fd), pass_fds=[fd])
    listener.close()

    ready = notify_socket.wait_for("READY=1", START_TIMEOUT)
    assert f"https://127.0.0.1:{port}" in ready
    assert "server.listen is ignored" in daemon.output()
    assert _get_root_once(port) == 200
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", daemon.port), timeout=2).close()


def test_reset_restarts_in_place_on_the_passed_socket(
    tmp_path: Path, start_daemon: StartDaemon, notify_socket: NotifySocket
) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "bmcd",
            "account",
            "add",
            "root",
            "--role",
            "Administrator",
            "--password-stdin",
            "--state-dir",
            str(tmp_path / "state"),
        ],
        input=b"root-password-1\n",
        check=True,
        capture_output=True,
    )
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    daemon = start_daemon(
        wrapper=_activation_wrapper(listener.fileno()), pass_fds=[listener.fileno()]
    )
    listener.close()
    notify_socket.wait_for("READY=1", START_TIMEOUT)

    connection = _connect(port)
    token = base64.b64encode(b"root:root-password-1").decode()
    connection.request(
        "POST",
        "/redfish/v1/Managers/1/Actions/Manager.Reset",
        body=json.dumps({"ResetType": "GracefulRestart"}),
        headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"},
    )
    assert connection.getresponse().status in (200, 202, 204)
    connection.close()

    # The same process (same PID for systemd) comes back on the same socket.
    notify_socket.wait_for("RELOADING=1", 30)
    notify_socket.wait_for("READY=1", START_TIMEOUT)
    assert daemon.process.poll() is None
    assert _get_root_once(port) == 200

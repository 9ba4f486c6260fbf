"""sd_notify messages, watchdog settings and sd_listen_fds, without systemd."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bmcd.core import systemd


@pytest.fixture
def manager(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """A fake service manager socket, named by $NOTIFY_SOCKET."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(tmp_path / "notify"))
    server.settimeout(2)
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify"))
    yield server
    server.close()


@pytest.fixture(params=["sdnotify", "built-in"])
def sender(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with python3-sdnotify and with the built-in fallback."""
    if request.param == "sdnotify":
        pytest.importorskip("sdnotify")
    else:
        # A None entry makes "import sdnotify" raise ImportError.
        monkeypatch.setitem(sys.modules, "sdnotify", None)
    return str(request.param)


def test_messages_reach_the_manager(manager: socket.socket, sender: str) -> None:
    notifier = systemd.Notifier.from_environment()

    notifier.ready("Serving")
    notifier.watchdog()
    notifier.reloading()
    notifier.stopping()

    assert notifier.enabled
    notifier.close()
    assert manager.recv(4096) == b"READY=1\nSTATUS=Serving"
    assert manager.recv(4096) == b"WATCHDOG=1"
    reloading = manager.recv(4096).decode().split("\n")
    assert reloading[0] == "RELOADING=1"
    assert reloading[1].startswith("MONOTONIC_USEC=")
    assert manager.recv(4096) == b"STOPPING=1\nSTATUS=Stopping"


def test_abstract_socket_address(monkeypatch: pytest.MonkeyPatch, sender: str) -> None:
    name = f"bmcd-test-{os.getpid()}-{sender}"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind("\0" + name)
    server.settimeout(2)
    monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
    try:
        notifier = systemd.Notifier.from_environment()
        notifier.status("abstract")
        notifier.close()
        assert server.recv(4096) == b"STATUS=abstract"
    finally:
        server.close()


def test_without_manager_nothing_happens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    notifier = systemd.Notifier.from_environment()

    notifier.ready("Serving")

    assert not notifier.enabled


# python3-sdnotify drops its socket unclosed when connect() fails.
@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_unreachable_manager_is_logged(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    sender: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "missing"))
    notifier = systemd.Notifier.from_environment()

    notifier.ready("Serving")

    assert not notifier.enabled
    assert "Cannot reach the service manager" in caplog.text


def test_full_queue_never_blocks(manager: socket.socket, sender: str) -> None:
    notifier = systemd.Notifier.from_environment()

    # Nobody reads: the socket queue fills up and later messages are dropped.
    for _ in range(2000):
        notifier.watchdog()
    notifier.close()

    assert manager.recv(4096) == b"WATCHDOG=1"


@pytest.mark.parametrize(
    ("usec", "pid", "expected"),
    [
        (None, None, None),
        ("", None, None),
        ("0", None, None),
        ("junk", None, None),
        ("30000000", None, 15.0),
        ("30000000", "self", 15.0),
        ("30000000", "1", None),
    ],
)
def test_watchdog_interval(
    monkeypatch: pytest.MonkeyPatch,
    usec: str | None,
    pid: str | None,
    expected: float | None,
) -> None:
    for name, value in (("WATCHDOG_USEC", usec), ("WATCHDOG_PID", pid)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, str(os.getpid()) if value == "self" else value)

    assert systemd.watchdog_interval() == expected


async def test_watchdog_pings_from_the_loop(manager: socket.socket) -> None:
    notifier = systemd.Notifier.from_environment()
    task = asyncio.create_task(systemd.ping_watchdog(notifier, 0.01))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    notifier.close()

    assert manager.recv(4096) == b"WATCHDOG=1"
    assert manager.recv(4096) == b"WATCHDOG=1"


@pytest.fixture
def passed_fds(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Descriptor numbers that stand in for fds 3, 4, ... of sd_listen_fds."""
    # High numbers: pytest itself may use the low ones.
    start = 200
    monkeypatch.setattr(systemd, "LISTEN_FDS_START", start)
    monkeypatch.setenv("LISTEN_PID", str(os.getpid()))
    used: list[int] = []
    yield used
    for fd in used:
        os.close(fd)


def _pass(sock: socket.socket, fds: list[int]) -> None:
    fd = systemd.LISTEN_FDS_START + len(fds)
    os.dup2(sock.fileno(), fd)
    fds.append(fd)
    sock.close()


def test_listen_sockets(monkeypatch: pytest.MonkeyPatch, passed_fds: list[int]) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    address = listener.getsockname()
    _pass(listener, passed_fds)
    monkeypatch.setenv("LISTEN_FDS", "1")

    (sock,) = systemd.listen_sockets()
    try:
        assert sock.getsockname() == address
        assert sock.fileno() != passed_fds[0]  # a duplicate...
        assert os.get_inheritable(passed_fds[0])  # ...the original survives exec
    finally:
        sock.close()


def test_listen_sockets_skip_what_cannot_serve(
    monkeypatch: pytest.MonkeyPatch,
    passed_fds: list[int],
    caplog: pytest.LogCaptureFixture,
) -> None:
    not_listening = socket.socket()
    _pass(not_listening, passed_fds)
    _pass(socket.socket(socket.AF_INET, socket.SOCK_DGRAM), passed_fds)
    monkeypatch.setenv("LISTEN_FDS", "2")

    assert systemd.listen_sockets() == []
    assert caplog.text.count("not a listening stream socket") == 2


@pytest.mark.parametrize(("pid", "fds"), [(None, "1"), ("1", "1"), ("self", "x")])
def test_listen_sockets_not_for_us(
    monkeypatch: pytest.MonkeyPatch, pid: str | None, fds: str
) -> None:
    if pid is None:
        monkeypatch.delenv("LISTEN_PID", raising=False)
    else:
        monkeypatch.setenv("LISTEN_PID", str(os.getpid()) if pid == "self" else pid)
    monkeypatch.setenv("LISTEN_FDS", fds)

    assert systemd.listen_sockets() == []

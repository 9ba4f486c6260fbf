"""systemd integration: sd_notify messages, the watchdog and socket activation.

Everything here is a no-op when bmcd is not started by systemd, so the same
daemon runs from a shell, a container or a unit file. Notifications go
through python3-sdnotify when it is installed and through an equivalent
built-in sender otherwise.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import socket
import time
from typing import Any

_LOGGER = logging.getLogger(__name__)

# sd_listen_fds(3): passed file descriptors start right after stderr.
LISTEN_FDS_START = 3


class Notifier:
    """Sends sd_notify(3) state lines to the service manager, if there is one."""

    def __init__(self, address: str | None) -> None:
        self.address = address
        self._socket: socket.socket | None = None
        self._sdnotify: Any = None
        if address:
            self._connect(address)

    @classmethod
    def from_environment(cls) -> Notifier:
        """A notifier for $NOTIFY_SOCKET (disabled when it is unset)."""
        return cls(os.environ.get("NOTIFY_SOCKET") or None)

    @property
    def enabled(self) -> bool:
        """Whether a service manager listens for our notifications."""
        return self._socket is not None

    def _connect(self, address: str) -> None:
        try:
            sdnotify = importlib.import_module("sdnotify")
        except ImportError:
            sdnotify = None
        if sdnotify is not None and address == os.environ.get("NOTIFY_SOCKET"):
            # It reads $NOTIFY_SOCKET itself and swallows every error.
            self._sdnotify = sdnotify.SystemdNotifier()
            self._socket = self._sdnotify.socket
        else:
            self._socket = _connect_fallback(address)
        if self._socket is None:
            _LOGGER.warning(
                "Cannot reach the service manager at NOTIFY_SOCKET=%s; "
                "systemd will not see bmcd become ready",
                address,
            )
            return
        # A full queue must drop a message, never block the event loop.
        self._socket.setblocking(False)

    def close(self) -> None:
        """Stop notifying; later calls do nothing."""
        if self._socket is not None:
            self._socket.close()
        self._socket = None
        self._sdnotify = None

    def notify(self, *fields: str) -> None:
        """Send ``KEY=value`` fields as one message; errors are only logged."""
        if self._socket is None:
            return
        message = "\n".join(fields)
        if self._sdnotify is not None:
            self._sdnotify.notify(message)
            return
        try:
            self._socket.send(message.encode())
        except OSError as err:
            _LOGGER.debug("sd_notify %r not sent: %s", message, err)

    def ready(self, status: str) -> None:
        """Tell systemd that start-up or a reload has finished."""
        self.notify("READY=1", f"STATUS={status}")

    def status(self, status: str) -> None:
        """Show ``status`` in ``systemctl status``."""
        self.notify(f"STATUS={status}")

    def reloading(self, status: str = "Reloading configuration") -> None:
        """Tell systemd that a reload started (READY=1 ends it)."""
        # MONOTONIC_USEC is required by Type=notify-reload (systemd 253+).
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.notify("RELOADING=1", f"MONOTONIC_USEC={usec}", f"STATUS={status}")

    def stopping(self, status: str = "Stopping") -> None:
        """Tell systemd that bmcd is shutting down."""
        self.notify("STOPPING=1", f"STATUS={status}")

    def watchdog(self) -> None:
        """Tell systemd that bmcd is alive."""
        self.notify("WATCHDOG=1")


def _connect_fallback(address: str) -> socket.socket | None:
    path = "\0" + address[1:] if address.startswith("@") else address
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
    try:
        sock.connect(path)
    except OSError:
        sock.close()
        return None
    return sock


def watchdog_interval() -> float | None:
    """Seconds between watchdog pings (half of $WATCHDOG_USEC), None if off."""
    text = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID", "")
    if not text:
        return None
    if pid and pid != str(os.getpid()):
        return None  # the watchdog is meant for another process
    try:
        usec = int(text)
    except ValueError:
        _LOGGER.warning("Ignoring WATCHDOG_USEC=%r: not a number", text)
        return None
    return usec / 2_000_000 if usec > 0 else None


async def ping_watchdog(notifier: Notifier, interval: float) -> None:
    """Ping the watchdog every ``interval`` seconds for as long as the loop runs.

    The pings come from a task on the event loop, so a stalled loop stops
    them and systemd restarts bmcd after WatchdogSec.
    """
    while True:
        notifier.watchdog()
        await asyncio.sleep(interval)


def listen_sockets() -> list[socket.socket]:
    """The listening sockets systemd passed (sd_listen_fds), possibly none.

    Each returned socket is a duplicate; the passed descriptors themselves
    stay open and inheritable, so a bmcd that re-executes itself on a Reset
    finds them again under the same $LISTEN_FDS.
    """
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        return []
    try:
        count = int(os.environ.get("LISTEN_FDS", ""))
    except ValueError:
        _LOGGER.warning(
            "Ignoring LISTEN_FDS=%r: not a number", os.environ.get("LISTEN_FDS")
        )
        return []
    sockets = []
    for fd in range(LISTEN_FDS_START, LISTEN_FDS_START + count):
        try:
            sock = socket.socket(fileno=os.dup(fd))
        except OSError as err:
            _LOGGER.error("Ignoring passed file descriptor %d: %s", fd, err)
            continue
        listening = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
        if sock.type != socket.SOCK_STREAM or not listening:
            _LOGGER.error(
                "Ignoring passed file descriptor %d: not a listening "
                "stream socket (bmcd.socket needs ListenStream= and "
                "Accept=no)",
                fd,
            )
            sock.close()
            continue
        os.set_inheritable(fd, True)
        sockets.append(sock)
    return sockets

"""A fake systemd for the daemon process: notify socket and process handle."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class NotifySocket:
    """A fake systemd notification socket that records what bmcd sends."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.messages: list[tuple[float, str]] = []
        # The process that sends to us: waiting ends early if it exits.
        self.sender: subprocess.Popen[bytes] | None = None

    def receive(self, timeout: float) -> str | None:
        """The next message, or None after ``timeout`` seconds."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(4096)
        except TimeoutError:
            return None
        text = data.decode()
        self.messages.append((time.monotonic(), text))
        return text

    def wait_for(self, field: str, timeout: float) -> str:
        """Wait for a message holding ``field`` (e.g. ``READY=1``)."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            message = self.receive(min(left, 1.0))
            if message is not None and field in message.split("\n"):
                return message
            if message is None and self.sender and self.sender.poll() is not None:
                raise AssertionError(
                    f"bmcd exited with {self.sender.returncode} before sending {field}"
                )
        seen = [text for _, text in self.messages]
        raise AssertionError(f"no {field} within {timeout} s; got {seen}")

    def collect(self, seconds: float) -> list[tuple[float, str]]:
        """Everything that arrives during the next ``seconds`` seconds."""
        start = len(self.messages)
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self.receive(left)
        return self.messages[start:]

    def close(self) -> None:
        """Stop listening."""
        self.sock.close()


class Daemon:
    """One ``python -m bmcd serve`` process and its log file."""

    def __init__(self, process: subprocess.Popen[bytes], log: Path, port: int) -> None:
        self.process = process
        self.log = log
        self.port = port

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the daemon."""
        os.kill(self.process.pid, signum)

    def output(self) -> str:
        """What the daemon logged so far."""
        return self.log.read_text(errors="replace")

    def stop(self) -> int:
        """SIGTERM, then SIGKILL if it does not stop; the exit status."""
        if self.process.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode

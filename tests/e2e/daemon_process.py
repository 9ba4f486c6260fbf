"""Running the real bmcd process over HTTPS on a loopback port, for tests.

Each daemon gets its own config file, state directory and log file below the
test's tmp_path, so tests never share state or collide with a developer's
running bmcd. The fixtures in conftest.py stop every daemon with SIGTERM (by PID)
and check that it exited cleanly.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ADMIN = ("e2e-admin", "e2e-admin-password-1")
# Generous: a cold start on a slow CI machine imports everything and makes a key.
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
REQUEST_TIMEOUT = 15.0


def bmcd_command(*args: str) -> list[str]:
    """The command line that runs bmcd with this interpreter."""
    return [sys.executable, "-m", "bmcd", *args]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def basic(user: str, password: str) -> dict[str, str]:
    """An Authorization header for HTTP Basic."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def write_config(path: Path, port: int, state_dir: Path, extra: str = "") -> Path:
    """A config file listening on ``port`` with state in ``state_dir``."""
    path.write_text(
        "[server]\n"
        f'listen = ["127.0.0.1:{port}"]\n'
        f"state_dir = {json.dumps(str(state_dir))}\n"
        "shutdown_timeout = 10.0\n"
        "\n"
        "[logging]\n"
        'level = "info"\n' + extra
    )
    return path


def add_account(
    config: Path, state_dir: Path, name: str, password: str, role: str = "Administrator"
) -> None:
    """Create an account offline with ``bmcd account add``."""
    done = subprocess.run(
        bmcd_command(
            "account",
            "add",
            name,
            "--role",
            role,
            "--password-stdin",
            "--config",
            str(config),
            "--state-dir",
            str(state_dir),
        ),
        input=f"{password}\n",
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, f"bmcd account add failed: {done.stderr}"


@dataclass
class Response:
    """One HTTP response, read completely."""

    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)

    def message_ids(self) -> list[str]:
        """The MessageIds of an error body's @Message.ExtendedInfo."""
        info = self.json().get("error", {}).get("@Message.ExtendedInfo", [])
        return [str(m.get("MessageId", "")) for m in info]


class Daemon:
    """One ``bmcd serve`` process and the files it uses."""

    def __init__(
        self, workdir: Path, port: int, config_file: Path, state_dir: Path
    ) -> None:
        self.workdir = workdir
        self.port = port
        self.config_file = config_file
        self.state_dir = state_dir
        self.log_file = workdir / "bmcd.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.returncode: int | None = None
        self._context: ssl.SSLContext | None = None

    @property
    def url(self) -> str:
        """The service's base URL."""
        return f"https://127.0.0.1:{self.port}"

    @property
    def cert_file(self) -> Path:
        """The self-signed certificate bmcd generates on first start."""
        return self.state_dir / "tls" / "server.crt"

    @property
    def key_file(self) -> Path:
        """The private key of the generated certificate."""
        return self.state_dir / "tls" / "server.key"

    @property
    def pid(self) -> int:
        """The daemon's process id."""
        assert self.proc is not None, "the daemon was never started"
        return self.proc.pid

    def start(self) -> None:
        """Start ``bmcd serve`` and wait until it answers over HTTPS."""
        with self.log_file.open("ab") as log:
            self.proc = subprocess.Popen(
                bmcd_command("serve", "--config", str(self.config_file)),
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.wait_ready()

    def log(self) -> str:
        """Everything the daemon has logged so far."""
        if not self.log_file.exists():
            return ""
        return self.log_file.read_text(errors="replace")

    def wait_for_log(
        self, text: str, count: int = 1, timeout: float = START_TIMEOUT
    ) -> None:
        """Wait until ``text`` appears ``count`` times in the log."""
        deadline = time.monotonic() + timeout
        while self.log().count(text) < count:
            self._check_alive()
            if time.monotonic() > deadline:
                pytest.fail(
                    f"bmcd did not log {text!r} within {timeout} s:\n{self.log()}"
                )
            time.sleep(0.05)

    def wait_ready(self, serving_count: int = 1) -> None:
        """Wait until the daemon has started ``serving_count`` times and answers."""
        self.wait_for_log("Serving Redfish on", serving_count)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            self._check_alive()
            try:
                if self.request("GET", "/redfish/v1").status == 200:
                    return
            except (OSError, http.client.HTTPException):
                pass
            if time.monotonic() > deadline:
                pytest.fail(
                    f"bmcd did not answer within {START_TIMEOUT} s:\n{self.log()}"
                )
            time.sleep(0.05)

    def _check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            pytest.fail(f"bmcd exited with {self.proc.returncode}:\n{self.log()}")

    def tls_context(self) -> ssl.SSLContext:
        """A client context that trusts exactly bmcd's generated certificate."""
        if self._context is None:
            context = ssl.create_default_context(cafile=str(self.cert_file))
            self._context = context
        return self._context

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        token: str | None = None,
    ) -> Response:
        """Send one request on a fresh connection, verifying the certificate."""
        all_headers = {"Accept": "application/json", "Connection": "close"}
        if auth is not None:
            all_headers.update(basic(*auth))
        if token is not None:
            all_headers["X-Auth-Token"] = token
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            all_headers["Content-Type"] = "application/json"
        all_headers.update(headers or {})
        connection = http.client.HTTPSConnection(
            "127.0.0.1", self.port, context=self.tls_context(), timeout=REQUEST_TIMEOUT
        )
        try:
            connection.request(method, path, body=data, headers=all_headers)
            response = connection.getresponse()
            return Response(response.status, response.headers, response.read())
        finally:
            connection.close()

    def login(self, user: str, password: str) -> tuple[str, str]:
        """Create a session; return its token and URI."""
        response = self.request(
            "POST",
            "/redfish/v1/SessionService/Sessions",
            {"UserName": user, "Password": password},
        )
        assert response.status == 201, response.body
        return response.headers["X-Auth-Token"], response.headers["Location"]

    def stop(self, expect_clean: bool = True) -> int:
        """SIGTERM the daemon by PID and wait; check it stopped cleanly."""
        if self.proc is None:
            return 0
        if self.returncode is None:
            if self.proc.poll() is None:
                os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.returncode = self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
                pytest.fail(f"bmcd ignored SIGTERM for {STOP_TIMEOUT} s:\n{self.log()}")
        if expect_clean:
            assert self.returncode == 0, self.log()
            assert "stopped cleanly" in self.log(), self.log()
        return self.returncode


StartDaemon = Callable[..., Daemon]

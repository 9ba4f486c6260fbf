"""Test plumbing for the host account backends: a private bus, PAM files."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bmcd.contracts import BackendContext

SECURITY_DIRS = (
    Path("/usr/lib/x86_64-linux-gnu/security"),
    Path("/usr/lib/aarch64-linux-gnu/security"),
    Path("/lib/security"),
    Path("/usr/lib/security"),
)

_BUS_CONF = """<!DOCTYPE busconfig PUBLIC
 "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/><allow own="*"/>
    <allow send_destination="*"/><allow receive_sender="*"/>
  </policy>
</busconfig>
"""


def pam_module(name: str) -> Path | None:
    """Where the PAM module ``name`` (e.g. pam_pwdfile.so) is installed."""
    for directory in SECURITY_DIRS:
        if (directory / name).exists():
            return directory / name
    return None


class PrivateBus:
    """A dbus-daemon of our own on a socket in a temporary directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.socket = directory / "system_bus_socket"
        self.address = f"unix:path={self.socket}"
        self.pid: int | None = None

    def start(self) -> None:
        """Start the daemon (again, after stop(), on the same address)."""
        conf = self.directory / "bus.conf"
        conf.write_text(_BUS_CONF.format(socket=self.socket))
        self.socket.unlink(missing_ok=True)
        done = subprocess.run(
            ["dbus-daemon", f"--config-file={conf}", "--fork", "--print-pid"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        )
        self.pid = int(done.stdout.split()[0])
        deadline = time.monotonic() + 5
        while not self.socket.exists():
            if time.monotonic() > deadline:
                raise RuntimeError("dbus-daemon did not create its socket")
            time.sleep(0.01)

    def stop(self) -> None:
        """Kill the daemon we started (by its PID)."""
        if self.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            self.pid = None


def have_dbus_daemon() -> bool:
    """Whether the dbus-daemon binary is installed."""
    return shutil.which("dbus-daemon") is not None


def pwdfile_service(
    confdir: Path, pwdfile: Path, faillock_conf: Path, service: str = "bmcd"
) -> None:
    """A PAM service on pam_pwdfile: users need not exist on the host.

    Lockout lines are those of etc/pam.d/bmcd; pam_faillock ignores users it
    cannot find in passwd, so only host users can be locked out here.
    """
    confdir.mkdir(parents=True, exist_ok=True)
    pwdfile.touch()
    conf = f"conf={faillock_conf} nodelay"
    (confdir / service).write_text(
        f"auth required pam_faillock.so preauth {conf}\n"
        f"auth sufficient pam_pwdfile.so pwdfile={pwdfile} nodelay\n"
        f"auth [default=die] pam_faillock.so authfail {conf}\n"
        "auth required pam_deny.so\n"
        f"account required pam_faillock.so conf={faillock_conf}\n"
        "account required pam_permit.so\n"
        "password required pam_deny.so\n"
    )


def unix_service(
    confdir: Path, faillock_conf: Path, service: str = "bmcd", *, nodelay: bool = True
) -> None:
    """bmcd's shipped PAM service with its conf= paths pointed at a test dir."""
    shipped = Path(__file__).parents[3] / "etc" / "pam.d" / "bmcd"
    text = shipped.read_text().replace(
        "/var/lib/bmcd/faillock.conf", str(faillock_conf)
    )
    if nodelay:
        # Keep failed logins fast: no fail delay from either module.
        text = text.replace("pam_unix.so\n", "pam_unix.so nodelay\n", 1)
        text = text.replace(
            f"authfail conf={faillock_conf}", f"authfail conf={faillock_conf} nodelay"
        )
        text = text.replace(
            f"preauth conf={faillock_conf}", f"preauth conf={faillock_conf} nodelay"
        )
    confdir.mkdir(parents=True, exist_ok=True)
    (confdir / service).write_text(text)


def in_sandbox() -> bool:
    """True only inside test_hostaccounts_sandbox's namespace (own /etc)."""
    if os.environ.get("BMCD_TEST_SANDBOX") != "1":
        return False
    # A bind mount on the same file system fools os.path.ismount.
    with open("/proc/self/mountinfo") as mounts:
        return any(line.split()[4] == "/etc" for line in mounts)


def run(*argv: str, stdin: str | None = None) -> str:
    """Run a command (inside the sandbox), failing loudly; its stdout."""
    done = subprocess.run(
        list(argv),
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"},
    )
    if done.returncode != 0:
        raise RuntimeError(f"{argv} exited {done.returncode}: {done.stderr}")
    return done.stdout


def add_user(name: str, password: str | None = None, *groups: str) -> None:
    """A throwaway host user (sandbox only), with a password if given."""
    assert in_sandbox(), "refusing to add a user outside the sandbox"
    argv = ["useradd", "-M", "-N", "-s", "/usr/sbin/nologin"]
    if groups:
        argv += ["-G", ",".join(groups)]
    run(*argv, name)
    if password is not None:
        run("chpasswd", stdin=f"{name}:{password}\n")


def _missing() -> str | None:
    try:
        import dbus_fast  # noqa: F401
    except ImportError:
        return "dbus-fast is not installed (pip install dbus-fast)"
    if not have_dbus_daemon():
        return "dbus-daemon is not installed (apt-get install dbus-daemon)"
    if pam_module("pam_pwdfile.so") is None:
        return "pam_pwdfile is not installed (apt-get install libpam-pwdfile)"
    return None


MISSING = _missing()
needs_bus = pytest.mark.skipif(MISSING is not None, reason=MISSING or "")


class NoDatabase:
    """The host backends keep no state in bmcd's database."""

    async def migrate(self, component: str, migrations: Any) -> None:
        raise AssertionError("unexpected database use")

    async def run(self, work: Any) -> Any:
        raise AssertionError("unexpected database use")


def context(state_dir: Path, options: dict[str, Any]) -> BackendContext:
    """A BackendContext for a host backend under test."""
    state_dir.mkdir(parents=True, exist_ok=True)
    return BackendContext(state_dir=state_dir, options=options, database=NoDatabase())


@dataclass
class OpenBMCEnv:
    """The OpenBMC stand-in, the fake helper and the options that use them."""

    bus: PrivateBus
    standin: Any
    helper: Any
    options: dict[str, Any]
    state_dir: Path

    def reset(self) -> None:
        """Forget every user, password and failure: a fresh host."""
        for name in list(self.standin.manager.users):
            self.standin.manager.delete(name)
        self.helper.pwdfile.write_text("")
        tallies = self.state_dir / "faillock"
        if tallies.is_dir():
            for tally in tallies.iterdir():
                tally.unlink()

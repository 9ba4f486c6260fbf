"""The unit files pass ``systemd-analyze verify`` and keep their hardening."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parents[2] / "systemd"
ANALYZE = shutil.which("systemd-analyze")
# 0 is best, 10 worst; systemd calls up to 2.0 "OK". bmcd.service scores 1.9.
# Loosen the hardening only on purpose: then raise this and update the score
# in docs/deployment.md.
MAX_EXPOSURE = 2.0

pytestmark = [
    pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed"),
    pytest.mark.skipif(
        not (UNITS / "bmcd.service").exists(),
        reason="no systemd/ directory (not a source checkout)",
    ),
]


@pytest.fixture
def units(tmp_path: Path) -> Path:
    """Copies of the units whose ExecStart names a file that exists here."""
    service = (UNITS / "bmcd.service").read_text()
    # verify fails on a missing binary; /usr/bin/bmcd exists only once installed.
    service = re.sub(
        r"(?m)^ExecStart=/usr/bin/bmcd ",
        f"ExecStart={sys.executable} -m bmcd ",
        service,
    )
    (tmp_path / "bmcd.service").write_text(service)
    shutil.copy(UNITS / "bmcd.socket", tmp_path / "bmcd.socket")
    return tmp_path


def _analyze(*args: str) -> subprocess.CompletedProcess[str]:
    assert ANALYZE is not None
    return subprocess.run(
        [ANALYZE, *args], capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.parametrize("unit", ["bmcd.service", "bmcd.socket"])
def test_verify_is_silent(units: Path, unit: str) -> None:
    result = _analyze("verify", str(units / unit))

    assert result.stderr == ""
    assert result.returncode == 0


def test_security_exposure(units: Path) -> None:
    result = _analyze(
        "security", "--offline=yes", "--no-pager", str(units / "bmcd.service")
    )

    match = re.search(
        r"Overall exposure level for bmcd\.service: ([0-9.]+)", result.stdout
    )
    assert match, result.stdout + result.stderr
    print(f"systemd-analyze security: exposure {match.group(1)}")
    assert float(match.group(1)) <= MAX_EXPOSURE


def test_service_contract() -> None:
    """What the daemon relies on is spelled out in the unit."""
    service = (UNITS / "bmcd.service").read_text()
    for line in (
        "Type=notify",
        "NotifyAccess=main",
        "ExecStart=/usr/bin/bmcd serve",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "User=bmcd",
        "Group=bmcd",
        "StateDirectory=bmcd",
        "StateDirectoryMode=0700",
        "ConfigurationDirectory=bmcd",
    ):
        assert f"\n{line}\n" in service
    assert re.search(r"(?m)^WatchdogSec=\d+", service)

"""The unit files pass ``systemd-analyze verify`` and keep their hardening."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "systemd"
ANALYZE = shutil.which("systemd-analyze")
# 0 is best, 10 worst; systemd calls up to 2.0 "OK". bmcd.service scores 1.9,
# bmcd-helper.service 1.3. Loosen the hardening only on purpose: then raise
# the figure here and update the score in docs/deployment.md.
MAX_EXPOSURE = {"bmcd.service": 2.0, "bmcd-helper.service": 1.3}

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
    # Its ExecStart is /usr/bin/python3, there on every Debian machine.
    shutil.copy(UNITS / "bmcd-helper.service", tmp_path / "bmcd-helper.service")
    return tmp_path


def _analyze(*args: str) -> subprocess.CompletedProcess[str]:
    assert ANALYZE is not None
    return subprocess.run(
        [ANALYZE, *args], capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.parametrize("unit", ["bmcd.service", "bmcd.socket", "bmcd-helper.service"])
def test_verify_is_silent(units: Path, unit: str) -> None:
    result = _analyze("verify", str(units / unit))

    assert result.stderr == ""
    assert result.returncode == 0


@pytest.mark.parametrize("unit", sorted(MAX_EXPOSURE))
def test_security_exposure(units: Path, unit: str) -> None:
    result = _analyze("security", "--offline=yes", "--no-pager", str(units / unit))

    match = re.search(
        rf"Overall exposure level for {re.escape(unit)}: ([0-9.]+)", result.stdout
    )
    assert match, result.stdout + result.stderr
    print(f"systemd-analyze security {unit}: exposure {match.group(1)}")
    assert float(match.group(1)) <= MAX_EXPOSURE[unit]


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


def _values(unit: str, key: str) -> list[str]:
    text = (UNITS / unit).read_text()
    return re.findall(rf"(?m)^{key}=(.*)$", text)


def _helper_args() -> list[str]:
    (exec_start,) = _values("bmcd-helper.service", "ExecStart")
    return exec_start.split()


def test_helper_matches_the_backends_defaults() -> None:
    """The helper listens where the backends look, for the groups they use."""
    from bmcd_backends.hostaccounts.helper import parse_args
    from bmcd_backends.hostaccounts.options import DEFAULT_HELPER_SOCKET

    argv = _helper_args()
    assert argv[:4] == [
        "/usr/bin/python3",
        "-I",
        "-m",
        "bmcd_backends.hostaccounts.helper",
    ]
    args = parse_args(argv[4:])

    assert str(args.socket) == DEFAULT_HELPER_SOCKET
    # RuntimeDirectory= makes the socket's directory.
    assert _values("bmcd-helper.service", "RuntimeDirectory") == [
        str(args.socket.parent.relative_to("/run"))
    ]
    assert args.allowed_group == ["bmcd"] and args.allowed_user == []
    assert sorted(args.group) == ["bmcd-admin", "bmcd-operator", "bmcd-readonly"]
    # bmcd's faillock_dir default is <state_dir>/faillock, writable here.
    assert str(args.faillock_dir) == "/var/lib/bmcd/faillock"
    assert (
        "-/var/lib/bmcd" in _values("bmcd-helper.service", "ReadWritePaths")[0].split()
    )


def test_helper_groups_are_created_by_the_package() -> None:
    path = ROOT / "debian" / "bmcd.sysusers"
    if not path.exists():
        pytest.skip("no debian/ here (the package build copies only the tests)")
    sysusers = path.read_text()
    groups = set(re.findall(r"(?m)^g (\S+) ", sysusers))
    users = set(re.findall(r"(?m)^u (\S+) ", sysusers))

    args = _helper_args()
    wanted = {args[i + 1] for i, arg in enumerate(args) if arg == "--group"}
    assert wanted <= groups
    assert "bmcd" in users  # --allowed-group bmcd: the user's own group


def test_helper_runs_as_root_with_few_capabilities() -> None:
    """Root, but only the capabilities the account tools need."""
    (bounding,) = _values("bmcd-helper.service", "CapabilityBoundingSet")
    assert set(bounding.split()) == {
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_FOWNER",
        "CAP_AUDIT_WRITE",
    }
    for key, value in (
        ("NoNewPrivileges", "yes"),
        ("PrivateNetwork", "yes"),
        ("ProtectSystem", "strict"),
        ("RestrictAddressFamilies", "AF_UNIX AF_NETLINK"),
        ("UMask", "0077"),
    ):
        assert _values("bmcd-helper.service", key) == [value], key
    # Enabling the helper makes bmcd want it; nothing else starts it.
    assert _values("bmcd-helper.service", "WantedBy") == ["bmcd.service"]

"""Runs the sbx_*.py tests inside a private mount namespace with a copy of /etc.

Those tests create and delete real users, run the real pam_unix stack and the
real accounts-daemon; the namespace gives them their own /etc, /home,
/var/log, /var/mail and /var/lib/AccountsService, so the machine's own users
and files are never touched. Each module runs in its own pytest subprocess.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
ROOT = HERE.parents[2]

# Directories that useradd, userdel and accounts-daemon write to, each
# replaced in the namespace by an empty tmpfs.
_SCRATCH = ("/home", "/var/log", "/var/mail", "/var/lib/AccountsService")

_SETUP = """
set -e
cp -a /etc/. "$SANDBOX/etc/"
mount --bind "$SANDBOX/etc" /etc
for dir in {scratch}; do
    if [ -d "$dir" ]; then mount -t tmpfs tmpfs "$dir"; fi
done
exec "$@"
"""


def _can_unshare() -> str | None:
    if os.geteuid() != 0:
        return "needs root (private mount namespace, throwaway users)"
    if shutil.which("unshare") is None:
        return "unshare is not installed (util-linux)"
    probe = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "true"],
        capture_output=True,
        check=False,
    )
    if probe.returncode != 0:
        return f"unshare --mount fails here: {probe.stderr.decode().strip()}"
    return None


REASON = _can_unshare()


def run_sandboxed(
    module: str, tmp_path: Path, *args: str, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run pytest on ``module`` inside a fresh namespace sandbox."""
    sandbox = tmp_path / "sandbox"
    (sandbox / "etc").mkdir(parents=True)
    env = {
        **os.environ,
        "SANDBOX": str(sandbox),
        "BMCD_TEST_SANDBOX": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    env.pop("DBUS_SYSTEM_BUS_ADDRESS", None)
    script = _SETUP.format(scratch=" ".join(_SCRATCH))
    return subprocess.run(
        [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            "sandbox",
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(ROOT),
            "-c",
            str(ROOT / "pyproject.toml"),
            str(HERE / module),
            *args,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.root
@pytest.mark.skipif(REASON is not None, reason=REASON or "")
@pytest.mark.parametrize(
    "module", ["sbx_pam.py", "sbx_accountsservice.py", "sbx_openbmc_host.py"]
)
def test_in_sandbox(module: str, tmp_path: Path) -> None:
    done = run_sandboxed(module, tmp_path)

    print(done.stdout[-6000:], done.stderr[-3000:])
    # pytest exit 5: every test in the module skipped itself (missing tools).
    assert done.returncode in (0, 5), done.stdout[-6000:] + done.stderr[-3000:]
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    if " skipped" in summary and " passed" not in summary:
        pytest.skip(f"{module}: {summary}")

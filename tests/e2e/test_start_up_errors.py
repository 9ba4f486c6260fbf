"""The real daemon refuses a start it cannot make good with one clear line.

Each case stops ``bmcd serve`` before it listens, exits non-zero, prints no
traceback, and names the file or config key at fault and what is wrong.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from certauthority import TestCA, key_pem, pem
from daemon_process import (
    ADMIN,
    START_TIMEOUT,
    add_account,
    bmcd_command,
    free_port,
    write_config,
)

pytestmark = pytest.mark.e2e

PAGE_SIZE = 4096  # SQLite's default, which bmcd does not change


def _serve_once(
    config: Path, cwd: Path, wrapper: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*wrapper, *bmcd_command("serve", "--config", str(config))],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
        check=False,
    )


def _refusal(done: subprocess.CompletedProcess[str]) -> str:
    """The one line that says why bmcd did not start."""
    assert done.returncode != 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert "Serving Redfish" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if "Cannot start" in line]
    assert len(lines) == 1, done.stderr
    return lines[0]


def _key_and_certificate(tmp_path: Path, name: str) -> tuple[Path, Path]:
    certificate, key = TestCA().server_certificate()
    cert_file = tmp_path / f"{name}.crt"
    key_file = tmp_path / f"{name}.key"
    cert_file.write_text(pem(certificate))
    key_file.write_text(key_pem(key))
    return cert_file, key_file


def _tls(cert_file: Path, key_file: Path) -> str:
    return (
        f"\n[tls]\ncertificate = {json.dumps(str(cert_file))}\n"
        f"key = {json.dumps(str(key_file))}\n"
    )


def _missing_certificate(tmp_path: Path) -> tuple[str, list[str]]:
    cert_file, key_file = _key_and_certificate(tmp_path, "a")
    cert_file.unlink()
    return _tls(cert_file, key_file), ["tls.certificate", str(cert_file)]


def _missing_key(tmp_path: Path) -> tuple[str, list[str]]:
    cert_file, key_file = _key_and_certificate(tmp_path, "a")
    key_file.unlink()
    return _tls(cert_file, key_file), ["tls.key", str(key_file)]


def _mismatched_pair(tmp_path: Path) -> tuple[str, list[str]]:
    cert_file, _ = _key_and_certificate(tmp_path, "a")
    _, other_key = _key_and_certificate(tmp_path, "b")
    return _tls(cert_file, other_key), [
        "tls.certificate",
        str(cert_file),
        str(other_key),
        "do not belong together",
    ]


def _not_a_certificate(tmp_path: Path) -> tuple[str, list[str]]:
    cert_file, key_file = _key_and_certificate(tmp_path, "a")
    cert_file.write_text("not a certificate\n")
    return _tls(cert_file, key_file), ["tls.certificate", "no PEM certificate"]


@pytest.mark.parametrize(
    "case",
    [
        _missing_certificate,
        _missing_key,
        _mismatched_pair,
        _not_a_certificate,
    ],
)
def test_config_problem_stops_start_up(
    tmp_path: Path, case: Callable[[Path], tuple[str, list[str]]]
) -> None:
    extra, needles = case(tmp_path)
    config = write_config(
        tmp_path / "bmcd.toml", free_port(), tmp_path / "state", extra
    )

    line = _refusal(_serve_once(config, tmp_path))

    assert str(config) in line
    for needle in needles:
        assert needle in line


def test_nothing_to_listen_on_stops_start_up(tmp_path: Path) -> None:
    config = tmp_path / "bmcd.toml"
    state = tmp_path / "state"
    config.write_text(f"[server]\nlisten = []\nstate_dir = {json.dumps(str(state))}\n")

    line = _refusal(_serve_once(config, tmp_path))

    assert str(config) in line
    assert "server.listen" in line
    assert "serve nothing" in line


def test_state_dir_that_is_a_file_stops_start_up(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.write_text("an operator's file\n")
    config = write_config(tmp_path / "bmcd.toml", free_port(), state)

    line = _refusal(_serve_once(config, tmp_path))

    assert str(state) in line
    assert "not a directory" in line
    assert state.read_text() == "an operator's file\n"


def test_state_dir_that_is_a_file_stops_account_add(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.write_text("an operator's file\n")
    config = write_config(tmp_path / "bmcd.toml", free_port(), state)

    with pytest.raises(AssertionError, match="not a directory"):
        add_account(config, state, *ADMIN)


def _corrupt_page_of(database: Path, table: str) -> None:
    """Overwrite the cells of ``table``'s first page, as a bad disk would."""
    with sqlite3.connect(database) as conn:
        (root,) = conn.execute(
            "SELECT rootpage FROM sqlite_master WHERE name=?", (table,)
        ).fetchone()
    conn.close()
    data = bytearray(database.read_bytes())
    start = (root - 1) * PAGE_SIZE
    data[start + 8 : start + PAGE_SIZE] = b"\xff" * (PAGE_SIZE - 8)
    database.write_bytes(bytes(data))


def test_damaged_database_page_stops_start_up(tmp_path: Path) -> None:
    state = tmp_path / "state"
    config = write_config(tmp_path / "bmcd.toml", free_port(), state)
    add_account(config, state, *ADMIN)
    database = state / "bmcd.db"
    _corrupt_page_of(database, "settings")
    damaged = database.read_bytes()

    line = _refusal(_serve_once(config, tmp_path))

    assert str(database) in line
    assert "damaged" in line
    assert "move the file aside" in line
    assert "loses every account" in line
    assert database.read_bytes() == damaged


def _read_only(directory: Path) -> tuple[str, ...]:
    """A command prefix that runs the rest with ``directory`` mounted read-only.

    A private mount namespace: the machine's own mounts are not touched.
    """
    if shutil.which("unshare") is None:
        pytest.skip("unshare is not installed")
    probe = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "true"],
        capture_output=True,
        check=False,
    )
    if probe.returncode != 0:
        pytest.skip("cannot make a mount namespace here (needs root)")
    script = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"'
    return ("unshare", "--mount", "--propagation", "private", "sh", "-c", script)


def test_empty_read_only_state_dir_stops_start_up(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    config = write_config(tmp_path / "bmcd.toml", free_port(), state)

    done = _serve_once(config, tmp_path, (*_read_only(state), str(state)))

    line = _refusal(done)
    assert str(state) in line
    assert "Read-only file system" in line
    assert "owner and mode" in line


def test_read_only_state_database_is_not_called_damaged(tmp_path: Path) -> None:
    state = tmp_path / "state"
    config = write_config(tmp_path / "bmcd.toml", free_port(), state)
    add_account(config, state, *ADMIN)
    # The certificate is there already, so the database is the first write.
    cert_file, key_file = _key_and_certificate(tmp_path, "served")
    config.write_text(config.read_text() + _tls(cert_file, key_file))
    database = state / "bmcd.db"
    before = database.read_bytes()

    done = _serve_once(config, tmp_path, (*_read_only(state), str(state)))

    line = _refusal(done)
    assert str(database) in line
    assert "owner and mode" in line
    # Advice to move the database aside would throw every account away.
    assert "aside" not in line
    assert database.read_bytes() == before

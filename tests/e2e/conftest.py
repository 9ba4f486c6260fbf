"""Fixtures that run the real bmcd process (see daemon_process.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_process import (
    ADMIN,
    Daemon,
    StartDaemon,
    add_account,
    free_port,
    write_config,
)


@pytest.fixture
def start_daemon(tmp_path: Path) -> Iterator[StartDaemon]:
    """A factory: start a real bmcd, with an Administrator unless admin=False.

    ``extra_config`` is TOML appended to the generated config file.
    """
    daemons: list[Daemon] = []

    def start(*, admin: bool = True, extra_config: str = "") -> Daemon:
        workdir = tmp_path / f"bmcd-{len(daemons)}"
        workdir.mkdir()
        state_dir = workdir / "state"
        port = free_port()
        config = write_config(workdir / "bmcd.toml", port, state_dir, extra_config)
        if admin:
            add_account(config, state_dir, *ADMIN)
        daemon = Daemon(workdir, port, config, state_dir)
        daemons.append(daemon)
        daemon.start()
        return daemon

    yield start

    # Stop them all before reporting, so that no daemon outlives the test.
    problems = []
    for daemon in daemons:
        try:
            daemon.stop()
        except (AssertionError, pytest.fail.Exception) as err:
            problems.append(f"{daemon.workdir.name}: {err}")
    if problems:
        pytest.fail("\n".join(problems))


@pytest.fixture
def daemon(start_daemon: StartDaemon) -> Daemon:
    """A running bmcd with the Administrator ``ADMIN``."""
    return start_daemon()

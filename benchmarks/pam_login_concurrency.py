"""GET latency of one user while 20 failed logins wait in PAM.

Starts bmcd in-process (aiohttp test server on loopback) with the openbmc
accounts backend on a private dbus-daemon and the tests' stand-in user
manager. As root, it re-runs itself in a private mount namespace with a copy
of /etc, so the users are real host users and PAM is the real pam_unix stack
of etc/pam.d/bmcd, fail delay included (about 2 s per failure); otherwise it
falls back to pam_pwdfile (same delay, users in a file). One client keeps
GETting its account with a session token while 20 others post bad passwords
at once; the figures are that client's latencies. Prints figures; asserts
nothing.

    /work/venv/bin/python benchmarks/pam_login_concurrency.py [--attackers 20]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from aiohttp import ClientSession
from aiohttp.test_utils import TestServer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "backends" / "hostaccounts"))
sys.path.insert(0, str(ROOT / "tests"))

from ha_fake_helper import FakeHelper  # noqa: E402
from ha_openbmc_standin import StandIn  # noqa: E402
from ha_support import (  # noqa: E402
    PrivateBus,
    in_sandbox,
    pwdfile_service,
    unix_service,
)

from bmcd.core.config import Config  # noqa: E402
from bmcd.core.services import core_services  # noqa: E402
from bmcd.http.app import create_app  # noqa: E402

READER = ("benchreader", "Reader-pw-1")
ACCOUNT = f"/redfish/v1/AccountService/Accounts/{READER[0]}"
SESSIONS = "/redfish/v1/SessionService/Sessions"


def percentile(values: list[float], fraction: float) -> float:
    """The value below which ``fraction`` of ``values`` fall (nearest rank)."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
    return ordered[index]


async def reader_loop(
    session: ClientSession, base: str, token: str, stop: asyncio.Event
) -> list[float]:
    """GET the reader's account back to back until ``stop``; latencies in s."""
    latencies = []
    while not stop.is_set():
        started = time.perf_counter()
        async with session.get(
            base + ACCOUNT, headers={"X-Auth-Token": token}
        ) as response:
            await response.read()
            assert response.status == 200, response.status
        latencies.append(time.perf_counter() - started)
    return latencies


async def attack(session: ClientSession, base: str, user: str) -> float:
    """One failed login; how long it took."""
    started = time.perf_counter()
    async with session.post(
        base + SESSIONS, json={"UserName": user, "Password": "wrong-password"}
    ) as response:
        await response.read()
        assert response.status == 401, response.status
    return time.perf_counter() - started


async def measure(
    base: str, attackers: int, victims: list[str], baseline_seconds: float
) -> None:
    """The baseline, then the same GETs under attack; prints the figures."""
    async with ClientSession() as session:
        async with session.post(
            base + SESSIONS, json={"UserName": READER[0], "Password": READER[1]}
        ) as response:
            assert response.status == 201, await response.text()
            token = response.headers["X-Auth-Token"]

        stop = asyncio.Event()
        calm = asyncio.ensure_future(reader_loop(session, base, token, stop))
        await asyncio.sleep(baseline_seconds)
        stop.set()
        baseline = await calm

        stop = asyncio.Event()
        busy = asyncio.ensure_future(reader_loop(session, base, token, stop))
        await asyncio.sleep(0.05)
        started = time.perf_counter()
        failures = await asyncio.gather(
            *(
                attack(session, base, victims[i % len(victims)])
                for i in range(attackers)
            )
        )
        attack_time = time.perf_counter() - started
        stop.set()
        loaded = await busy

    for label, values in (("baseline", baseline), ("under attack", loaded)):
        ms = [v * 1000 for v in values]
        print(
            f"GET {label:13s} n={len(ms):5d}  p50={percentile(ms, 0.5):6.2f} ms"
            f"  p99={percentile(ms, 0.99):6.2f} ms  max={max(ms):7.2f} ms"
        )
    print(
        f"{attackers} failed logins in parallel: {attack_time:.2f} s in all, "
        f"each {min(failures):.2f}-{max(failures):.2f} s "
        f"(median {statistics.median(failures):.2f} s)"
    )


async def run(args: argparse.Namespace, workdir: Path, real: bool) -> None:
    """Set up the bus, stand-in, PAM and app; then measure."""
    bus = PrivateBus(workdir)
    bus.start()
    standin = StandIn(bus.address, host_users=real)
    await standin.start()
    state = workdir / "state"
    confdir = workdir / "pam.d"
    options: dict[str, Any] = {
        "dbus_address": bus.address,
        "pam_confdir": str(confdir),
        "faillock_conf": str(state / "faillock.conf"),
        "faillock_dir": str(state / "faillock"),
        "pam_threads": args.pam_threads,
    }
    helper = None
    if real:
        # The shipped service file, fail delay and all.
        unix_service(confdir, state / "faillock.conf", nodelay=False)
        options["helper_socket"] = ""  # root: the helper's work in-process
    else:
        pwdfile = workdir / "passwords"
        pwdfile_service(confdir, pwdfile, state / "faillock.conf")
        text = (confdir / "bmcd").read_text().replace(" nodelay", "")
        (confdir / "bmcd").write_text(text)
        helper = FakeHelper(workdir / "helper.sock", pwdfile, standin.manager)
        await helper.start()
        options["helper_socket"] = str(workdir / "helper.sock")

    config = dataclasses.replace(
        Config(),
        state_dir=state,
        source="benchmark",
        backends={"accounts": "openbmc"},
        backend_options={"openbmc": options},
    )
    victims = [f"benchvictim{i}" for i in range(4)]
    async with core_services(config) as core:
        await core.accounts.create(READER[0], READER[1], "ReadOnly")
        await core.accounts.create("benchadmin", "Admin-pw-12", "Administrator")
        for name in victims:
            await core.accounts.create(name, "Victim-pw-1", "Operator")

    server = TestServer(create_app(config), host="127.0.0.1")
    await server.start_server()
    try:
        stack = "pam_unix (real users, namespace sandbox)" if real else ("pam_pwdfile")
        print(
            f"PAM: {stack}, fail delay on; PAM threads: {args.pam_threads}; "
            f"login_failure_delay {config.login_failure_delay} s"
        )
        await measure(str(server.make_url("")), args.attackers, victims, args.baseline)
    finally:
        await server.close()
        if helper is not None:
            await helper.stop()
        await standin.stop()
        bus.stop()


def reexec_in_sandbox() -> int:
    """Run this script again in a private mount namespace with its own /etc."""
    sandbox = Path(tempfile.mkdtemp(prefix="bmcd-bench-"))
    (sandbox / "etc").mkdir()
    script = (
        'set -e; cp -a /etc/. "$SANDBOX/etc/"; '
        'mount --bind "$SANDBOX/etc" /etc; '
        "for d in /home /var/log /var/mail; do "
        '[ -d "$d" ] && mount -t tmpfs tmpfs "$d"; done; exec "$@"'
    )
    env = {**os.environ, "SANDBOX": str(sandbox), "BMCD_TEST_SANDBOX": "1"}
    try:
        return subprocess.run(
            [
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                script,
                "bench",
                sys.executable,
                *sys.argv,
            ],
            env=env,
            check=False,
        ).returncode
    finally:
        shutil.rmtree(sandbox, ignore_errors=True)


def main() -> int:
    """Parse options and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attackers", type=int, default=20)
    parser.add_argument("--pam-threads", type=int, default=8)
    parser.add_argument(
        "--baseline",
        type=float,
        default=2.0,
        help="seconds of GETs without failed logins",
    )
    parser.add_argument(
        "--no-sandbox", action="store_true", help="use pam_pwdfile even as root"
    )
    args = parser.parse_args()
    real = in_sandbox()
    if (
        not real
        and not args.no_sandbox
        and os.geteuid() == 0
        and shutil.which("unshare")
    ):
        return reexec_in_sandbox()
    # Each refused login logs a warning: keep the figures readable.
    logging.basicConfig(level=logging.ERROR)
    if real:
        subprocess.run(["groupadd", "-f", "redfish"], check=True)
    with tempfile.TemporaryDirectory(prefix="bmcd-bench-") as workdir:
        asyncio.run(run(args, Path(workdir), real))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Request latency, throughput and memory of a real bmcd process.

Starts ``python -m bmcd serve`` on a free loopback port with a temporary state
directory, then measures, with a keep-alive HTTPS client in this process:
GET of the service root (no auth), GET of an account with a session token,
GET with HTTP Basic (verified credential cache), and a $expand of the
accounts collection. Prints p50/p99 latency, requests per second and the
daemon's resident memory. Bounded: a fixed number of requests per case.

usage: python benchmarks/request_throughput.py [--requests N] [--concurrency C]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

USER, PASSWORD = "bench", "bench-password-1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def measure(
    session: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
    total: int,
    concurrency: int,
) -> tuple[list[float], float]:
    latencies: list[float] = []
    remaining = total

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            start = time.perf_counter()
            async with session.get(url, headers=headers) as response:
                await response.read()
                assert response.status == 200, response.status
            latencies.append(time.perf_counter() - start)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, time.perf_counter() - began


async def run(base: str, pid: int, total: int, concurrency: int) -> None:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    connector = aiohttp.TCPConnector(ssl=context, limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.post(
            f"{base}/redfish/v1/SessionService/Sessions",
            json={"UserName": USER, "Password": PASSWORD},
        ) as r:
            token = r.headers["X-Auth-Token"]
        basic = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        cases = [
            ("service root, no auth", "/redfish/v1", {}),
            (
                "account, session token",
                f"/redfish/v1/AccountService/Accounts/{USER}",
                {"X-Auth-Token": token},
            ),
            (
                "account, HTTP Basic",
                f"/redfish/v1/AccountService/Accounts/{USER}",
                {"Authorization": f"Basic {basic}"},
            ),
            (
                "accounts $expand=.",
                "/redfish/v1/AccountService/Accounts?$expand=.",
                {"X-Auth-Token": token},
            ),
        ]
        print(f"{total} requests per case, {concurrency} concurrent, keep-alive")
        for name, path, headers in cases:
            await measure(session, base + path, headers, 20, 1)  # warm-up
            latencies, elapsed = await measure(
                session, base + path, headers, total, concurrency
            )
            latencies.sort()
            p50 = statistics.median(latencies) * 1000
            p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
            print(
                f"  {name:26s} p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  "
                f"{total / elapsed:7.0f} req/s"
            )
    print(f"daemon RSS after the run: {rss_kib(pid) / 1024:.1f} MiB")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    state = Path(tempfile.mkdtemp(prefix="bmcd-bench-"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "bmcd",
            "account",
            "add",
            USER,
            "--role",
            "Administrator",
            "--state-dir",
            str(state),
            "--password-stdin",
        ],
        input=PASSWORD + "\n",
        text=True,
        check=True,
        capture_output=True,
    )
    port = free_port()
    config = state / "bmcd.toml"
    config.write_text(
        f'[server]\nlisten = ["127.0.0.1:{port}"]\n'
        f'state_dir = "{state}"\n[logging]\nlevel = "warning"\n'
    )
    daemon = subprocess.Popen(
        [sys.executable, "-m", "bmcd", "serve", "--config", str(config)],
        env={**os.environ},
    )
    try:
        base = f"https://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        print(f"idle daemon RSS: {rss_kib(daemon.pid) / 1024:.1f} MiB")
        asyncio.run(run(base, daemon.pid, args.requests, args.concurrency))
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())

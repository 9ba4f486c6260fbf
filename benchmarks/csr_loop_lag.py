"""Event-loop lag while bmcd generates an RSA-4096 CSR through Redfish.

Starts the real application in-process (aiohttp test server on loopback, state
in a temporary directory), runs a ticker every 5 ms on the same loop and
posts GenerateCSR with KeyBitLength 4096. A ticker that wakes late measures
how long the loop was blocked. Prints figures; asserts nothing.

    /work/venv/bin/python benchmarks/csr_loop_lag.py [--runs N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import statistics
import tempfile
import time
from pathlib import Path

from aiohttp import ClientSession
from aiohttp.test_utils import TestServer

from bmcd.core.config import Config
from bmcd.core.services import add_account
from bmcd.http.app import create_app

TICK = 0.005
USER = ("bench", "bench-password-1")
GENERATE_CSR = "/redfish/v1/CertificateService/Actions/CertificateService.GenerateCSR"
BODY = {
    "CommonName": "bmc.bench.test",
    "KeyPairAlgorithm": "TPM_ALG_RSA",
    "KeyBitLength": 4096,
    "CertificateCollection": {
        "@odata.id": "/redfish/v1/Managers/1/NetworkProtocol/HTTPS/Certificates"
    },
}


class Ticker:
    """Wakes every TICK seconds and records how late each wake-up was."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            expected = loop.time() + TICK
            await asyncio.sleep(TICK)
            self.lags.append(max(0.0, loop.time() - expected))

    def start(self) -> None:
        self.lags.clear()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> list[float]:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        return list(self.lags)


def p99(values: list[float]) -> float:
    """The 99th percentile (the maximum for short samples)."""
    if len(values) < 100:
        return max(values)
    return statistics.quantiles(values, n=100)[98]


async def main(runs: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bmcd-bench-") as temp:
        config = dataclasses.replace(
            Config(), state_dir=Path(temp) / "state", source="benchmark"
        )
        await add_account(config, *USER, "Administrator")
        server = TestServer(create_app(config), host="127.0.0.1")
        await server.start_server()
        ticker = Ticker()
        try:
            async with ClientSession(str(server.make_url("/"))) as http:
                login = await http.post(
                    "/redfish/v1/SessionService/Sessions",
                    json={"UserName": USER[0], "Password": USER[1]},
                )
                headers = {"X-Auth-Token": login.headers["X-Auth-Token"]}

                # The same ticker with nothing to do, for as long as each CSR
                # took, shows what the machine's own load adds.
                csr_lags: list[float] = []
                idle_lags: list[float] = []
                times: list[float] = []
                print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
                for run in range(1, runs + 1):
                    ticker.start()
                    started = time.perf_counter()
                    response = await http.post(GENERATE_CSR, json=BODY, headers=headers)
                    body = await response.json()
                    elapsed = time.perf_counter() - started
                    lags = await ticker.stop()
                    assert response.status == 200, body
                    assert "CERTIFICATE REQUEST" in body["CSRString"]
                    ticker.start()
                    await asyncio.sleep(elapsed)
                    idle = await ticker.stop()
                    times.append(elapsed)
                    csr_lags += lags
                    idle_lags += idle
                    print(
                        f"RSA-4096 CSR {run}: {elapsed:5.2f} s, lag max "
                        f"{max(lags) * 1000:6.1f} ms p99 {p99(lags) * 1000:5.1f}"
                        f" ms | idle: max {max(idle) * 1000:6.1f} ms p99 "
                        f"{p99(idle) * 1000:5.1f} ms"
                    )
                median = statistics.median(times)
                print(
                    f"{runs} runs: CSR median {median:.2f} s (max "
                    f"{max(times):.2f} s); lag during CSRs max "
                    f"{max(csr_lags) * 1000:.1f} ms p99 "
                    f"{p99(csr_lags) * 1000:.1f} ms; idle max "
                    f"{max(idle_lags) * 1000:.1f} ms p99 "
                    f"{p99(idle_lags) * 1000:.1f} ms (target < 50 ms); load "
                    f"average now {os.getloadavg()[0]:.2f}"
                )
        finally:
            await server.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    asyncio.run(main(parser.parse_args().runs))

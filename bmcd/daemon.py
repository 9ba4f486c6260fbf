"""Running bmcd: listeners, signals, clean shutdown and self-restart."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

from aiohttp import web

from bmcd.core.config import Config
from bmcd.core.lifecycle import Ending, Lifecycle
from bmcd.http import keys
from bmcd.http.app import create_app
from bmcd.http.tls import TLSContextHolder, ensure_certificate

_LOGGER = logging.getLogger(__name__)

async def serve(config: Config) -> Ending:
    """Serve until a signal or a Reset ends it; return why it ended."""
    lifecycle = Lifecycle()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, lifecycle.request, Ending.STOP,
                                signal.Signals(signum).name)
    config.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    cert_file, key_file = await ensure_certificate(
        config.state_dir, config.tls.certificate, config.tls.key)
    tls = await asyncio.to_thread(TLSContextHolder, cert_file, key_file)

    app = create_app(config, lifecycle)
    keys.TLS.set(app, tls)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    try:
        for address in config.listen:
            site = web.TCPSite(runner, address.host, address.port,
                               ssl_context=tls.listening_context,
                               shutdown_timeout=config.shutdown_timeout)
            await site.start()
            _LOGGER.info("Serving Redfish on https://%s", address)
        for address in config.http_listen:
            site = web.TCPSite(runner, address.host, address.port,
                               shutdown_timeout=config.shutdown_timeout)
            await site.start()
            _LOGGER.warning("Serving Redfish WITHOUT TLS on http://%s", address)
        ending = await lifecycle.wait()
    finally:
        # Stops accepting, lets in-flight requests finish, closes state.
        await runner.cleanup()
    _LOGGER.info("bmcd stopped cleanly")
    return ending


def run(config: Config) -> int:
    """Run the daemon; on a Reset, replace this process with a fresh bmcd."""
    ending = asyncio.run(serve(config))
    if ending is Ending.RESTART:
        _LOGGER.info("Restarting bmcd")
        sys.stderr.flush()
        os.execv(sys.executable, sys.orig_argv)
    return 0

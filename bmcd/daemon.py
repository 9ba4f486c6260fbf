"""Running bmcd: listeners, systemd notifications, signals, reload and restart."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import logging
import os
import signal
import socket
import ssl
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from bmcd.core import systemd
from bmcd.core.config import Config, ConfigError, ListenAddress, TLSConfig
from bmcd.core.lifecycle import Ending, Lifecycle
from bmcd.core.logs import set_level
from bmcd.core.store import StoreError, prepare_state_dir
from bmcd.http import keys
from bmcd.http.app import create_app
from bmcd.http.connections import RequestDeadline
from bmcd.http.tls import TLSContextHolder, ensure_certificate

_LOGGER = logging.getLogger(__name__)

ConfigLoader = Callable[[], Config]

# Test hook: with this set to N seconds, SIGUSR2 blocks the event loop for N s
# (so the watchdog pings stop). Unset, SIGUSR2 keeps its default action.
STALL_ENV = "BMCD_DEBUG_STALL_SECONDS"
MAX_STALL_SECONDS = 600.0

# Signals that must not kill bmcd once serve() has returned: the process is
# then about to exit 0 (or re-execute itself), and dying of a late SIGTERM
# would report a failure (exit 143) for a clean stop.
_IGNORED_AT_EXIT = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)

# Config fields a reload applies at once; any other change needs a restart.
_LIVE_FIELDS = {"source", "log_level", "tls"}
_LIVE_TLS_FIELDS = {"certificate", "key"}
# Config field -> the key an operator writes in bmcd.toml.
_TOML_KEYS = {
    "listen": "server.listen",
    "http_listen": "server.http_listen",
    "state_dir": "server.state_dir",
    "max_body_bytes": "server.max_body_bytes",
    "shutdown_timeout": "server.shutdown_timeout",
    "product": "service.product",
    "vendor": "service.vendor",
    "max_sessions": "sessions.max_sessions",
    "login_failure_delay": "security.login_failure_delay",
    "credential_cache_seconds": "security.credential_cache_seconds",
    "backends": "backends",
    "backend_options": "backends.<name> options",
}


async def serve(config: Config, reload_config: ConfigLoader | None = None) -> Ending:
    """Serve until a signal or a Reset ends it; return why it ended.

    ``reload_config`` reads the configuration again on SIGHUP; without it a
    SIGHUP reloads only the certificate.
    """
    notifier = systemd.Notifier.from_environment()
    notifier.status("Starting")
    loop = asyncio.get_running_loop()
    watchdog = _start_watchdog(notifier)
    _install_stall_hook(loop)
    loop.add_signal_handler(
        signal.SIGHUP, _LOGGER.warning, "Reload request ignored: bmcd is still starting"
    )
    try:
        return await _serve(config, reload_config, notifier)
    finally:
        loop.remove_signal_handler(signal.SIGUSR2)
        for signum in _IGNORED_AT_EXIT:
            loop.remove_signal_handler(signum)
            signal.signal(signum, signal.SIG_IGN)
        if watchdog is not None:
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog
        notifier.close()


async def _serve(
    config: Config, reload_config: ConfigLoader | None, notifier: systemd.Notifier
) -> Ending:
    lifecycle = Lifecycle()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(
            signum, lifecycle.request, Ending.STOP, signal.Signals(signum).name
        )
    activated = systemd.listen_sockets()
    _check_listeners(config, activated)
    await asyncio.to_thread(prepare_state_dir, config.state_dir)
    tls = await _open_tls(config)

    app = create_app(config, lifecycle)
    keys.TLS.set(app, tls)
    deadline = RequestDeadline(config.first_request_timeout)
    keys.DEADLINE.set(app, deadline)
    runner_options, site_options = _shutdown_options(config.shutdown_timeout)
    runner = web.AppRunner(app, handle_signals=False, access_log=None, **runner_options)
    await runner.setup()
    deadline.install(runner)
    try:
        urls = await _start_sites(runner, config, tls, activated, site_options)
        status = "Serving Redfish on " + ", ".join(urls)
        reloader = _Reloader(
            config,
            reload_config,
            tls,
            notifier,
            status,
            socket_activated=bool(activated),
        )
        loop.add_signal_handler(signal.SIGHUP, reloader.request)
        notifier.ready(status)

        ending = await lifecycle.wait()

        loop.add_signal_handler(
            signal.SIGHUP, _LOGGER.warning, "Reload request ignored: bmcd is stopping"
        )
        if ending is Ending.RESTART:
            notifier.reloading("Restarting")
        else:
            notifier.stopping()
        await reloader.close()
    finally:
        # Stops accepting, lets in-flight requests finish, closes state.
        await runner.cleanup()
    _LOGGER.info("bmcd stopped cleanly")
    return ending


def _check_listeners(config: Config, activated: list[socket.socket]) -> None:
    """Refuse to start a daemon that would listen nowhere."""
    if activated or config.listen or config.http_listen:
        return
    raise ConfigError(
        f"{config.source}: server.listen: empty, and neither server.http_listen "
        "nor systemd socket activation gives another address, so bmcd would "
        'serve nothing; list at least one, e.g. listen = ["0.0.0.0:443"]'
    )


async def _open_tls(config: Config) -> TLSContextHolder:
    """The HTTPS certificate to serve, or a start-up error naming the cause."""
    try:
        cert_file, key_file = await ensure_certificate(
            config.state_dir, config.tls.certificate, config.tls.key
        )
    except OSError as err:  # only a self-signed pair is written here
        raise StoreError(
            f"cannot create a self-signed HTTPS certificate in "
            f"{config.state_dir / 'tls'}: {err.strerror or err}; check the owner "
            f"and mode of the state directory {config.state_dir}: the user bmcd "
            "runs as must be able to write to it, on a writable file system"
        ) from None
    try:
        return await asyncio.to_thread(TLSContextHolder.open, cert_file, key_file)
    except OSError as err:  # ssl.SSLError is one
        key, problem = await asyncio.to_thread(_tls_problem, cert_file, key_file, err)
    if config.tls.certificate is None:
        raise StoreError(
            f"the self-signed HTTPS certificate in {cert_file.parent} does not "
            f"load: {problem}; move {cert_file.name} and {key_file.name} aside "
            "and bmcd makes a new pair"
        )
    raise ConfigError(f"{config.source}: {key}: {problem}")


def _tls_problem(cert_file: Path, key_file: Path, err: OSError) -> tuple[str, str]:
    """Which file of a pair that does not load is at fault (config key), and why."""
    contents = {}
    for key, path in (("tls.certificate", cert_file), ("tls.key", key_file)):
        try:
            contents[key] = path.read_bytes()
        except OSError as read_err:
            return key, f"cannot read {path}: {read_err.strerror or read_err}"
    try:
        x509.load_pem_x509_certificate(contents["tls.certificate"])
    except ValueError:
        return "tls.certificate", f"{cert_file} holds no PEM certificate"
    try:
        serialization.load_pem_private_key(contents["tls.key"], None)
    except TypeError:
        return "tls.key", f"{key_file} is encrypted; bmcd needs it unencrypted"
    except (ValueError, UnsupportedAlgorithm):
        return "tls.key", f"{key_file} holds no PEM private key bmcd can use"
    reason = getattr(err, "reason", None) or err.strerror or str(err)
    if reason == "KEY_VALUES_MISMATCH":
        return "tls.certificate", (
            f"{cert_file} and the key {key_file} (tls.key) do not belong "
            "together: the key is not the certificate's private key"
        )
    return "tls.certificate", f"cannot load {cert_file} with {key_file}: {reason}"


def _shutdown_options(timeout: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """Where this aiohttp takes shutdown_timeout: the runner (3.9+) or sites."""
    runner_parameters = inspect.signature(web.BaseRunner.__init__).parameters
    if "shutdown_timeout" in runner_parameters:
        return {"shutdown_timeout": timeout}, {}
    return {}, {"shutdown_timeout": timeout}


async def _start_sites(
    runner: web.AppRunner,
    config: Config,
    tls: TLSContextHolder,
    activated: list[socket.socket],
    site_options: dict[str, Any],
) -> list[str]:
    """Start every listener; return their URLs."""
    urls = []
    if activated:
        _LOGGER.info(
            "Using %d listening socket(s) passed by systemd; server.listen is ignored",
            len(activated),
        )
        for sock in activated:
            host, port = sock.getsockname()[:2]
            url = f"https://{ListenAddress(host, port)}"
            await web.SockSite(
                runner, sock, ssl_context=tls.listening_context, **site_options
            ).start()
            _LOGGER.info("Serving Redfish on %s", url)
            urls.append(url)
    else:
        for address in config.listen:
            await _start_tcp(runner, address, tls.listening_context, site_options)
            _LOGGER.info("Serving Redfish on https://%s", address)
            urls.append(f"https://{address}")
    for address in config.http_listen:
        await _start_tcp(runner, address, None, site_options)
        _LOGGER.warning("Serving Redfish WITHOUT TLS on http://%s", address)
        urls.append(f"http://{address}")
    return urls


async def _start_tcp(
    runner: web.AppRunner,
    address: ListenAddress,
    ssl_context: ssl.SSLContext | None,
    site_options: dict[str, Any],
) -> None:
    site = web.TCPSite(
        runner, address.host, address.port, ssl_context=ssl_context, **site_options
    )
    try:
        await site.start()
    except OSError as err:
        raise ConfigError(
            f"cannot listen on {address}: {err.strerror or err}; "
            "is another server using it, or does bmcd lack "
            "CAP_NET_BIND_SERVICE for a port below 1024?"
        ) from None


def _start_watchdog(notifier: systemd.Notifier) -> asyncio.Task[None] | None:
    interval = systemd.watchdog_interval()
    if interval is None or not notifier.enabled:
        return None
    _LOGGER.debug("Pinging the systemd watchdog every %.3g s", interval)
    return asyncio.create_task(
        systemd.ping_watchdog(notifier, interval), name="bmcd-watchdog"
    )


def _install_stall_hook(loop: asyncio.AbstractEventLoop) -> None:
    """With $BMCD_DEBUG_STALL_SECONDS set, make SIGUSR2 stall the event loop."""
    text = os.environ.get(STALL_ENV)
    if not text:
        return
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds <= MAX_STALL_SECONDS:
        _LOGGER.warning(
            "Ignoring %s=%r: must be seconds in (0, %g]",
            STALL_ENV,
            text,
            MAX_STALL_SECONDS,
        )
        return
    _LOGGER.warning(
        "Test hook on: SIGUSR2 blocks the event loop for %g s (%s)", seconds, STALL_ENV
    )
    loop.add_signal_handler(signal.SIGUSR2, _stall, seconds)


def _stall(seconds: float) -> None:
    _LOGGER.warning(
        "SIGUSR2: blocking the event loop for %g s on purpose (%s)", seconds, STALL_ENV
    )
    time.sleep(seconds)  # Blocking is the point: it simulates a hung loop.
    _LOGGER.warning("Event loop released after the deliberate stall")


class _Reloader:
    """Applies SIGHUP: re-reads the configuration and the certificate."""

    def __init__(
        self,
        running: Config,
        load: ConfigLoader | None,
        tls: TLSContextHolder,
        notifier: systemd.Notifier,
        status: str,
        *,
        socket_activated: bool,
    ) -> None:
        self.running = running
        self.load = load
        self.tls = tls
        self.notifier = notifier
        self.status = status
        self.socket_activated = socket_activated
        self._task: asyncio.Task[None] | None = None
        self._again = False

    def request(self) -> None:
        """Start a reload, or queue one more if a reload is running."""
        if self._task is not None and not self._task.done():
            self._again = True
            return
        self._task = asyncio.create_task(self._run(), name="bmcd-reload")

    async def close(self) -> None:
        """Stop a reload that is still running."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        self._again = True
        while self._again:
            self._again = False
            self.notifier.reloading()
            try:
                await self._reload()
            except Exception:
                _LOGGER.exception(
                    "Reload failed; bmcd keeps running with its "
                    "previous configuration and certificate"
                )
            finally:
                self.notifier.ready(self.status)

    async def _reload(self) -> None:
        _LOGGER.info("Reloading the configuration and the HTTPS certificate")
        wanted = self.running
        if self.load is not None:
            try:
                wanted = await asyncio.to_thread(self.load)
            except ConfigError as err:
                _LOGGER.error(
                    "Configuration not reloaded, bmcd keeps the running one: %s", err
                )
                wanted = self.running
        self._report_restart_needed(wanted)
        if wanted.log_level != self.running.log_level:
            set_level(wanted.log_level)
            _LOGGER.info("Log level is now %s", wanted.log_level)
            self.running = dataclasses.replace(self.running, log_level=wanted.log_level)
        await self._reload_certificate(wanted.tls)

    def _report_restart_needed(self, wanted: Config) -> None:
        changed = []
        for field in dataclasses.fields(Config):
            if field.name in _LIVE_FIELDS:
                continue
            if field.name == "listen" and self.socket_activated:
                continue  # bmcd.socket decides the addresses
            if getattr(wanted, field.name) != getattr(self.running, field.name):
                changed.append(_TOML_KEYS.get(field.name, field.name))
        for field in dataclasses.fields(TLSConfig):
            if field.name in _LIVE_TLS_FIELDS:
                continue
            if getattr(wanted.tls, field.name) != getattr(self.running.tls, field.name):
                changed.append(f"tls.{field.name}")
        if changed:
            _LOGGER.warning(
                "Changed settings %s take effect only after a restart "
                "(systemctl restart bmcd); until then bmcd keeps the "
                "running values",
                ", ".join(changed),
            )

    async def _reload_certificate(self, wanted: TLSConfig) -> None:
        holder = self.tls
        previous = (holder.cert_file, holder.key_file)
        cert_file, key_file = wanted.certificate, wanted.key
        try:
            cert_file, key_file = await ensure_certificate(
                self.running.state_dir, cert_file, key_file
            )
            await asyncio.to_thread(holder.use_files, cert_file, key_file)
        except (OSError, ValueError) as err:
            _LOGGER.error(
                "HTTPS certificate not reloaded from %s and %s (%s); bmcd "
                "keeps serving the one from %s",
                cert_file,
                key_file,
                err,
                previous[0],
            )
            return
        tls = dataclasses.replace(
            self.running.tls, certificate=wanted.certificate, key=wanted.key
        )
        self.running = dataclasses.replace(self.running, tls=tls)


def run(config: Config, reload_config: ConfigLoader | None = None) -> int:
    """Run the daemon; on a Reset, replace this process with a fresh bmcd."""
    ending = asyncio.run(serve(config, reload_config))
    if ending is Ending.RESTART:
        _LOGGER.info("Restarting bmcd")
        sys.stderr.flush()
        # Ignored signals stay ignored across exec: give the new process the
        # defaults, so that a stop request while it starts is not lost.
        for signum in _IGNORED_AT_EXIT:
            signal.signal(signum, signal.SIG_DFL)
        # Same PID: systemd keeps tracking it, and the new process sends
        # READY=1 to end the RELOADING=1 sent above.
        os.execv(sys.executable, sys.orig_argv)
    return 0

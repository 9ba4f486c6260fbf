"""Loading and validating bmcd's TOML configuration.

Every key has a default, so bmcd runs with no file at all. A bad file stops
start-up with a message that names the file, the key and what is wrong.
"""

from __future__ import annotations

import ipaddress
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_CONFIG_FILE = Path("/etc/bmcd/bmcd.toml")
DEFAULT_STATE_DIR = Path("/var/lib/bmcd")


class ConfigError(Exception):
    """The configuration cannot be used; the text says where and why."""


@dataclass(frozen=True)
class ListenAddress:
    """One address and port to listen on."""

    host: str
    port: int

    def __str__(self) -> str:
        return (
            f"[{self.host}]:{self.port}"
            if ":" in self.host
            else (f"{self.host}:{self.port}")
        )


@dataclass(frozen=True)
class TLSConfig:
    """Where the HTTPS certificate comes from."""

    certificate: Path | None = None
    key: Path | None = None
    expiry_warning_days: int = 30
    # Whether ReplaceCertificate may carry its own private key (else the key
    # must come from a GenerateCSR on this BMC and never leaves it).
    allow_key_upload: bool = False


@dataclass(frozen=True)
class Config:
    """bmcd's settings; see etc/bmcd/bmcd.toml for what each one means."""

    source: str = "<defaults>"
    listen: tuple[ListenAddress, ...] = (ListenAddress("0.0.0.0", 443),)
    http_listen: tuple[ListenAddress, ...] = ()
    state_dir: Path = DEFAULT_STATE_DIR
    max_body_bytes: int = 1024 * 1024
    shutdown_timeout: float = 10.0
    first_request_timeout: float = 30.0
    tls: TLSConfig = TLSConfig()
    product: str = "bmcd"
    vendor: str = "bmcd"
    max_sessions: int = 64
    max_sessions_per_user: int = 16
    login_failure_delay: float = 1.0
    credential_cache_seconds: float = 5.0
    log_level: str = "info"
    backends: dict[str, str] = field(default_factory=lambda: {"accounts": "embedded"})
    backend_options: dict[str, dict[str, Any]] = field(default_factory=dict)


LOG_LEVELS = ("debug", "info", "warning", "error")


def load_config(path: Path | None) -> Config:
    """Read ``path`` (or the built-in defaults when None) into a Config."""
    if path is None:
        return Config()
    try:
        with path.open("rb") as handle:
            raw = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read: {err.strerror}") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from None
    return _ConfigReader(str(path), raw).read()


class _ConfigReader:
    """Takes typed values out of the raw TOML tables, naming bad keys."""

    def __init__(self, source: str, raw: dict[str, Any]) -> None:
        self.source = source
        self.raw = raw

    def read(self) -> Config:
        known = {
            "server",
            "tls",
            "service",
            "sessions",
            "security",
            "logging",
            "backends",
        }
        for section in self.raw:
            if section not in known:
                self._fail(section, "unknown section")
        server = self._table("server")
        tls = self._table("tls")
        service = self._table("service")
        sessions = self._table("sessions")
        security = self._table("security")
        logging_ = self._table("logging")
        backends, options = self._backends()
        defaults = Config()

        self._check_keys(
            "server",
            server,
            {
                "listen",
                "http_listen",
                "state_dir",
                "max_body_bytes",
                "shutdown_timeout",
                "first_request_timeout",
            },
        )
        self._check_keys(
            "tls",
            tls,
            {"certificate", "key", "expiry_warning_days", "allow_key_upload"},
        )
        self._check_keys("service", service, {"product", "vendor"})
        self._check_keys(
            "sessions", sessions, {"max_sessions", "max_sessions_per_user"}
        )
        self._check_keys(
            "security", security, {"login_failure_delay", "credential_cache_seconds"}
        )
        self._check_keys("logging", logging_, {"level"})

        certificate = self._path("tls.certificate", tls.get("certificate"))
        key = self._path("tls.key", tls.get("key"))
        if (certificate is None) != (key is None):
            self._fail(
                "tls.certificate",
                "set both certificate and key, or "
                "neither (bmcd then makes a self-signed one)",
            )
        level = self._str("logging.level", logging_.get("level"), defaults.log_level)
        if level not in LOG_LEVELS:
            self._fail("logging.level", f"must be one of {', '.join(LOG_LEVELS)}")

        return Config(
            source=self.source,
            listen=self._addresses(
                "server.listen", server.get("listen"), defaults.listen
            ),
            http_listen=self._addresses(
                "server.http_listen", server.get("http_listen"), ()
            ),
            state_dir=self._state_dir(server.get("state_dir"), defaults.state_dir),
            max_body_bytes=self._int(
                "server.max_body_bytes",
                server.get("max_body_bytes"),
                defaults.max_body_bytes,
                1024,
                1 << 30,
            ),
            shutdown_timeout=self._number(
                "server.shutdown_timeout",
                server.get("shutdown_timeout"),
                defaults.shutdown_timeout,
                0,
                600,
            ),
            first_request_timeout=self._number(
                "server.first_request_timeout",
                server.get("first_request_timeout"),
                defaults.first_request_timeout,
                1,
                600,
            ),
            tls=TLSConfig(
                certificate,
                key,
                self._int(
                    "tls.expiry_warning_days",
                    tls.get("expiry_warning_days"),
                    defaults.tls.expiry_warning_days,
                    0,
                    3650,
                ),
                self._bool(
                    "tls.allow_key_upload",
                    tls.get("allow_key_upload"),
                    defaults.tls.allow_key_upload,
                ),
            ),
            product=self._str(
                "service.product", service.get("product"), defaults.product
            ),
            vendor=self._str("service.vendor", service.get("vendor"), defaults.vendor),
            max_sessions=self._int(
                "sessions.max_sessions",
                sessions.get("max_sessions"),
                defaults.max_sessions,
                1,
                10000,
            ),
            max_sessions_per_user=self._int(
                "sessions.max_sessions_per_user",
                sessions.get("max_sessions_per_user"),
                defaults.max_sessions_per_user,
                1,
                10000,
            ),
            login_failure_delay=self._number(
                "security.login_failure_delay",
                security.get("login_failure_delay"),
                defaults.login_failure_delay,
                0,
                30,
            ),
            credential_cache_seconds=self._number(
                "security.credential_cache_seconds",
                security.get("credential_cache_seconds"),
                defaults.credential_cache_seconds,
                0,
                300,
            ),
            log_level=level,
            backends=backends,
            backend_options=options,
        )

    def _fail(self, key: str, problem: str) -> None:
        raise ConfigError(f"{self.source}: {key}: {problem}")

    def _table(self, name: str) -> dict[str, Any]:
        value = self.raw.get(name, {})
        if not isinstance(value, dict):
            self._fail(name, "must be a table")
        return dict(value)

    def _check_keys(
        self, section: str, table: dict[str, Any], allowed: set[str]
    ) -> None:
        for key in table:
            if key not in allowed:
                self._fail(f"{section}.{key}", "unknown key")

    def _backends(self) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
        table = self._table("backends")
        chosen = dict(Config().backends)
        options: dict[str, dict[str, Any]] = {}
        for key, value in table.items():
            if isinstance(value, str):
                chosen[key] = value
            elif isinstance(value, dict):
                # [backends.<name>] holds that backend's own options.
                options[key] = value
            else:
                self._fail(f"backends.{key}", "must be a backend name or a table")
        return chosen, options

    def _str(self, key: str, value: Any, default: str) -> str:
        if value is None:
            return default
        if not isinstance(value, str) or not value:
            self._fail(key, "must be a non-empty string")
        return str(value)

    def _bool(self, key: str, value: Any, default: bool) -> bool:
        if value is None:
            return default
        if not isinstance(value, bool):
            self._fail(key, "must be true or false")
        return bool(value)

    def _path(self, key: str, value: Any) -> Path | None:
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            self._fail(key, "must be a path string")
        return Path(value)

    def _state_dir(self, value: Any, default: Path) -> Path:
        if value is None:
            return default
        if value == "":
            # An empty path would silently mean the default; say so instead.
            self._fail("server.state_dir", "must not be empty")
        return self._path("server.state_dir", value) or default

    def _int(self, key: str, value: Any, default: int, low: int, high: int) -> int:
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self._fail(key, "must be an integer")
        if not low <= value <= high:
            self._fail(key, f"must be between {low} and {high}, not {value}")
        return int(value)

    def _number(
        self, key: str, value: Any, default: float, low: float, high: float
    ) -> float:
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            self._fail(key, "must be a number")
        if not low <= value <= high:
            self._fail(key, f"must be between {low} and {high}, not {value}")
        return float(value)

    def _addresses(
        self, key: str, value: Any, default: tuple[ListenAddress, ...]
    ) -> tuple[ListenAddress, ...]:
        if value is None:
            return default
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            self._fail(key, 'must be a list of "ADDRESS:PORT" strings')
        result = []
        for item in value:
            try:
                result.append(parse_listen(item))
            except ValueError as err:
                self._fail(key, str(err))
        return tuple(result)


def parse_listen(text: object) -> ListenAddress:
    """Parse "ADDR:PORT" or "[V6ADDR]:PORT"; raise ValueError if malformed."""
    if not isinstance(text, str):
        raise ValueError(f'{text!r} is not an "ADDRESS:PORT" string')
    if text.startswith("["):
        host, sep, port_text = text[1:].partition("]:")
    else:
        host, sep, port_text = text.rpartition(":")
        if ":" in host:
            raise ValueError(
                f"write an IPv6 address in brackets: [ADDRESS]:PORT, not {text!r}"
            )
    if not sep or not host:
        raise ValueError(f"{text!r} is not ADDRESS:PORT")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if host != "localhost":
            raise ValueError(f"{host!r} in {text!r} is not an IP address") from None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"port in {text!r} must be 1-65535")
    return ListenAddress(host, int(port_text))

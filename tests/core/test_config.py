"""bmcd.core.config: defaults, the documented file, and errors that say where."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest

from bmcd.core import config as config_module
from bmcd.core.config import (
    Config,
    ConfigError,
    ListenAddress,
    load_config,
    parse_listen,
)

REPO = Path(__file__).resolve().parents[2]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bmcd.toml"
    path.write_text(text)
    return path


def _without_source(config: Config) -> Config:
    return dataclasses.replace(config, source="")


def test_no_file_means_defaults() -> None:
    assert load_config(None) == Config()


def test_empty_file_means_defaults(tmp_path: Path) -> None:
    path = _write(tmp_path, "")
    config = load_config(path)
    assert config.source == str(path)
    assert _without_source(config) == _without_source(Config())


def test_every_key_documented_with_its_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    documented = (REPO / "etc" / "bmcd" / "bmcd.toml").read_text()
    # Uncomment "#key = value" lines (not prose, not example tables).
    active = re.sub(r"(?m)^#(\w+ = )", r"\1", documented)
    accepted: dict[str, set[str]] = {}
    check_keys = config_module._ConfigReader._check_keys

    def spy(self: Any, section: str, table: dict[str, Any], allowed: set[str]) -> None:
        accepted[section] = set(allowed)
        check_keys(self, section, table, allowed)

    monkeypatch.setattr(config_module._ConfigReader, "_check_keys", spy)
    config = load_config(_write(tmp_path, active))
    assert _without_source(config) == _without_source(Config())

    keys = set(re.findall(r"(?m)^#?(\w+) = ", documented))
    for section, allowed in accepted.items():
        missing = allowed - keys
        assert not missing, f"[{section}] keys not in etc/bmcd/bmcd.toml: {missing}"


def test_development_config() -> None:
    config = load_config(REPO / "etc" / "dev" / "bmcd.toml")
    assert config.listen
    for address in config.listen:
        assert address.host == "127.0.0.1"
        assert address.port >= 1024
    assert not config.state_dir.is_absolute()
    assert config.http_listen == ()


def test_full_file(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
[server]
listen = ["127.0.0.1:8443", "[::1]:8443"]
http_listen = "127.0.0.1:8080"
state_dir = "/tmp/bmcd-state"
max_body_bytes = 4096
shutdown_timeout = 2

[tls]
certificate = "/etc/ssl/bmc.pem"
key = "/etc/ssl/bmc.key"

[service]
product = "Board"
vendor = "Acme"

[sessions]
max_sessions = 10

[security]
login_failure_delay = 0
credential_cache_seconds = 0

[logging]
level = "debug"

[backends]
accounts = "other"

[backends.other]
socket = "/run/x"
""",
    )
    config = load_config(path)
    assert config.listen == (
        ListenAddress("127.0.0.1", 8443),
        ListenAddress("::1", 8443),
    )
    assert config.http_listen == (ListenAddress("127.0.0.1", 8080),)
    assert config.state_dir == Path("/tmp/bmcd-state")
    assert config.max_body_bytes == 4096
    assert config.shutdown_timeout == 2.0
    assert config.tls.certificate == Path("/etc/ssl/bmc.pem")
    assert config.tls.key == Path("/etc/ssl/bmc.key")
    assert (config.product, config.vendor) == ("Board", "Acme")
    assert config.max_sessions == 10
    assert config.login_failure_delay == 0.0
    assert config.credential_cache_seconds == 0.0
    assert config.log_level == "debug"
    assert config.backends == {"accounts": "other"}
    assert config.backend_options == {"other": {"socket": "/run/x"}}


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ("[server]\nbogus = 1\n", "server.bogus", "unknown key"),
        ("[nonsense]\nx = 1\n", "nonsense", "unknown section"),
        ("server = 5\n", "server", "must be a table"),
        (
            '[server]\nmax_body_bytes = "big"\n',
            "server.max_body_bytes",
            "must be an integer",
        ),
        ("[server]\nmax_body_bytes = 10\n", "server.max_body_bytes", "between"),
        (
            "[server]\nmax_body_bytes = true\n",
            "server.max_body_bytes",
            "must be an integer",
        ),
        ('[server]\nlisten = ["nowhere"]\n', "server.listen", "nowhere"),
        ('[server]\nlisten = ["127.0.0.1:99999"]\n', "server.listen", "port"),
        (
            '[server]\nlisten = ["example.com:443"]\n',
            "server.listen",
            "not an IP address",
        ),
        ("[server]\nlisten = 443\n", "server.listen", "ADDRESS:PORT"),
        ("[server]\nstate_dir = 5\n", "server.state_dir", "path"),
        (
            '[server]\nshutdown_timeout = "soon"\n',
            "server.shutdown_timeout",
            "must be a number",
        ),
        ('[tls]\ncertificate = "/x.pem"\n', "tls.certificate", "both"),
        ('[service]\nproduct = ""\n', "service.product", "non-empty string"),
        ("[sessions]\nmax_sessions = 0\n", "sessions.max_sessions", "between"),
        (
            "[security]\nlogin_failure_delay = -1\n",
            "security.login_failure_delay",
            "between",
        ),
        ('[logging]\nlevel = "loud"\n', "logging.level", "must be one of"),
        ("[backends]\naccounts = 5\n", "backends.accounts", "backend name"),
    ],
)
def test_errors_name_file_key_and_problem(
    tmp_path: Path, text: str, key: str, problem: str
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: {key}: "), message
    assert problem in message


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(ConfigError, match=f"^{re.escape(str(path))}: .*not found"):
        load_config(path)


def test_not_toml(tmp_path: Path) -> None:
    path = _write(tmp_path, "[server\nlisten = 1\n")
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: not valid TOML")
    assert "line 1" in message


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path)  # a directory


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:443", ListenAddress("127.0.0.1", 443)),
        ("0.0.0.0:8443", ListenAddress("0.0.0.0", 8443)),
        ("[::]:443", ListenAddress("::", 443)),
        ("[fe80::1]:1", ListenAddress("fe80::1", 1)),
        ("localhost:8443", ListenAddress("localhost", 8443)),
    ],
)
def test_parse_listen(text: str, expected: ListenAddress) -> None:
    assert parse_listen(text) == expected
    assert parse_listen(str(expected)) == expected


@pytest.mark.parametrize(
    "text",
    [
        "443",
        ":443",
        "127.0.0.1:",
        "127.0.0.1:0",
        "127.0.0.1:x",
        "[::1]443",
        "[::1]:",
        "::1:443",
        443,
    ],
)
def test_parse_listen_refuses(text: object) -> None:
    with pytest.raises(ValueError):
        parse_listen(text)

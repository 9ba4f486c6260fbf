"""The ``[backends.openbmc]`` and ``[backends.accountsservice]`` config tables."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# bmcd's Redfish roles, most privileged first (a user in several role
# groups gets the first).
ROLES = ("Administrator", "Operator", "ReadOnly")
DEFAULT_HELPER_SOCKET = "/run/bmcd/helper.sock"


class OptionsError(ValueError):
    """A backend option is wrong; the text names the table and key."""


@dataclass(frozen=True)
class CommonOptions:
    """Options both host account backends take.

    Attributes:
        roles: Redfish role -> host group (AccountsService) or OpenBMC
            privilege (OpenBMC).
        pam_service: the PAM service bmcd authenticates with.
        pam_confdir: a directory with that service file instead of
            /etc/pam.d (pam_start_confdir).
        pam_threads: threads PAM may use at once (failed logins hold one for
            PAM's fail delay).
        helper_socket: the root helper's socket; None: bmcd is root and does
            the helper's work itself.
        faillock_conf: the pam_faillock settings file bmcd writes.
        faillock_dir: pam_faillock's tally directory.
        dbus_address: a D-Bus address; None: the system bus.
        dbus_timeout: seconds to wait for a D-Bus answer.
        cache_seconds: how long an account's D-Bus state is reused by the
            per-request account check.
        password_hash: "yescrypt" or "sha512", for hashes bmcd makes.
        min_uid: lowest uid the in-process helper work may change.
        allow_users: users below ``min_uid`` it may change anyway.
    """

    roles: Mapping[str, str]
    pam_service: str
    pam_confdir: Path | None
    pam_threads: int
    helper_socket: Path | None
    faillock_conf: Path
    faillock_dir: Path
    dbus_address: str | None
    dbus_timeout: float
    cache_seconds: float
    password_hash: str
    min_uid: int
    allow_users: tuple[str, ...]


class Reader:
    """Typed values out of one backend's table, naming the bad key."""

    def __init__(self, table: str, raw: Mapping[str, Any]) -> None:
        self.table = table
        self.raw = dict(raw)
        self.used: set[str] = set()

    def fail(self, key: str, problem: str) -> OptionsError:
        """The error to raise for ``key``."""
        return OptionsError(f"[backends.{self.table}] {key}: {problem}")

    def get(self, key: str, kind: type | tuple[type, ...], default: Any) -> Any:
        """The value of ``key`` if it has type ``kind``; else ``default``."""
        self.used.add(key)
        value = self.raw.get(key, default)
        if value is default:
            return value
        if isinstance(value, bool) and bool not in (
            kind if isinstance(kind, tuple) else (kind,)
        ):
            raise self.fail(key, "has the wrong type")
        if not isinstance(value, kind):
            raise self.fail(key, "has the wrong type")
        return value

    def path(self, key: str, default: Path | None) -> Path | None:
        """An absolute path, or None for an empty string."""
        value = self.get(key, str, None)
        if value is None:
            return default
        if value == "":
            return None
        if not value.startswith("/"):
            raise self.fail(key, "must be an absolute path")
        return Path(value)

    def number(self, key: str, default: float, low: float, high: float) -> float:
        """A number in [low, high]."""
        value = self.get(key, (int, float), default)
        if not low <= value <= high:
            raise self.fail(key, f"must be between {low} and {high}")
        return float(value)

    def roles(self, default: Mapping[str, str]) -> dict[str, str]:
        """The role table: every bmcd role to one non-empty name."""
        table = self.get("roles", dict, None)
        roles = dict(default)
        if table is not None:
            for role, name in table.items():
                if role not in ROLES:
                    raise self.fail(
                        f"roles.{role}", f"not a role; use {', '.join(ROLES)}"
                    )
                if not isinstance(name, str) or not name:
                    raise self.fail(f"roles.{role}", "must be a non-empty string")
                roles[role] = name
        if len(set(roles.values())) != len(roles):
            raise self.fail("roles", "two roles map to the same name")
        return roles

    def strings(self, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
        """A list of non-empty strings."""
        value = self.get(key, list, None)
        if value is None:
            return default
        if not all(isinstance(item, str) and item for item in value):
            raise self.fail(key, "must be a list of non-empty strings")
        return tuple(value)

    def check_unknown(self) -> None:
        """Refuse keys nobody read (typos)."""
        unknown = sorted(set(self.raw) - self.used)
        if unknown:
            raise self.fail(unknown[0], "unknown option")


def common(
    reader: Reader, state_dir: Path, default_roles: Mapping[str, str]
) -> CommonOptions:
    """Read the options both backends share."""
    helper = reader.path("helper_socket", Path(DEFAULT_HELPER_SOCKET))
    password_hash = reader.get("password_hash", str, "yescrypt")
    if password_hash not in ("yescrypt", "sha512"):
        raise reader.fail("password_hash", 'must be "yescrypt" or "sha512"')
    faillock_conf = reader.path("faillock_conf", state_dir / "faillock.conf")
    faillock_dir = reader.path("faillock_dir", state_dir / "faillock")
    if faillock_conf is None or faillock_dir is None:
        raise reader.fail(
            "faillock_conf", "faillock_conf and faillock_dir may not be empty"
        )
    address = reader.get("dbus_address", str, "") or None
    return CommonOptions(
        roles=reader.roles(default_roles),
        pam_service=reader.get("pam_service", str, "bmcd"),
        pam_confdir=reader.path("pam_confdir", None),
        pam_threads=int(reader.number("pam_threads", 8, 1, 64)),
        helper_socket=helper,
        faillock_conf=faillock_conf,
        faillock_dir=faillock_dir,
        dbus_address=address,
        dbus_timeout=reader.number("dbus_timeout", 10.0, 0.1, 120),
        cache_seconds=reader.number("cache_seconds", 2.0, 0, 60),
        password_hash=password_hash,
        min_uid=int(reader.number("min_uid", 1000, 0, 2**31)),
        allow_users=reader.strings("allow_users", ()),
    )

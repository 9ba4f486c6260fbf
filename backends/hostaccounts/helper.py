"""bmcd's root helper: the few account changes bmcd itself may not make.

Run as root, separately from bmcd (which runs unprivileged)::

    python -m bmcd_backends.hostaccounts.helper --socket /run/bmcd/helper.sock \\
        --allowed-group bmcd --group bmcd-admin --group bmcd-operator \\
        --group bmcd-readonly

It listens on a Unix socket, accepts connections only from the bmcd user or
group (SO_PEERCRED), and serves one JSON request per connection, from a fixed
list; every field is validated and anything else is refused. The users it
touches must be regular users (uid >= --min-uid, or named by --allow-user)
that already belong to one of the role groups named by --group; a user may
join a role group only while it has no usable password (just created).

Request: one line ``{"op": NAME, ...}``. Reply: one line ``{"ok": true}`` or
``{"ok": false, "error": CODE, "message": TEXT}`` where CODE is one of
``invalid`` (malformed or not allowed), ``denied`` (peer not allowed),
``not_found`` (no such user), ``rejected`` (PAM refused the password),
``failed`` (the command failed).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import grp
import json
import logging
import os
import pwd
import re
import shutil
import signal
import socket
import socketserver
import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import hostdb, pam

_LOGGER = logging.getLogger(__name__)

MAX_REQUEST = 16 * 1024
_TIMEOUT = 30.0
# A portable user name (what useradd accepts by default, plus upper case
# and "." for OpenBMC and AccountsService names).
_USER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}$")
# A crypt(3) hash bmcd makes: yescrypt, SHA-512 or SHA-256. No ":" or "\n",
# which would break chpasswd's input.
_HASH_RE = re.compile(r"^\$(y|6|5)\$[A-Za-z0-9./$=]{8,200}$")
_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}


class RequestError(Exception):
    """A request that is refused; ``code`` is the reply's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class HelperConfig:
    """What the helper may do, from its command line."""

    groups: frozenset[str]
    min_uid: int = 1000
    allow_users: frozenset[str] = frozenset()
    pam_service: str = "bmcd"
    pam_confdir: Path | None = None
    faillock_dir: Path | None = None
    commands: dict[str, str] = field(default_factory=dict)


def _command(name: str) -> str:
    path = shutil.which(name, path=_ENV["PATH"])
    if path is None:
        raise RequestError("failed", f"{name} is not installed")
    return path


class Operations:
    """The validated requests and what each one runs."""

    def __init__(
        self,
        config: HelperConfig,
        run: Callable[[list[str], str | None], None] | None = None,
    ) -> None:
        self.config = config
        self._run = run or self._run_command
        self._ops: dict[str, Callable[[dict[str, Any]], None]] = {
            "set_password_hash": self._set_password_hash,
            "change_password": self._change_password,
            "set_password_expired": self._set_password_expired,
            "add_to_group": self._add_to_group,
            "remove_from_group": self._remove_from_group,
            "set_enabled": self._set_enabled,
            "reset_failures": self._reset_failures,
        }

    def handle(self, request: object) -> None:
        """Validate and carry out one request; RequestError if refused."""
        if not isinstance(request, dict):
            raise RequestError("invalid", "request must be a JSON object")
        op = request.get("op")
        handler = self._ops.get(op) if isinstance(op, str) else None
        if handler is None:
            raise RequestError("invalid", f"unknown op {op!r}")
        handler(request)

    # Field checks.

    @staticmethod
    def _fields(request: dict[str, Any], **types: type) -> list[Any]:
        allowed = {"op", *types}
        extra = set(request) - allowed
        if extra:
            raise RequestError("invalid", f"unexpected fields {sorted(extra)}")
        values = []
        for name, kind in types.items():
            value = request.get(name)
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise RequestError("invalid", f"{name} must be {kind.__name__}")
            values.append(value)
        return values

    def _user(self, name: str, *, adopting: bool = False) -> pwd.struct_passwd:
        if not _USER_RE.match(name):
            raise RequestError("invalid", "malformed user name")
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            raise RequestError("not_found", f"no user {name}") from None
        if entry.pw_uid < self.config.min_uid and name not in self.config.allow_users:
            raise RequestError("invalid", f"{name} is a system user")
        host_user = hostdb.lookup(name, self.config.groups)
        if host_user is not None and host_user.groups:
            return entry
        if adopting:
            # A user with a usable password is someone's existing account:
            # never let bmcd take it over by adding it to a role group.
            shadow = hostdb.shadow(name)
            if shadow is not None and shadow.password_locked():
                return entry
            raise RequestError(
                "invalid",
                f"{name} has a password and no bmcd role group: not a bmcd account",
            )
        raise RequestError("invalid", f"{name} is not in a bmcd role group")

    def _group(self, name: str) -> str:
        if name not in self.config.groups:
            raise RequestError("invalid", f"{name!r} is not a bmcd role group")
        return name

    # Operations.

    def _set_password_hash(self, request: dict[str, Any]) -> None:
        user, hashed = self._fields(request, user=str, hash=str)
        self._user(user)
        if not _HASH_RE.match(hashed):
            raise RequestError(
                "invalid", "hash is not a yescrypt, SHA-512 or SHA-256 crypt(3) hash"
            )
        self._run([_command("chpasswd"), "-e"], f"{user}:{hashed}\n")

    def _change_password(self, request: dict[str, Any]) -> None:
        user, password = self._fields(request, user=str, password=str)
        self._user(user)
        if not 0 < len(password) <= 1024 or "\0" in password:
            raise RequestError("invalid", "password length out of range")
        result = pam.change_password(
            self.config.pam_service, user, password, confdir=self.config.pam_confdir
        )
        if result.status == pam.PamStatus.SUCCESS:
            return
        detail = "; ".join(result.messages) or result.status.name
        if result.status in (
            pam.PamStatus.AUTHTOK_ERR,
            pam.PamStatus.AUTHTOK_RECOVERY_ERR,
        ):
            raise RequestError("rejected", detail)
        raise RequestError("failed", f"pam_chauthtok: {detail}")

    def _set_password_expired(self, request: dict[str, Any]) -> None:
        user, expired = self._fields(request, user=str, expired=bool)
        self._user(user)
        day = "0" if expired else datetime.date.today().isoformat()
        self._run([_command("chage"), "-d", day, "--", user], None)

    def _add_to_group(self, request: dict[str, Any]) -> None:
        user, group = self._fields(request, user=str, group=str)
        self._group(group)
        self._user(user, adopting=True)
        self._run([_command("gpasswd"), "-a", user, group], None)

    def _remove_from_group(self, request: dict[str, Any]) -> None:
        user, group = self._fields(request, user=str, group=str)
        self._group(group)
        self._user(user)
        try:
            members = grp.getgrnam(group).gr_mem
        except KeyError:
            raise RequestError("failed", f"group {group} does not exist") from None
        if user in members:
            self._run([_command("gpasswd"), "-d", user, group], None)

    def _set_enabled(self, request: dict[str, Any]) -> None:
        user, enabled = self._fields(request, user=str, enabled=bool)
        self._user(user)
        # -L/-U lock the password, -e expires the account (as AccountsService).
        args = ["-U", "-e", ""] if enabled else ["-L", "-e", "1"]
        self._run([_command("usermod"), *args, "--", user], None)

    def _reset_failures(self, request: dict[str, Any]) -> None:
        (user,) = self._fields(request, user=str)
        self._user(user)
        if self.config.faillock_dir is None:
            raise RequestError("invalid", "the helper has no --faillock-dir")
        self._run(
            [
                _command("faillock"),
                "--dir",
                str(self.config.faillock_dir),
                "--user",
                user,
                "--reset",
            ],
            None,
        )

    @staticmethod
    def _run_command(argv: list[str], stdin: str | None) -> None:
        try:
            done = subprocess.run(
                argv,
                input=stdin,
                env=_ENV,
                text=True,
                capture_output=True,
                timeout=_TIMEOUT,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as err:
            raise RequestError("failed", f"{Path(argv[0]).name}: {err}") from err
        if done.returncode != 0:
            message = (done.stderr or done.stdout).strip().splitlines()
            raise RequestError(
                "failed",
                f"{Path(argv[0]).name} exited "
                f"{done.returncode}: "
                f"{message[-1] if message else ''}",
            )


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end of a Unix socket."""
    data = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", data)
    return pid, uid, gid


class _Handler(socketserver.StreamRequestHandler):
    server: HelperServer

    def handle(self) -> None:
        self.connection.settimeout(_TIMEOUT)
        try:
            pid, uid, gid = peer_credentials(self.connection)
        except OSError as err:
            _LOGGER.warning("Can't read the peer's credentials: %s", err)
            return
        # Read the request first even from a peer that will be refused, so
        # that it gets the refusal rather than a broken pipe.
        try:
            line = self.rfile.readline(MAX_REQUEST + 1)
        except OSError:
            return
        if not self.server.peer_allowed(uid, gid):
            _LOGGER.warning(
                "Refused a connection from pid %d uid %d gid %d: "
                "not bmcd's user or group",
                pid,
                uid,
                gid,
            )
            self._reply({"ok": False, "error": "denied", "message": "peer not allowed"})
            return
        self._reply(self.server.answer(line, pid))

    def _reply(self, reply: dict[str, Any]) -> None:
        with contextlib.suppress(OSError):
            self.wfile.write(json.dumps(reply).encode() + b"\n")


class HelperServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """The socket server; one thread per connection."""

    daemon_threads = True

    def __init__(
        self,
        path: Path,
        operations: Operations,
        allowed_uids: frozenset[int],
        allowed_gids: frozenset[int],
    ) -> None:
        self.operations = operations
        self.allowed_uids = allowed_uids
        self.allowed_gids = allowed_gids
        path.unlink(missing_ok=True)
        super().__init__(str(path), _Handler)
        # Only bmcd's group may connect; SO_PEERCRED is checked anyway.
        os.chmod(path, 0o660)
        if allowed_gids:
            os.chown(path, -1, min(allowed_gids))

    def peer_allowed(self, uid: int, gid: int) -> bool:
        """Only the bmcd user or group (by SO_PEERCRED) may ask."""
        return uid in self.allowed_uids or gid in self.allowed_gids

    def answer(self, line: bytes, pid: int) -> dict[str, Any]:
        """The reply to one request line."""
        if len(line) > MAX_REQUEST:
            return {"ok": False, "error": "invalid", "message": "too long"}
        request: object = None
        try:
            request = json.loads(line)
            self.operations.handle(request)
        except ValueError:
            return {"ok": False, "error": "invalid", "message": "not JSON"}
        except RequestError as err:
            level = (
                logging.WARNING if err.code in ("invalid", "denied") else (logging.INFO)
            )
            _LOGGER.log(
                level,
                "Request %s from pid %d refused (%s): %s",
                _op_name(request),
                pid,
                err.code,
                err,
            )
            return {"ok": False, "error": err.code, "message": str(err)}
        except Exception:
            _LOGGER.exception("Request %s from pid %d failed", _op_name(request), pid)
            return {"ok": False, "error": "failed", "message": "internal error"}
        _LOGGER.info("Done for pid %d: %s", pid, _op_name(request))
        return {"ok": True}


def _op_name(request: object) -> str:
    return str(request.get("op")) if isinstance(request, dict) else "?"


def _ids(
    users: Sequence[str], groups: Sequence[str]
) -> tuple[frozenset[int], frozenset[int]]:
    uids = set()
    gids = set()
    for user in users:
        uids.add(pwd.getpwnam(user).pw_uid)
    for group in groups:
        gids.add(grp.getgrnam(group).gr_gid)
    return frozenset(uids), frozenset(gids)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The helper's command line."""
    parser = argparse.ArgumentParser(
        prog="python -m bmcd_backends.hostaccounts.helper",
        description="bmcd's root helper for host account changes",
    )
    parser.add_argument(
        "--socket", required=True, type=Path, help="Unix socket to listen on"
    )
    parser.add_argument(
        "--allowed-group",
        action="append",
        default=[],
        help="group whose processes may connect (repeatable)",
    )
    parser.add_argument(
        "--allowed-user",
        action="append",
        default=[],
        help="user whose processes may connect (repeatable)",
    )
    parser.add_argument(
        "--group",
        action="append",
        default=[],
        required=True,
        help="a bmcd role group the helper may manage (repeatable)",
    )
    parser.add_argument(
        "--min-uid",
        type=int,
        default=1000,
        help="lowest uid of a user the helper may change",
    )
    parser.add_argument(
        "--allow-user",
        action="append",
        default=[],
        help="a user below --min-uid that may be changed anyway, e.g. OpenBMC's root",
    )
    parser.add_argument("--pam-service", default="bmcd")
    parser.add_argument("--pam-confdir", type=Path, default=None)
    parser.add_argument("--faillock-dir", type=Path, default=None)
    parser.add_argument(
        "--log-level", default="info", choices=("debug", "info", "warning", "error")
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the helper until SIGTERM or SIGINT."""
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not args.allowed_group and not args.allowed_user:
        _LOGGER.error("Give --allowed-group or --allowed-user: nobody could connect")
        return 2
    try:
        uids, gids = _ids(args.allowed_user, args.allowed_group)
    except KeyError as err:
        _LOGGER.error("Unknown user or group %s in --allowed-user/--allowed-group", err)
        return 2
    config = HelperConfig(
        groups=frozenset(args.group),
        min_uid=args.min_uid,
        allow_users=frozenset(args.allow_user),
        pam_service=args.pam_service,
        pam_confdir=args.pam_confdir,
        faillock_dir=args.faillock_dir,
    )
    missing = hostdb.missing_groups(config.groups)
    if missing:
        _LOGGER.warning(
            "Role groups %s do not exist; create them with groupadd --system",
            ", ".join(missing),
        )
    server = HelperServer(args.socket, Operations(config), uids, gids)

    def stop(_signum: int, _frame: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    _LOGGER.info("bmcd helper listening on %s", args.socket)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        args.socket.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

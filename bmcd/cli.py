"""The ``bmcd`` command: ``bmcd serve`` and ``bmcd account add``."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import getpass
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from bmcd import __version__
from bmcd.core.config import (
    DEFAULT_CONFIG_FILE,
    Config,
    ConfigError,
    load_config,
    parse_listen,
)
from bmcd.core.logs import setup_logging
from bmcd.core.plugins import PluginError
from bmcd.core.privileges import ROLES
from bmcd.core.store import StoreError, prepare_state_dir

_LOGGER = logging.getLogger(__name__)

# The state holds password hashes and private keys: whatever bmcd creates is
# private to its user unless it asks for a mode (server.crt is 0644 on purpose).
PRIVATE_UMASK = 0o077


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bmcd", description="Redfish management daemon"
    )
    parser.add_argument("--version", action="version", version=__version__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the daemon")
    _common(serve)
    serve.add_argument(
        "--listen",
        action="append",
        metavar="ADDR:PORT",
        help="HTTPS address to listen on (repeatable); overrides server.listen",
    )

    account = commands.add_parser("account", help="manage accounts offline")
    account_commands = account.add_subparsers(dest="account_command", required=True)
    add = account_commands.add_parser("add", help="create an account")
    add.add_argument("name", help="user name")
    add.add_argument("--role", required=True, choices=sorted(ROLES))
    add.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of stdin",
    )
    _common(add)
    return parser


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help=f"config file (default {DEFAULT_CONFIG_FILE} if it "
        "exists, else built-in defaults)",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        metavar="DIR",
        help="state directory; overrides server.state_dir",
    )


def _config(args: argparse.Namespace) -> Config:
    path = args.config
    if path is None and DEFAULT_CONFIG_FILE.exists():
        path = DEFAULT_CONFIG_FILE
    config = load_config(path)
    overrides: dict[str, object] = {}
    if args.state_dir is not None:
        overrides["state_dir"] = args.state_dir
    if getattr(args, "listen", None):
        try:
            overrides["listen"] = tuple(parse_listen(a) for a in args.listen)
        except ValueError as err:
            raise ConfigError(f"--listen: {err}") from None
    return dataclasses.replace(config, **overrides)  # type: ignore[arg-type]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``bmcd`` console script."""
    args = _parser().parse_args(argv)
    previous_umask = os.umask(PRIVATE_UMASK)
    try:
        return _run(args)
    finally:
        os.umask(previous_umask)  # for callers in the same process (tests)


def _run(args: argparse.Namespace) -> int:
    try:
        config = _config(args)
    except ConfigError as err:
        print(f"bmcd: {err}", file=sys.stderr)
        return 2
    # A one-shot command reports its result itself; only problems are logged.
    setup_logging(config.log_level if args.command == "serve" else "warning")
    try:
        if args.command == "serve":
            from bmcd.daemon import run

            # SIGHUP re-reads the same file with the same command-line overrides.
            return run(config, lambda: _config(args))
        return _account_add(config, args)
    except (StoreError, PluginError, ConfigError) as err:
        _LOGGER.critical("Cannot start: %s", err)
        return 1
    except KeyboardInterrupt:
        return 130


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    try:
        first = getpass.getpass("Password: ")
        repeated = getpass.getpass("Repeat password: ")
    except EOFError:
        raise ConfigError(
            "no password given (no terminal to ask on?): use --password-stdin"
        ) from None
    if repeated != first:
        raise ConfigError("the passwords differ")
    return first


def _account_add(config: Config, args: argparse.Namespace) -> int:
    from bmcd.core.errors import RedfishError
    from bmcd.core.messages import message_text
    from bmcd.core.services import add_account

    password = _read_password(args.password_stdin)
    prepare_state_dir(config.state_dir)
    try:
        asyncio.run(add_account(config, args.name, password, args.role))
    except RedfishError as err:
        reasons = "; ".join(message_text(m) for m in err.messages)
        print(f"bmcd: account {args.name} not created: {reasons}", file=sys.stderr)
        return 1
    print(f"Account {args.name} created with role {args.role}")
    return 0

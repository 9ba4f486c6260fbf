"""The first Administrator when bmcd starts with no account at all.

bmcd has no built-in password. With no account, it creates ``admin`` with a
random password, writes it to a file only bmcd's user can read, and marks it
PasswordChangeRequired so the first login must replace it.
"""

from __future__ import annotations

import logging
import secrets
from pathlib import Path

from bmcd.core.accounts import ADMINISTRATOR, AccountManager
from bmcd.core.errors import RedfishError
from bmcd.core.files import write_private

_LOGGER = logging.getLogger(__name__)

INITIAL_USER = "admin"
PASSWORD_FILE = "initial-admin-password"


async def ensure_administrator(accounts: AccountManager, state_dir: Path) -> None:
    """Create the first Administrator if there are no accounts."""
    try:
        if await accounts.list():
            return
        password = secrets.token_urlsafe(12)
        path = state_dir / PASSWORD_FILE
        # Written before the account exists: a crash in between leaves a file
        # that the next start overwrites, never an account nobody can log in to.
        write_private(path, f"{INITIAL_USER}:{password}\n".encode())
        await accounts.create(
            INITIAL_USER, password, ADMINISTRATOR, password_change_required=True
        )
    except RedfishError as err:
        # A host account backend whose service is down, or whose host already
        # has a user named admin: serve anyway, say what to do.
        _LOGGER.error(
            "Can't make sure an Administrator exists (%s); create "
            "one with 'bmcd account add NAME --role Administrator'",
            err,
        )
        return
    _LOGGER.warning(
        "No accounts existed: created %s with a one-time password "
        "in %s; the first login must change it",
        INITIAL_USER,
        path,
    )

"""The host's user, group and shadow databases, read through NSS.

Python's ``spwd`` module is gone from Python 3.13, so the shadow entry is
read with glibc's getspnam_r through ctypes. bmcd reads shadow through its
membership of the ``shadow`` group; without it, shadow-based state (expiry,
``passwd -l``) is unknown and reported as such once. Every function blocks
on file I/O: call them from a thread.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import grp
import logging
import pwd
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

_LOGGER = logging.getLogger(__name__)

_DAY = 86400
# Debian's "never" for password ageing fields; -1 means "not set".
_NO_AGEING = (-1, 99999)


class _Spwd(ctypes.Structure):
    _fields_ = [
        ("sp_namp", ctypes.c_char_p),
        ("sp_pwdp", ctypes.c_char_p),
        ("sp_lstchg", ctypes.c_long),
        ("sp_min", ctypes.c_long),
        ("sp_max", ctypes.c_long),
        ("sp_warn", ctypes.c_long),
        ("sp_inact", ctypes.c_long),
        ("sp_expire", ctypes.c_long),
        ("sp_flag", ctypes.c_ulong),
    ]


@dataclass(frozen=True)
class Shadow:
    """The fields of a shadow entry that bmcd acts on (days since 1970)."""

    password: str
    last_change: int
    max_days: int
    expire: int

    def password_locked(self) -> bool:
        """No usable password: ``passwd -l``, ``usermod -L`` or never set."""
        return self.password.startswith(("!", "*")) or self.password == ""

    def account_expired(self, today: int) -> bool:
        """The account's expiry date has passed (``usermod -e``)."""
        return self.expire not in (-1, 0) and self.expire <= today

    def must_change(self, today: int) -> bool:
        """The password must be changed at the next login (pam_unix's rule)."""
        if self.last_change == 0:
            return True
        if self.max_days in _NO_AGEING or self.last_change < 0:
            return False
        return self.last_change + self.max_days < today

    def changed_at(self) -> datetime | None:
        """When the password was last set, to the day."""
        if self.last_change <= 0:
            return None
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(days=self.last_change)


def today() -> int:
    """Days since 1970-01-01, as shadow counts them."""
    return int(time.time() // _DAY)


_libc: ctypes.CDLL | None = None
_libc_lock = threading.Lock()
_warned_unreadable = False


def _getspnam_r() -> Any:
    global _libc
    with _libc_lock:
        if _libc is None:
            _libc = ctypes.CDLL(
                ctypes.util.find_library("c") or "libc.so.6", use_errno=True
            )
            _libc.getspnam_r.restype = ctypes.c_int
            _libc.getspnam_r.argtypes = [
                ctypes.c_char_p,
                ctypes.POINTER(_Spwd),
                ctypes.c_char_p,
                ctypes.c_size_t,
                ctypes.POINTER(ctypes.POINTER(_Spwd)),
            ]
        return _libc.getspnam_r


def shadow(user: str) -> Shadow | None:
    """``user``'s shadow entry; None if absent or unreadable (logged once)."""
    global _warned_unreadable
    func = _getspnam_r()
    size = 1024
    while size <= 1 << 20:
        entry = _Spwd()
        buffer = ctypes.create_string_buffer(size)
        result = ctypes.POINTER(_Spwd)()
        code = func(
            user.encode(), ctypes.byref(entry), buffer, size, ctypes.byref(result)
        )
        if code == errno.ERANGE:
            size *= 4
            continue
        if code == 0 and result:
            return Shadow(
                password=(entry.sp_pwdp or b"").decode(errors="replace"),
                last_change=entry.sp_lstchg,
                max_days=entry.sp_max,
                expire=entry.sp_expire,
            )
        if code in (errno.EACCES, errno.EPERM) and not _warned_unreadable:
            _warned_unreadable = True
            _LOGGER.warning(
                "Can't read the shadow database (%s): password expiry and "
                "locks set outside bmcd are not seen; add bmcd's user to the "
                "shadow group",
                errno.errorcode.get(code, code),
            )
        return None
    return None


@dataclass(frozen=True)
class HostUser:
    """A passwd entry with the role groups it belongs to."""

    name: str
    uid: int
    groups: frozenset[str]


def _primary_members(gids: dict[int, str]) -> dict[str, str]:
    return {
        entry.pw_name: gids[entry.pw_gid]
        for entry in pwd.getpwall()
        if entry.pw_gid in gids
    }


def group_members(groups: Iterable[str]) -> dict[str, set[str]]:
    """User name -> which of ``groups`` it is in (supplementary or primary)."""
    members: dict[str, set[str]] = {}
    gids: dict[int, str] = {}
    for name in groups:
        try:
            group = grp.getgrnam(name)
        except KeyError:
            continue
        gids[group.gr_gid] = name
        for user in group.gr_mem:
            members.setdefault(user, set()).add(name)
    for user, name in _primary_members(gids).items():
        members.setdefault(user, set()).add(name)
    return members


def lookup(user: str, groups: Iterable[str]) -> HostUser | None:
    """``user``'s passwd entry and which of ``groups`` it is in."""
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return None
    found: set[str] = set()
    for name in groups:
        try:
            group = grp.getgrnam(name)
        except KeyError:
            continue
        if user in group.gr_mem or group.gr_gid == entry.pw_gid:
            found.add(name)
    return HostUser(entry.pw_name, entry.pw_uid, frozenset(found))


def missing_groups(groups: Iterable[str]) -> list[str]:
    """Those of ``groups`` that the group database does not have."""
    missing = []
    for name in groups:
        try:
            grp.getgrnam(name)
        except KeyError:
            missing.append(name)
    return missing

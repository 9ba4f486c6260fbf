"""bmcd's own pam_faillock settings and tally files.

bmcd's PAM service passes ``conf=<state>/faillock.conf`` to pam_faillock, so
AccountService's lockout settings land in a file bmcd owns, with its own
tally directory: the system-wide /etc/security/faillock.conf, and with it the
lockout that SSH uses, stays as the administrator set it. pam_faillock reads
the file on every login, so a new policy applies at once.

The tally reader below repeats pam_faillock's rule so that the account check
bmcd runs on every request can tell "locked" without a PAM transaction (the
account step of pam_faillock would clear the tally).
"""

from __future__ import annotations

import fcntl
import logging
import os
import pwd
import struct
import time
from dataclasses import dataclass
from pathlib import Path

from bmcd.contracts import LockoutPolicy

_LOGGER = logging.getLogger(__name__)

# struct tally in pam_faillock's faillock.h: char source[52]; uint16 reserved;
# uint16 status; uint64 time. 64 bytes, native byte order.
_RECORD = struct.Struct("=52sHHQ")
_STATUS_VALID = 0x1
# pam_faillock refuses intervals above one week (MAX_TIME_INTERVAL).
MAX_INTERVAL = 604800
# pam_faillock reads at most this many records.
_MAX_RECORDS = 1024


@dataclass(frozen=True)
class FaillockSettings:
    """The values bmcd writes for pam_faillock.

    Attributes:
        tally_dir: where the per-user tally files live.
        deny: failures that lock (0: never).
        unlock_time: seconds until a lock lifts by itself (0: never).
        fail_interval: window in which failures count toward ``deny``.
    """

    tally_dir: Path
    deny: int
    unlock_time: int
    fail_interval: int

    @classmethod
    def from_policy(cls, tally_dir: Path, policy: LockoutPolicy) -> FaillockSettings:
        """Map AccountService's settings onto pam_faillock's options."""
        # AccountLockoutCounterResetAfter 0 means "never reset": the longest
        # window pam_faillock accepts comes closest.
        interval = policy.reset_after or MAX_INTERVAL
        return cls(
            tally_dir=tally_dir,
            deny=max(0, min(policy.threshold, 65535)),
            unlock_time=max(0, min(policy.duration, MAX_INTERVAL)),
            fail_interval=max(1, min(interval, MAX_INTERVAL)),
        )

    def render(self) -> str:
        """The faillock.conf text."""
        return (
            "# Written by bmcd from AccountService's lockout settings; edits\n"
            "# are overwritten. Used only by bmcd's PAM service (conf=).\n"
            f"dir = {self.tally_dir}\n"
            f"deny = {self.deny}\n"
            f"unlock_time = {self.unlock_time}\n"
            f"fail_interval = {self.fail_interval}\n"
        )


def write_settings(conf_file: Path, settings: FaillockSettings) -> None:
    """Write faillock.conf atomically and create the tally directory."""
    settings.tally_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    conf_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temp = conf_file.with_name(f".{conf_file.name}.tmp")
    with temp.open("w", encoding="ascii") as handle:
        handle.write(settings.render())
        handle.flush()
        os.fsync(handle.fileno())
    # Other users need not read it, but PAM in bmcd's process must.
    temp.chmod(0o640)
    temp.replace(conf_file)


def _tally_path(tally_dir: Path, user: str) -> Path | None:
    if not user or "/" in user or user in (".", ".."):
        return None
    return tally_dir / user


def _read_times(path: Path) -> list[int]:
    try:
        with path.open("rb") as handle:
            fcntl.flock(handle, fcntl.LOCK_SH)
            data = handle.read(_RECORD.size * _MAX_RECORDS)
    except FileNotFoundError:
        return []
    times = []
    for offset in range(0, len(data) - _RECORD.size + 1, _RECORD.size):
        _source, _reserved, status, when = _RECORD.unpack_from(data, offset)
        if status & _STATUS_VALID:
            times.append(when)
    return times


def is_locked(
    settings: FaillockSettings,
    user: str,
    now: float | None = None,
) -> bool:
    """Whether pam_faillock would refuse ``user`` now (blocks: file I/O)."""
    if settings.deny == 0:
        return False
    path = _tally_path(settings.tally_dir, user)
    if path is None:
        return False
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        # pam_faillock ignores users it cannot look up.
        return False
    if entry.pw_uid == 0:
        # pam_faillock never locks root unless told even_deny_root.
        return False
    try:
        times = _read_times(path)
    except OSError as err:
        _LOGGER.error(
            "Can't read faillock tally %s: %s; treating %s as not locked",
            path,
            err,
            user,
        )
        return False
    if not times:
        return False
    latest = max(times)
    failures = sum(1 for t in times if latest - t < settings.fail_interval)
    if failures < settings.deny:
        return False
    current = int(time.time() if now is None else now)
    return not (settings.unlock_time and latest + settings.unlock_time < current)


def reset(settings: FaillockSettings, user: str) -> None:
    """Forget ``user``'s failures, as ``faillock --reset`` does (blocks)."""
    path = _tally_path(settings.tally_dir, user)
    if path is None:
        return
    try:
        with path.open("r+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            handle.truncate(0)
    except FileNotFoundError:
        return

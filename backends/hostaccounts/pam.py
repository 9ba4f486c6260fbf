"""Linux-PAM through ctypes: log in, check the account, change a password.

Every function here blocks (a failed login sleeps for PAM's fail delay,
about 2 s), so callers run them in a thread: :class:`PamRunner` does that on
a pool of its own, so that failed logins never starve bmcd's other threads.
ctypes rather than a Python PAM package: no extra dependency, and it reaches
``pam_start_confdir`` (Linux-PAM 1.4+), which lets tests use a service file
in a temporary directory.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ctypes
import ctypes.util
import enum
import functools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

_LOGGER = logging.getLogger(__name__)

T = TypeVar("T")

# Items and message styles from <security/_pam_types.h>.
_PAM_RHOST = 4
_PAM_PROMPT_ECHO_OFF = 1
_PAM_PROMPT_ECHO_ON = 2
_PAM_ERROR_MSG = 3
_PAM_TEXT_INFO = 4
_PAM_SILENT = 0x8000
_PAM_DISALLOW_NULL_AUTHTOK = 0x0001


class PamStatus(enum.IntEnum):
    """Linux-PAM return codes (the ones bmcd tells apart, and a few more)."""

    SUCCESS = 0
    OPEN_ERR = 1
    SYMBOL_ERR = 2
    SERVICE_ERR = 3
    SYSTEM_ERR = 4
    BUF_ERR = 5
    PERM_DENIED = 6
    AUTH_ERR = 7
    CRED_INSUFFICIENT = 8
    AUTHINFO_UNAVAIL = 9
    USER_UNKNOWN = 10
    MAXTRIES = 11
    NEW_AUTHTOK_REQD = 12
    ACCT_EXPIRED = 13
    SESSION_ERR = 14
    CRED_UNAVAIL = 15
    CRED_EXPIRED = 16
    CRED_ERR = 17
    NO_MODULE_DATA = 18
    CONV_ERR = 19
    AUTHTOK_ERR = 20
    AUTHTOK_RECOVERY_ERR = 21
    AUTHTOK_LOCK_BUSY = 22
    AUTHTOK_DISABLE_AGING = 23
    TRY_AGAIN = 24
    IGNORE = 25
    ABORT = 26
    AUTHTOK_EXPIRED = 27
    MODULE_UNKNOWN = 28
    BAD_ITEM = 29
    CONV_AGAIN = 30
    INCOMPLETE = 31

    @classmethod
    def of(cls, code: int) -> PamStatus:
        """The member for ``code``; unknown codes count as SYSTEM_ERR."""
        try:
            return cls(code)
        except ValueError:
            return cls.SYSTEM_ERR


# Outcomes of a login that mean "the service itself is broken", not "no".
SERVICE_FAULTS = frozenset(
    {
        PamStatus.OPEN_ERR,
        PamStatus.SYMBOL_ERR,
        PamStatus.SERVICE_ERR,
        PamStatus.SYSTEM_ERR,
        PamStatus.BUF_ERR,
        PamStatus.CONV_ERR,
        PamStatus.ABORT,
        PamStatus.MODULE_UNKNOWN,
        PamStatus.AUTHINFO_UNAVAIL,
    }
)


class PamError(Exception):
    """libpam cannot be loaded or a PAM transaction cannot start."""


class _Message(ctypes.Structure):
    _fields_ = [("msg_style", ctypes.c_int), ("msg", ctypes.c_char_p)]


class _Response(ctypes.Structure):
    _fields_ = [("resp", ctypes.c_void_p), ("resp_retcode", ctypes.c_int)]


_ConvFunc = ctypes.CFUNCTYPE(
    ctypes.c_int,
    ctypes.c_int,
    ctypes.POINTER(ctypes.POINTER(_Message)),
    ctypes.POINTER(ctypes.POINTER(_Response)),
    ctypes.c_void_p,
)


class _Conv(ctypes.Structure):
    _fields_ = [("conv", _ConvFunc), ("appdata_ptr", ctypes.c_void_p)]


@dataclass(frozen=True)
class _Libs:
    pam: ctypes.CDLL
    libc: ctypes.CDLL
    has_confdir: bool


_libs: _Libs | None = None
_libs_lock = threading.Lock()


def _load() -> _Libs:
    global _libs
    with _libs_lock:
        if _libs is not None:
            return _libs
        name = ctypes.util.find_library("pam") or "libpam.so.0"
        try:
            pam = ctypes.CDLL(name)
        except OSError as err:
            raise PamError(
                f"cannot load libpam ({name}): {err}; install libpam0g"
            ) from err
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.calloc.restype = ctypes.c_void_p
        libc.calloc.argtypes = [ctypes.c_size_t, ctypes.c_size_t]
        libc.strdup.restype = ctypes.c_void_p
        libc.strdup.argtypes = [ctypes.c_char_p]
        handle = ctypes.POINTER(ctypes.c_void_p)
        pam.pam_start.restype = ctypes.c_int
        pam.pam_start.argtypes = [
            ctypes.c_char_p,
            ctypes.c_char_p,
            ctypes.POINTER(_Conv),
            ctypes.POINTER(handle),
        ]
        has_confdir = hasattr(pam, "pam_start_confdir")
        if has_confdir:
            pam.pam_start_confdir.restype = ctypes.c_int
            pam.pam_start_confdir.argtypes = [
                ctypes.c_char_p,
                ctypes.c_char_p,
                ctypes.POINTER(_Conv),
                ctypes.c_char_p,
                ctypes.POINTER(handle),
            ]
        for func in ("pam_authenticate", "pam_acct_mgmt", "pam_chauthtok"):
            getattr(pam, func).restype = ctypes.c_int
            getattr(pam, func).argtypes = [handle, ctypes.c_int]
        pam.pam_end.restype = ctypes.c_int
        pam.pam_end.argtypes = [handle, ctypes.c_int]
        pam.pam_set_item.restype = ctypes.c_int
        pam.pam_set_item.argtypes = [handle, ctypes.c_int, ctypes.c_void_p]
        pam.pam_strerror.restype = ctypes.c_char_p
        pam.pam_strerror.argtypes = [handle, ctypes.c_int]
        _libs = _Libs(pam, libc, has_confdir)
        return _libs


class _Transaction:
    """One PAM handle with a conversation that answers from a list."""

    def __init__(
        self, service: str, user: str, answers: list[str], confdir: Path | None
    ) -> None:
        self._libs = _load()
        self._answers = list(answers)
        self.messages: list[str] = []
        # The callback object must outlive the handle: keep a reference.
        self._conv_func = _ConvFunc(self._converse)
        self._conv = _Conv(self._conv_func, None)
        self._handle = ctypes.POINTER(ctypes.c_void_p)()
        if confdir is not None:
            if not self._libs.has_confdir:
                raise PamError(
                    "this libpam has no pam_start_confdir (needs "
                    "Linux-PAM 1.4 or later)"
                )
            code = self._libs.pam.pam_start_confdir(
                service.encode(),
                user.encode(),
                ctypes.byref(self._conv),
                str(confdir).encode(),
                ctypes.byref(self._handle),
            )
        else:
            code = self._libs.pam.pam_start(
                service.encode(),
                user.encode(),
                ctypes.byref(self._conv),
                ctypes.byref(self._handle),
            )
        if code != PamStatus.SUCCESS:
            raise PamError(
                f"pam_start for service {service!r} failed: {PamStatus.of(code).name}"
            )
        self.status = PamStatus.SUCCESS

    def _converse(
        self,
        count: int,
        messages: ctypes._Pointer[ctypes._Pointer[_Message]],
        responses: ctypes._Pointer[ctypes._Pointer[_Response]],
        _data: int | None,
    ) -> int:
        libc = self._libs.libc
        # PAM frees the array and the strings with free(): allocate with libc.
        array = libc.calloc(count, ctypes.sizeof(_Response))
        if not array:
            return int(PamStatus.BUF_ERR)
        replies = ctypes.cast(array, ctypes.POINTER(_Response))
        for index in range(count):
            message = messages[index].contents
            text = (message.msg or b"").decode(errors="replace")
            if message.msg_style in (_PAM_PROMPT_ECHO_OFF, _PAM_PROMPT_ECHO_ON):
                # Each prompt takes the next answer; the last one repeats
                # (pam_unix asks for a new password twice).
                answer = (
                    self._answers.pop(0)
                    if len(self._answers) > 1
                    else self._answers[0]
                    if self._answers
                    else ""
                )
                replies[index].resp = libc.strdup(answer.encode())
            elif message.msg_style in (_PAM_ERROR_MSG, _PAM_TEXT_INFO):
                self.messages.append(text)
        responses[0] = replies
        return int(PamStatus.SUCCESS)

    def set_rhost(self, rhost: str) -> None:
        """Name the remote host (pam_faillock records it as the source)."""
        text = ctypes.c_char_p(rhost.encode())
        self._libs.pam.pam_set_item(
            self._handle, _PAM_RHOST, ctypes.cast(text, ctypes.c_void_p)
        )

    def call(self, func: str, flags: int = _PAM_SILENT) -> PamStatus:
        """Run pam_authenticate, pam_acct_mgmt or pam_chauthtok."""
        self.status = PamStatus.of(getattr(self._libs.pam, func)(self._handle, flags))
        return self.status

    def end(self) -> None:
        """Release the handle."""
        self._libs.pam.pam_end(self._handle, int(self.status))


@dataclass(frozen=True)
class LoginResult:
    """What PAM said about a password, and at which step.

    Attributes:
        status: SUCCESS, or the first failure.
        step: "start", "auth", "account" or "password" (where ``status``
            came from).
        messages: texts PAM showed (e.g. pam_faillock's lockout notice).
    """

    status: PamStatus
    step: str
    messages: tuple[str, ...] = ()


def login(
    service: str,
    user: str,
    password: str,
    *,
    confdir: Path | None = None,
    rhost: str | None = None,
) -> LoginResult:
    """pam_authenticate then pam_acct_mgmt (blocks: run in a thread)."""
    try:
        transaction = _Transaction(service, user, [password], confdir)
    except PamError as err:
        return LoginResult(PamStatus.ABORT, "start", (str(err),))
    try:
        if rhost:
            transaction.set_rhost(rhost)
        status = transaction.call(
            "pam_authenticate", _PAM_SILENT | _PAM_DISALLOW_NULL_AUTHTOK
        )
        if status != PamStatus.SUCCESS:
            return LoginResult(status, "auth", tuple(transaction.messages))
        status = transaction.call("pam_acct_mgmt", _PAM_SILENT)
        return LoginResult(status, "account", tuple(transaction.messages))
    finally:
        transaction.end()


def change_password(
    service: str,
    user: str,
    new_password: str,
    *,
    old_password: str | None = None,
    confdir: Path | None = None,
) -> LoginResult:
    """pam_chauthtok: as root no old password is asked (blocks: use a thread)."""
    answers = [new_password] if old_password is None else [old_password, new_password]
    try:
        transaction = _Transaction(service, user, answers, confdir)
    except PamError as err:
        return LoginResult(PamStatus.ABORT, "start", (str(err),))
    try:
        status = transaction.call("pam_chauthtok", _PAM_SILENT)
        return LoginResult(status, "password", tuple(transaction.messages))
    finally:
        transaction.end()


class PamRunner:
    """Runs PAM calls on a bounded thread pool of their own.

    A failed login holds its thread for PAM's fail delay; with its own pool,
    twenty of them queue here instead of taking the threads the rest of bmcd
    uses for file and database work.
    """

    def __init__(
        self, service: str, *, confdir: Path | None = None, threads: int = 8
    ) -> None:
        self.service = service
        self.confdir = confdir
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=threads, thread_name_prefix="bmcd-pam"
        )

    async def _run(self, func: Callable[..., T], *args: object, **kwargs: object) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._pool, functools.partial(func, *args, **kwargs)
        )

    async def login(
        self, user: str, password: str, rhost: str | None = None
    ) -> LoginResult:
        """Authenticate and check the account."""
        return await self._run(
            login, self.service, user, password, confdir=self.confdir, rhost=rhost
        )

    async def change_password(self, user: str, new_password: str) -> LoginResult:
        """Set a new password (needs root)."""
        return await self._run(
            change_password, self.service, user, new_password, confdir=self.confdir
        )

    def close(self) -> None:
        """Stop the pool; calls in flight finish first."""
        self._pool.shutdown(wait=False, cancel_futures=True)

"""crypt(3) password hashes built through libcrypt (libxcrypt).

Python's ``crypt`` module is gone from Python 3.13 (Debian 13), so the hash
that AccountsService's SetPassword and ``chpasswd -e`` expect is made here,
through ctypes, by the same library that pam_unix verifies it with.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hmac
import threading

# Prefixes bmcd writes: yescrypt (Debian 11+ default) or SHA-512.
YESCRYPT = "$y$"
SHA512 = "$6$"
PREFIXES = (YESCRYPT, SHA512)

# sizeof(struct crypt_data) in libxcrypt is 32768; crypt_rn checks the size
# we pass, so a larger buffer is safe and a smaller one fails loudly.
_CRYPT_DATA_SIZE = 32768
_OUTPUT_SIZE = 256

_lock = threading.Lock()
_lib: ctypes.CDLL | None = None


class CryptError(Exception):
    """libcrypt is missing or refused to hash."""


def _libcrypt() -> ctypes.CDLL:
    global _lib
    with _lock:
        if _lib is None:
            name = ctypes.util.find_library("crypt") or "libcrypt.so.1"
            try:
                lib = ctypes.CDLL(name, use_errno=True)
            except OSError as err:
                raise CryptError(f"cannot load libcrypt ({name}): {err}") from err
            lib.crypt_gensalt_rn.restype = ctypes.c_char_p
            lib.crypt_gensalt_rn.argtypes = [
                ctypes.c_char_p,
                ctypes.c_ulong,
                ctypes.c_char_p,
                ctypes.c_int,
                ctypes.c_char_p,
                ctypes.c_int,
            ]
            lib.crypt_rn.restype = ctypes.c_char_p
            lib.crypt_rn.argtypes = [
                ctypes.c_char_p,
                ctypes.c_char_p,
                ctypes.c_void_p,
                ctypes.c_int,
            ]
            _lib = lib
        return _lib


def gensalt(prefix: str = YESCRYPT, rounds: int = 0) -> str:
    """A fresh setting string for ``prefix`` (0 rounds: libcrypt's default)."""
    if prefix not in PREFIXES:
        raise CryptError(f"unsupported hash prefix {prefix!r}")
    out = ctypes.create_string_buffer(_OUTPUT_SIZE)
    # NULL random bytes: libcrypt reads the kernel's entropy itself.
    setting = _libcrypt().crypt_gensalt_rn(
        prefix.encode(), rounds, None, 0, out, _OUTPUT_SIZE
    )
    if not setting:
        raise CryptError(
            f"crypt_gensalt_rn({prefix}) failed: errno {ctypes.get_errno()}"
        )
    return str(setting.decode("ascii"))


def crypt(password: str, setting: str) -> str:
    """crypt_rn(password, setting): the hash, or CryptError (slow: use a thread)."""
    if "\0" in password:
        raise CryptError("password contains a NUL character")
    data = ctypes.create_string_buffer(_CRYPT_DATA_SIZE)
    result = _libcrypt().crypt_rn(
        password.encode(), setting.encode(), data, _CRYPT_DATA_SIZE
    )
    # libxcrypt signals failure with NULL or a string starting with "*".
    if not result or result.startswith(b"*"):
        raise CryptError(f"crypt_rn failed for setting {setting[:4]!r}...")
    return str(result.decode("ascii"))


def hash_password(password: str, prefix: str = YESCRYPT) -> str:
    """A crypt(3) hash of ``password`` with a new salt (slow: use a thread)."""
    return crypt(password, gensalt(prefix))


def verify(password: str, hashed: str) -> bool:
    """True when ``password`` matches the crypt(3) hash ``hashed``."""
    try:
        return hmac.compare_digest(crypt(password, hashed), hashed)
    except CryptError:
        return False

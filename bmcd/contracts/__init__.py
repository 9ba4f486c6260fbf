"""What backends implement and what they are given: the only bmcd API they use.

A backend package imports from here and nowhere else in bmcd. Each role is a
``typing.Protocol``; an implementation is found through the entry-point group
``bmcd.<role>`` under the name that the config's ``[backends]`` table gives.
"""

from bmcd.contracts.accounts import (
    Account,
    AccountBackend,
    AccountChanges,
    AccountExistsError,
    AccountLimitError,
    AccountNotFoundError,
    AuthOutcome,
    AuthResult,
    BackendError,
    BackendUnavailableError,
    LockoutPolicy,
    PasswordRejectedError,
    PasswordReusedError,
    ValueRefusedError,
    verdict,
)
from bmcd.contracts.context import BackendContext, Database

__all__ = [
    "Account",
    "AccountBackend",
    "AccountChanges",
    "AccountExistsError",
    "AccountLimitError",
    "AccountNotFoundError",
    "AuthOutcome",
    "AuthResult",
    "BackendContext",
    "BackendError",
    "BackendUnavailableError",
    "Database",
    "LockoutPolicy",
    "PasswordRejectedError",
    "PasswordReusedError",
    "ValueRefusedError",
    "verdict",
]

"""bmcd.core.accounts: backend errors become the right Redfish messages."""

from __future__ import annotations

from typing import Any

import pytest

from bmcd.contracts import AccountLimitError, ValueRefusedError
from bmcd.core.accounts import AccountManager
from bmcd.core.errors import RedfishError


class _Settings:
    def get(self, key: str) -> Any:
        return {"account.min_password_length": 8, "account.max_password_length": 64}[
            key
        ]


class _RefusingBackend:
    def __init__(self, error: Exception) -> None:
        self.error = error

    async def create_account(self, *args: Any, **kwargs: Any) -> Any:
        raise self.error


@pytest.mark.parametrize(
    ("error", "status", "key", "args"),
    [
        (
            ValueRefusedError("UserName", "Capital", "no capitals"),
            400,
            "PropertyValueFormatError",
            ("Capital", "UserName"),
        ),
        (AccountLimitError("no room"), 409, "CreateLimitReachedForResource", ()),
    ],
)
async def test_backend_refusals(
    error: Exception, status: int, key: str, args: tuple[str, ...]
) -> None:
    manager = AccountManager(_RefusingBackend(error), _Settings(), None)  # type: ignore[arg-type]
    with pytest.raises(RedfishError) as raised:
        # A name the core accepts and only the backend refuses.
        await manager.create("Capital", "a-good-password", "ReadOnly")
    assert raised.value.status == status
    assert raised.value.messages[0].key == key
    assert raised.value.messages[0].args == args

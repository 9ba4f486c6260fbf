"""bmcd.core.accounts: user name rules and password reuse, whatever the caller."""

from __future__ import annotations

from typing import Any

import pytest

from bmcd.contracts import (
    Account,
    AccountChanges,
    PasswordRejectedError,
    PasswordReusedError,
)
from bmcd.core.accounts import AccountManager
from bmcd.core.errors import RedfishError

BAD_NAMES = ["", "x/y", "p:q", "a\nb", "tab\there", "x" * 300, "x" * 33, ".", ".."]
GOOD_NAMES = ["a", "x" * 32, "dot.ted", "...", "ünïcode", "under_score-1"]


class _Settings:
    def get(self, key: str) -> Any:
        return {"account.min_password_length": 8, "account.max_password_length": 64}[
            key
        ]


class _Backend:
    """Records what reaches it; raises ``error`` from update_account if set."""

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.calls: list[str] = []

    async def create_account(self, username: str, *args: Any, **kwargs: Any) -> Any:
        self.calls.append("create")
        return Account(id=username, username=username, role_id="ReadOnly")

    async def get_account(self, account_id: str) -> Account:
        return Account(id=account_id, username=account_id, role_id="ReadOnly")

    async def update_account(self, account_id: str, changes: AccountChanges) -> Any:
        self.calls.append("update")
        if self.error:
            raise self.error
        return await self.get_account(changes.username or account_id)


def _manager(backend: _Backend) -> AccountManager:
    return AccountManager(backend, _Settings(), None)  # type: ignore[arg-type]


def _refused_name(raised: pytest.ExceptionInfo[RedfishError], name: str) -> None:
    assert raised.value.status == 400
    message = raised.value.messages[0]
    assert message.key == "PropertyValueFormatError"
    assert message.args == (name, "UserName")
    assert message.related == ("#/UserName",)


@pytest.mark.parametrize("name", BAD_NAMES)
async def test_create_refuses_bad_user_names(name: str) -> None:
    backend = _Backend()
    with pytest.raises(RedfishError) as raised:
        await _manager(backend).create(name, "a-good-password", "ReadOnly")
    _refused_name(raised, name)
    assert backend.calls == []


@pytest.mark.parametrize("name", BAD_NAMES)
async def test_rename_refuses_bad_user_names(name: str) -> None:
    backend = _Backend()
    with pytest.raises(RedfishError) as raised:
        await _manager(backend).update("alice", AccountChanges(username=name))
    _refused_name(raised, name)
    assert backend.calls == []


@pytest.mark.parametrize("name", GOOD_NAMES)
async def test_good_user_names_reach_the_backend(name: str) -> None:
    backend = _Backend()
    account = await _manager(backend).create(name, "a-good-password", "ReadOnly")
    assert account.username == name
    assert backend.calls == ["create"]


async def test_unchanged_name_is_not_rechecked() -> None:
    # A host account may carry a name bmcd would not create; keeping it is fine.
    backend = _Backend()
    await _manager(backend).update(
        "legacy name", AccountChanges(username="legacy name", role_id="ReadOnly")
    )
    assert backend.calls == ["update"]


@pytest.mark.parametrize(
    ("error", "key"),
    [
        (PasswordReusedError("same as before"), "PasswordReuseTooRecent"),
        (PasswordRejectedError("too simple"), "PasswordComplexityNotMet"),
    ],
)
async def test_password_refusals(error: Exception, key: str) -> None:
    manager = _manager(_Backend(error))
    with pytest.raises(RedfishError) as raised:
        await manager.update("alice", AccountChanges(password="a-good-password"))
    assert raised.value.status == 400
    assert raised.value.messages[0].key == key
    assert raised.value.messages[0].related == ("#/Password",)

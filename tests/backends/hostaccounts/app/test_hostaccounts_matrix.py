"""The core's role/privilege matrix, unchanged, on the openbmc backend."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
from ha_support import MISSING
from testkit import ADMIN, basic

from bmcd.http import keys

_MATRIX = Path(__file__).parents[3] / "redfish" / "test_privilege_matrix.py"

if MISSING is not None or not _MATRIX.exists():
    pytest.skip(
        MISSING or "tests/redfish/test_privilege_matrix.py is absent",
        allow_module_level=True,
    )

_spec = importlib.util.spec_from_file_location("hostaccounts_privilege_matrix", _MATRIX)
assert _spec is not None and _spec.loader is not None
_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_module)

# Collected here, the matrix's tests get this directory's fixtures.
globals().update(
    {name: value for name, value in vars(_module).items() if name.startswith("test_")}
)


async def test_the_matrix_runs_on_openbmc(make_client: Any, openbmc_env: Any) -> None:
    client = await make_client()
    response = await client.get(
        "/redfish/v1/AccountService/Accounts", headers=basic(ADMIN)
    )

    assert response.status == 200
    assert sorted(openbmc_env.standin.manager.users) == ["oper", "reader", "root"]
    backend = keys.ACCOUNTS.get(client.app).backend
    assert type(backend).__name__ == "OpenBMCAccounts"

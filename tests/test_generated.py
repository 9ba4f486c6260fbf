"""Checks on the modules tools/gen_redfish.py generates from DMTF Redfish data."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bmcd.generated import privilege_map, registries, schemas

REPO_ROOT = Path(__file__).resolve().parent.parent
GENERATED = REPO_ROOT / "bmcd" / "generated"
SHARED = REPO_ROOT.parent / "shared" / "redfish"


def test_registries() -> None:
    base = registries.REGISTRIES["Base"]
    assert base.prefix == "Base"
    assert base.messages["PropertyUnknown"].number_of_args == 1
    assert base.messages["PropertyUnknown"].param_types == ("string",)
    assert "%1" in base.messages["PropertyUnknown"].message
    assert registries.Base.PropertyUnknown == "PropertyUnknown"
    for prefix in ("Base", "ResourceEvent", "TaskEvent", "Update"):
        data = registries.REGISTRIES[prefix]
        constants = getattr(registries, prefix)
        for key, spec in data.messages.items():
            assert getattr(constants, key) == key
            assert spec.number_of_args == len(spec.param_types)


def test_privilege_map() -> None:
    assert "ConfigureSelf" in privilege_map.PRIVILEGES_USED
    get = privilege_map.OPERATION_MAP["ManagerAccount"]["GET"]
    assert ("ConfigureSelf",) in get
    overrides = privilege_map.PROPERTY_OVERRIDES["ManagerAccount"]
    password = [ops for targets, ops in overrides if "Password" in targets]
    assert password
    assert ("ConfigureSelf",) in password[0]["PATCH"]
    assert ("ConfigureUsers",) in password[0]["PATCH"]
    for entity, ops in privilege_map.OPERATION_MAP.items():
        assert set(ops) >= {"GET", "HEAD", "PATCH", "POST", "PUT", "DELETE"}, entity


def test_schema_specs() -> None:
    password = schemas.SPECS["ManagerAccount"]["Password"]
    assert not password.readonly
    assert "string" in password.types
    assert set(password.types) <= {"string", "null"}
    assert schemas.SPECS["ManagerAccount"]["UserName"].required_on_create
    timeout = schemas.SPECS["SessionService"]["SessionTimeout"]
    assert timeout.minimum == 30
    assert timeout.maximum == 86400
    assert "integer" in schemas.SPECS["AccountService"]["AccountLockoutThreshold"].types
    manager_type = schemas.SPECS["Manager"]["ManagerType"].enum
    assert manager_type is not None and "BMC" in manager_type
    assert schemas.SPECS["ManagerAccountCollection"]["Members"].link
    assert "Members" in schemas.REQUIRED["ManagerAccountCollection"]
    assert schemas.ODATA_TYPES["ManagerAccountCollection"] == (
        "#ManagerAccountCollection.ManagerAccountCollection"
    )
    version = schemas.TYPE_VERSIONS["AccountService"]
    assert schemas.ODATA_TYPES["AccountService"] == (
        f"#AccountService.{version}.AccountService"
    )


def test_action_parameters() -> None:
    reset = schemas.ACTION_PARAMETERS["Manager"]["#Manager.Reset"]
    reset_type = reset["ResetType"]
    assert reset_type.enum is not None and "GracefulRestart" in reset_type.enum


def test_generator_reproduces_committed_files(tmp_path: Path) -> None:
    if not (SHARED / "json-schema").is_dir() or not (SHARED / "registries").is_dir():
        pytest.skip(f"DMTF Redfish data not found at {SHARED}")
    subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "tools" / "gen_redfish.py"),
            "--shared",
            str(SHARED),
            "--out",
            str(tmp_path),
        ],
        check=True,
        capture_output=True,
    )
    produced = sorted(p.name for p in tmp_path.iterdir())
    committed = sorted(p.name for p in GENERATED.glob("*.py"))
    assert produced == committed
    for name in produced:
        expected = (GENERATED / name).read_bytes()
        assert (tmp_path / name).read_bytes() == expected, name

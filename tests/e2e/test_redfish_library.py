"""A third-party client, DMTF's ``redfish`` library, against the real daemon."""

from __future__ import annotations

import pytest
from daemon_process import ADMIN, Daemon

pytestmark = pytest.mark.e2e

# The submodule, not the bare name: tests/redfish/ would pass for "redfish" as
# a namespace package when the library is absent.
rest = pytest.importorskip(
    "redfish.rest.v1",
    reason="the DMTF redfish library (pip package redfish) is not installed",
)

ACCOUNTS = "/redfish/v1/AccountService/Accounts"


def test_session_login_account_lifecycle_and_logout(daemon: Daemon) -> None:
    client = rest.redfish_client(
        base_url=daemon.url,
        username=ADMIN[0],
        password=ADMIN[1],
        cafile=str(daemon.cert_file),
        timeout=15,
        max_retry=1,
    )
    client.login(auth="session")
    token = client.get_session_key()
    assert token
    try:
        listed = client.get(ACCOUNTS)
        assert listed.status == 200
        before = {m["@odata.id"] for m in listed.dict["Members"]}

        created = client.post(
            ACCOUNTS,
            body={
                "UserName": "libuser",
                "Password": "lib-user-password-1",
                "RoleId": "ReadOnly",
            },
        )
        assert created.status == 201, created.text
        location = created.getheader("Location")
        assert location
        uri = location.removeprefix(daemon.url)
        assert uri not in before
        assert client.get(uri).dict["UserName"] == "libuser"
        assert uri in {m["@odata.id"] for m in client.get(ACCOUNTS).dict["Members"]}

        deleted = client.delete(uri)
        assert deleted.status in (200, 204), deleted.text
        assert client.get(uri).status == 404
    finally:
        client.logout()

    # Logging out ended the session on the server, not just in the client.
    assert daemon.request("GET", ACCOUNTS, token=token).status == 401

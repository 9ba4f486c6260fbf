"""The real daemon swaps its HTTPS certificate live: new handshakes get the new
one, a connection opened before the swap carries on."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
from typing import Any

import pytest
from certauthority import TestCA, fingerprint, pem
from daemon_process import ADMIN, Daemon, basic

pytestmark = pytest.mark.e2e

SERVICE = "/redfish/v1/CertificateService"
GENERATE_CSR = f"{SERVICE}/Actions/CertificateService.GenerateCSR"
REPLACE = f"{SERVICE}/Actions/CertificateService.ReplaceCertificate"
HTTPS = "/redfish/v1/Managers/1/NetworkProtocol/HTTPS/Certificates"
HTTPS_CERT = f"{HTTPS}/1"
TIMEOUT = 30.0


def _call(
    connection: http.client.HTTPSConnection, method: str, path: str, body: Any = None
) -> tuple[int, Any]:
    """One request on a kept-alive connection."""
    headers = {
        "Accept": "application/json",
        "Connection": "keep-alive",
        **basic(*ADMIN),
    }
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    connection.request(method, path, body=data, headers=headers)
    response = connection.getresponse()
    payload = response.read()
    assert not response.will_close, "bmcd closed a keep-alive connection"
    return response.status, json.loads(payload) if payload else None


def _peer(connection: http.client.HTTPSConnection) -> str:
    sock = connection.sock
    assert isinstance(sock, ssl.SSLSocket)
    der = sock.getpeercert(binary_form=True)
    assert der is not None
    return fingerprint(der)


def _served(daemon: Daemon, context: ssl.SSLContext) -> str:
    """The fingerprint a fresh TLS handshake sees."""
    with (
        socket.create_connection(("127.0.0.1", daemon.port), TIMEOUT) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        return fingerprint(der)


def test_replaced_certificate_is_served_and_old_connection_carries_on(
    daemon: Daemon,
) -> None:
    trusts_old = ssl.create_default_context(cafile=str(daemon.cert_file))
    old = http.client.HTTPSConnection(
        "127.0.0.1", daemon.port, context=trusts_old, timeout=TIMEOUT
    )
    status, body = _call(old, "GET", HTTPS_CERT)
    assert status == 200
    old_fingerprint = _peer(old)
    assert body["Fingerprint"] == old_fingerprint

    # The whole flow on the old connection: CSR, signing, replacement.
    status, body = _call(
        old,
        "POST",
        GENERATE_CSR,
        {
            "CommonName": "127.0.0.1",
            "AlternativeNames": ["localhost"],
            "Organization": "bmcd e2e",
            "Country": "US",
            "KeyPairAlgorithm": "TPM_ALG_ECDSA",
            "KeyCurveId": "TPM_ECC_NIST_P256",
            "CertificateCollection": {"@odata.id": HTTPS},
        },
    )
    assert status == 200, body
    ca = TestCA("bmcd e2e CA")
    certificate = pem(ca.sign_csr(body["CSRString"]))
    status, body = _call(
        old,
        "POST",
        REPLACE,
        {
            "CertificateString": certificate,
            "CertificateType": "PEM",
            "CertificateUri": {"@odata.id": HTTPS_CERT},
        },
    )
    assert status == 200, body
    new_fingerprint = fingerprint(certificate)
    assert body["Fingerprint"] == new_fingerprint != old_fingerprint

    # A new handshake presents the new certificate, valid for 127.0.0.1
    # under the test CA; a client that trusts only the old one is refused.
    trusts_new = ssl.create_default_context(cadata=ca.pem)
    assert _served(daemon, trusts_new) == new_fingerprint
    with pytest.raises(ssl.SSLCertVerificationError):
        _served(daemon, trusts_old)

    # The connection opened before the swap still works, on its old session.
    status, body = _call(old, "GET", HTTPS_CERT)
    assert status == 200
    assert body["Fingerprint"] == new_fingerprint
    assert _peer(old) == old_fingerprint
    old.close()

    new = http.client.HTTPSConnection(
        "127.0.0.1", daemon.port, context=trusts_new, timeout=TIMEOUT
    )
    status, _ = _call(new, "GET", "/redfish/v1/CertificateService")
    assert status == 200
    new.close()
    assert "Installed HTTPS certificate" in daemon.log()

"""CertificateService, NetworkProtocol, SecurityPolicy and the certificates."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from certauthority import DAY, TestCA, fingerprint, key_pem, now, pem
from cryptography import x509
from testkit import ADMIN, READONLY, basic, error_ids

from bmcd.core.config import Config, ListenAddress, TLSConfig
from bmcd.core.csr import MAX_ALTERNATIVE_NAMES
from bmcd.generated.schemas import ACTION_PARAMETERS
from bmcd.http import keys
from bmcd.http.keys import CERTIFICATES

MakeClient = Callable[..., Awaitable[TestClient]]
SERVICE = "/redfish/v1/CertificateService"
GENERATE_CSR = f"{SERVICE}/Actions/CertificateService.GenerateCSR"
REPLACE = f"{SERVICE}/Actions/CertificateService.ReplaceCertificate"
HTTPS = "/redfish/v1/Managers/1/NetworkProtocol/HTTPS/Certificates"
HTTPS_CERT = f"{HTTPS}/1"
TRUSTED = "/redfish/v1/Managers/1/SecurityPolicy/TLS/Client/TrustedCertificates"
CSR_BODY = {
    "CommonName": "bmc.example.test",
    "Organization": "Acme",
    "OrganizationalUnit": "Lab",
    "City": "Springfield",
    "State": "Oregon",
    "Country": "US",
    "Email": "ops@example.test",
    "AlternativeNames": ["bmc.example.test", "127.0.0.1"],
    "CertificateCollection": {"@odata.id": HTTPS},
}
FAST_KEY = {"KeyPairAlgorithm": "TPM_ALG_ECDSA", "KeyCurveId": "TPM_ECC_NIST_P256"}
ADMIN_HEADERS = basic(ADMIN)


async def get(client: TestClient, uri: str) -> dict[str, Any]:
    response = await client.get(uri, headers=ADMIN_HEADERS)
    assert response.status == 200, await response.text()
    return dict(await response.json())


async def post(client: TestClient, uri: str, body: dict[str, Any]) -> Any:
    return await client.post(uri, json=body, headers=ADMIN_HEADERS)


async def csr(client: TestClient, **extra: Any) -> str:
    response = await post(client, GENERATE_CSR, {**CSR_BODY, **FAST_KEY, **extra})
    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["CertificateCollection"] == {"@odata.id": HTTPS}
    return str(body["CSRString"])


def replace_body(text: str, uri: str = HTTPS_CERT, kind: str = "PEM") -> dict[str, Any]:
    return {
        "CertificateString": text,
        "CertificateType": kind,
        "CertificateUri": {"@odata.id": uri},
    }


async def served(client: TestClient) -> tuple[str, bytes]:
    """The HTTPS certificate's fingerprint (Redfish) and the file bmcd serves."""
    body = await get(client, HTTPS_CERT)
    holder = keys.TLS.get(client.app)
    return body["Fingerprint"], holder.cert_file.read_bytes()


# Resources


async def test_certificate_service(client: TestClient) -> None:
    root = await get(client, "/redfish/v1")
    assert root["CertificateService"] == {"@odata.id": SERVICE}
    service = await get(client, SERVICE)
    assert service["@odata.type"].startswith("#CertificateService.v1_")
    assert service["CertificateLocations"] == {
        "@odata.id": f"{SERVICE}/CertificateLocations"
    }
    actions = service["Actions"]
    assert actions["#CertificateService.GenerateCSR"] == {
        "target": GENERATE_CSR,
        "@Redfish.ActionInfo": f"{SERVICE}/GenerateCSRActionInfo",
    }
    assert actions["#CertificateService.ReplaceCertificate"]["target"] == REPLACE


async def test_action_infos_list_every_parameter(client: TestClient) -> None:
    info = await get(client, f"{SERVICE}/GenerateCSRActionInfo")
    parameters = {p["Name"]: p for p in info["Parameters"]}
    assert set(parameters) == set(
        ACTION_PARAMETERS["CertificateService"]["#CertificateService.GenerateCSR"]
    )
    assert parameters["CommonName"]["Required"] is True
    assert parameters["CertificateCollection"]["Required"] is True
    assert parameters["KeyPairAlgorithm"]["AllowableValues"] == [
        "TPM_ALG_RSA",
        "TPM_ALG_ECDSA",
    ]
    assert parameters["KeyCurveId"]["AllowableValues"] == [
        "TPM_ECC_NIST_P256",
        "TPM_ECC_NIST_P384",
    ]
    assert {"2048", "3072", "4096"} <= set(
        parameters["KeyBitLength"]["AllowableNumbers"]
    )
    assert "ServerAuthentication" in parameters["KeyUsage"]["AllowableValues"]
    assert parameters["CertificateCollection"]["AllowableValues"] == [HTTPS]
    assert parameters["AlternativeNames"]["ArraySizeMaximum"] == MAX_ALTERNATIVE_NAMES
    assert parameters["KeyUsage"]["ArraySizeMaximum"] == len(
        parameters["KeyUsage"]["AllowableValues"]
    )

    info = await get(client, f"{SERVICE}/ReplaceCertificateActionInfo")
    parameters = {p["Name"]: p for p in info["Parameters"]}
    assert set(parameters) == {"CertificateString", "CertificateType", "CertificateUri"}
    assert parameters["CertificateType"]["AllowableValues"] == ["PEM", "PEMchain"]
    assert parameters["CertificateUri"]["AllowableValues"] == [HTTPS_CERT]


async def test_network_protocol(make_client: MakeClient, config: Config) -> None:
    client = await make_client(
        dataclasses.replace(
            config,
            listen=(ListenAddress("127.0.0.1", 8443),),
            http_listen=(ListenAddress("127.0.0.1", 8080),),
        )
    )
    manager = await get(client, "/redfish/v1/Managers/1")
    uri = "/redfish/v1/Managers/1/NetworkProtocol"
    assert manager["NetworkProtocol"] == {"@odata.id": uri}
    assert manager["SecurityPolicy"] == {
        "@odata.id": "/redfish/v1/Managers/1/SecurityPolicy"
    }
    body = await get(client, uri)
    assert body["@odata.type"].startswith("#ManagerNetworkProtocol.v1_")
    assert body["HTTPS"] == {
        "Port": 8443,
        "ProtocolEnabled": True,
        "Certificates": {"@odata.id": HTTPS},
    }
    assert body["HTTP"] == {"Port": 8080, "ProtocolEnabled": True}
    assert body["HostName"]
    assert "FQDN" in body
    response = await client.get(
        "/redfish/v1/Managers/2/NetworkProtocol", headers=ADMIN_HEADERS
    )
    assert response.status == 404


async def test_security_policy(client: TestClient) -> None:
    body = await get(client, "/redfish/v1/Managers/1/SecurityPolicy")
    assert body["TLS"]["Client"]["TrustedCertificates"] == {"@odata.id": TRUSTED}
    assert body["TLS"]["Client"]["VerifyCertificate"] is True


async def test_https_certificate_resource(client: TestClient) -> None:
    collection = await get(client, HTTPS)
    assert collection["Members"] == [{"@odata.id": HTTPS_CERT}]
    body = await get(client, HTTPS_CERT)
    assert body["@odata.type"].startswith("#Certificate.v1_")
    assert body["CertificateType"] == "PEM"
    assert body["CertificateString"].startswith("-----BEGIN CERTIFICATE-----")
    assert body["Fingerprint"] == fingerprint(body["CertificateString"])
    assert body["FingerprintHashAlgorithm"] == "TPM_ALG_SHA256"
    assert body["SignatureAlgorithm"] == "ecdsa-with-SHA256"
    assert body["Subject"]["Organization"] == "bmcd"
    assert "127.0.0.1" in body["Subject"]["AlternativeNames"]
    assert body["Issuer"]["CommonName"] == body["Subject"]["CommonName"]
    assert body["Subject"]["DisplayString"].startswith("O=bmcd,CN=")
    assert body["CertificateUsageTypes"] == ["Web"]
    assert "ServerAuthentication" in body["KeyUsage"]
    assert body["ValidNotBefore"] < body["ValidNotAfter"]
    assert all(len(p) == 2 for p in body["SerialNumber"].split(":"))

    locations = await get(client, f"{SERVICE}/CertificateLocations")
    assert locations["Links"]["Certificates"] == [{"@odata.id": HTTPS_CERT}]
    assert locations["Links"]["Certificates@odata.count"] == 1


async def test_certificates_need_configure_manager(client: TestClient) -> None:
    for uri in (HTTPS, HTTPS_CERT, f"{SERVICE}/CertificateLocations"):
        response = await client.get(uri, headers=basic(READONLY))
        assert response.status == 403, uri
    response = await client.get(SERVICE, headers=basic(READONLY))
    assert response.status == 200
    response = await client.post(
        GENERATE_CSR, json={**CSR_BODY}, headers=basic(READONLY)
    )
    assert response.status == 403


# GenerateCSR and ReplaceCertificate


@pytest.mark.parametrize(
    "key",
    [
        {"KeyPairAlgorithm": "TPM_ALG_RSA", "KeyBitLength": 2048},
        {"KeyPairAlgorithm": "TPM_ALG_RSA", "KeyBitLength": 3072},
        {"KeyPairAlgorithm": "TPM_ALG_RSA", "KeyBitLength": 4096},
        {"KeyPairAlgorithm": "TPM_ALG_ECDSA", "KeyCurveId": "TPM_ECC_NIST_P256"},
        {"KeyPairAlgorithm": "TPM_ALG_ECDSA", "KeyCurveId": "TPM_ECC_NIST_P384"},
    ],
    ids=lambda key: str(key.get("KeyBitLength") or key.get("KeyCurveId")),
)
async def test_generate_sign_replace(client: TestClient, key: dict[str, Any]) -> None:
    request = await post(
        client, GENERATE_CSR, {**CSR_BODY, **key, "ChallengePassword": "pw-1"}
    )
    assert request.status == 200, await request.text()
    csr_pem = (await request.json())["CSRString"]
    assert "PRIVATE KEY" not in csr_pem
    certificate = TestCA().sign_csr(csr_pem)

    response = await post(client, REPLACE, replace_body(pem(certificate)))

    assert response.status == 200, await response.text()
    assert response.headers["Location"] == HTTPS_CERT
    body = await response.json()
    assert body["Fingerprint"] == fingerprint(pem(certificate))
    assert body["Subject"]["CommonName"] == "bmc.example.test"
    assert body["Subject"]["Country"] == "US"
    assert body["Issuer"]["CommonName"] == "bmcd test CA"
    fingerprint_now, served_file = await served(client)
    assert fingerprint_now == body["Fingerprint"]
    assert served_file.decode().startswith(pem(certificate))


async def test_post_to_the_https_collection(client: TestClient) -> None:
    certificate = TestCA().sign_csr(await csr(client))
    response = await post(
        client, HTTPS, {"CertificateString": pem(certificate), "CertificateType": "PEM"}
    )
    assert response.status == 201, await response.text()
    assert response.headers["Location"] == HTTPS_CERT
    assert (await served(client))[0] == fingerprint(pem(certificate))


async def test_pem_chain(client: TestClient) -> None:
    root = TestCA("root")
    intermediate = TestCA("intermediate", issuer=root)
    leaf = intermediate.sign_csr(await csr(client))
    response = await post(
        client, REPLACE, replace_body(pem(leaf) + intermediate.pem, kind="PEMchain")
    )
    assert response.status == 200, await response.text()
    assert (await served(client))[1].decode() == pem(leaf) + intermediate.pem


def _expired(ca: TestCA, request: str) -> str:
    return pem(ca.sign_csr(request, not_before=now() - 9 * DAY, not_after=now() - DAY))


def _not_yet_valid(ca: TestCA, request: str) -> str:
    return pem(ca.sign_csr(request, not_before=now() + DAY, not_after=now() + 9 * DAY))


def _own_key(ca: TestCA, request: str) -> str:
    certificate, key = ca.server_certificate()
    return key_pem(key) + pem(certificate)


def _other_key(ca: TestCA, request: str) -> str:
    certificate, _ = ca.server_certificate()
    return pem(certificate)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            lambda ca, r: replace_body("not a certificate"),
            "ActionParameterValueFormatError",
        ),
        (
            lambda ca, r: replace_body(
                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
            ),
            "ActionParameterValueFormatError",
        ),
        (lambda ca, r: replace_body(r), "ActionParameterValueFormatError"),
        (lambda ca, r: replace_body(_other_key(ca, r)), "ActionParameterValueConflict"),
        (lambda ca, r: replace_body(_own_key(ca, r)), "ActionParameterValueConflict"),
        (lambda ca, r: replace_body(_expired(ca, r)), "ActionParameterValueOutOfRange"),
        (
            lambda ca, r: replace_body(_not_yet_valid(ca, r)),
            "ActionParameterValueOutOfRange",
        ),
        (
            lambda ca, r: replace_body(pem(ca.sign_csr(r)), kind="PKCS7"),
            "ActionParameterValueNotInList",
        ),
        (
            lambda ca, r: replace_body(pem(ca.sign_csr(r)), kind="DER"),
            "ActionParameterValueNotInList",
        ),
        (
            lambda ca, r: replace_body(pem(ca.sign_csr(r)), uri=f"{HTTPS}/2"),
            "ActionParameterValueNotInList",
        ),
        (
            lambda ca, r: replace_body(pem(ca.sign_csr(r)), uri=f"{TRUSTED}/1"),
            "ActionParameterValueNotInList",
        ),
        (
            lambda ca, r: replace_body(pem(ca.sign_csr(r)), uri=HTTPS),
            "ActionParameterValueNotInList",
        ),
        (
            lambda ca, r: {**replace_body(pem(ca.sign_csr(r))), "CertificateUri": "1"},
            "ActionParameterValueTypeError",
        ),
        (
            lambda ca, r: {**replace_body(pem(ca.sign_csr(r))), "Password": "x"},
            "ActionParameterNotSupported",
        ),
        (
            lambda ca, r: {
                "CertificateString": pem(ca.sign_csr(r)),
                "CertificateType": "PEM",
            },
            "ActionParameterMissing",
        ),
    ],
    ids=[
        "garbage",
        "bad-base64",
        "csr",
        "unknown-key",
        "own-key",
        "expired",
        "not-yet-valid",
        "pkcs7",
        "der",
        "unknown-uri",
        "empty-trust-uri",
        "collection-uri",
        "uri-not-object",
        "password",
        "no-uri",
    ],
)
async def test_bad_replace_changes_nothing(
    client: TestClient, body: Any, message: str
) -> None:
    request = await csr(client)
    before = await served(client)

    response = await post(client, REPLACE, body(TestCA(), request))

    assert response.status == 400, await response.text()
    assert (await error_ids(response))[0] == message
    assert await served(client) == before
    # The pending key is still there: a good certificate goes in afterwards.
    good = await post(client, REPLACE, replace_body(pem(TestCA().sign_csr(request))))
    assert good.status == 200


async def test_bad_post_changes_nothing(client: TestClient) -> None:
    request = await csr(client)
    before = await served(client)
    ca = TestCA()
    cases = [
        (
            {"CertificateString": "junk", "CertificateType": "PEM"},
            "PropertyValueFormatError",
        ),
        (
            {"CertificateString": _expired(ca, request), "CertificateType": "PEM"},
            "PropertyValueOutOfRange",
        ),
        (
            {"CertificateString": _other_key(ca, request), "CertificateType": "PEM"},
            "PropertyValueIncorrect",
        ),
        (
            {
                "CertificateString": pem(ca.sign_csr(request)),
                "CertificateType": "PKCS12",
            },
            "PropertyValueNotInList",
        ),
        ({"CertificateString": pem(ca.sign_csr(request))}, "PropertyMissing"),
        (
            {"CertificateString": None, "CertificateType": "PEM"},
            "PropertyValueTypeError",
        ),
    ]
    for body, message in cases:
        response = await post(client, HTTPS, body)
        assert response.status == 400, (body, await response.text())
        assert message in await error_ids(response), body
        assert await served(client) == before


async def test_own_key_when_configured(make_client: MakeClient, config: Config) -> None:
    client = await make_client(
        dataclasses.replace(config, tls=TLSConfig(allow_key_upload=True))
    )
    certificate, key = TestCA().server_certificate()
    response = await post(
        client, REPLACE, replace_body(key_pem(key) + pem(certificate))
    )
    assert response.status == 200, await response.text()
    body = await response.json()
    assert "PRIVATE KEY" not in body["CertificateString"]
    assert (await served(client))[0] == fingerprint(pem(certificate))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"KeyPairAlgorithm": "TPM_ALG_DSA"}, "ActionParameterValueNotInList"),
        (
            {"KeyPairAlgorithm": "TPM_ALG_RSA", "KeyBitLength": 1024},
            "ActionParameterValueNotInList",
        ),
        (
            {"KeyPairAlgorithm": "TPM_ALG_ECDSA", "KeyCurveId": "TPM_ECC_NIST_P521"},
            "ActionParameterValueNotInList",
        ),
        ({"KeyUsage": ["Shouting"]}, "ActionParameterValueNotInList"),
        ({"KeyUsage": [7]}, "ActionParameterValueTypeError"),
        (
            {"CertificateCollection": {"@odata.id": TRUSTED}},
            "ActionParameterValueNotInList",
        ),
        (
            {"CertificateCollection": {"@odata.id": "/redfish/v1/Nowhere"}},
            "ActionParameterValueNotInList",
        ),
        (
            {"CertificateCollection": {"@odata.id": 5}},
            "ActionParameterValueFormatError",
        ),
        ({"CommonName": None}, "ActionParameterValueTypeError"),
        ({"Country": "USA"}, "ActionParameterValueFormatError"),
        ({"AlternativeNames": ["not a host"]}, "ActionParameterValueFormatError"),
        (
            {"KeyPairAlgorithm": "TPM_ALG_RSA", "KeyCurveId": "TPM_ECC_NIST_P256"},
            "ActionParameterValueConflict",
        ),
        (
            {"KeyPairAlgorithm": "TPM_ALG_ECDSA", "KeyBitLength": 4096},
            "ActionParameterValueConflict",
        ),
        ({"KeyUsage": ["DecipherOnly"]}, "ActionParameterValueConflict"),
        ({"Colour": "blue"}, "ActionParameterUnknown"),
    ],
    ids=lambda v: str(v)[:40],
)
async def test_bad_generate_csr(
    client: TestClient, change: dict[str, Any], message: str
) -> None:
    manager = CERTIFICATES.get(client.app)
    response = await post(client, GENERATE_CSR, {**CSR_BODY, **change})
    assert response.status == 400, await response.text()
    assert message in await error_ids(response)
    assert manager.pending.count() == 0


def _addresses(count: int) -> list[str]:
    return [f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}" for i in range(count)]


async def test_generate_csr_takes_the_most_alternative_names(
    client: TestClient,
) -> None:
    names = _addresses(MAX_ALTERNATIVE_NAMES)
    text = await csr(client, AlternativeNames=names)
    request = x509.load_pem_x509_csr(text.encode())
    san = request.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert len(san.value) == MAX_ALTERNATIVE_NAMES + 1  # and the CommonName


@pytest.mark.parametrize(
    "names",
    [
        _addresses(MAX_ALTERNATIVE_NAMES + 1),
        # Once hung the daemon for minutes: refused before any per-name work.
        _addresses(60_000),
        [7] * 60_000,
    ],
    ids=["one-too-many", "60000-addresses", "60000-non-strings"],
)
async def test_too_many_alternative_names_are_refused(
    client: TestClient, names: list[Any]
) -> None:
    manager = CERTIFICATES.get(client.app)
    response = await post(
        client, GENERATE_CSR, {**CSR_BODY, **FAST_KEY, "AlternativeNames": names}
    )
    assert response.status == 400, await response.text()
    (message,) = (await response.json())["error"]["@Message.ExtendedInfo"]
    assert message["MessageId"].endswith(".ArraySizeTooLong")
    assert message["MessageArgs"] == ["AlternativeNames", str(MAX_ALTERNATIVE_NAMES)]
    assert manager.pending.count() == 0


async def test_generate_csr_needs_common_name(client: TestClient) -> None:
    body = {k: v for k, v in CSR_BODY.items() if k != "CommonName"}
    response = await post(client, GENERATE_CSR, body)
    assert response.status == 400
    assert await error_ids(response) == ["ActionParameterMissing"]


# Trust store


async def test_trust_store(client: TestClient) -> None:
    ca = TestCA("event receiver CA")
    response = await post(
        client, TRUSTED, {"CertificateString": ca.pem, "CertificateType": "PEM"}
    )
    assert response.status == 201, await response.text()
    uri = response.headers["Location"]
    assert uri == f"{TRUSTED}/1"
    body = await get(client, uri)
    assert body["Fingerprint"] == fingerprint(ca.pem)
    assert body["Subject"]["CommonName"] == "event receiver CA"
    assert "CertificateUsageTypes" not in body
    assert (await get(client, TRUSTED))["Members"] == [{"@odata.id": uri}]
    locations = await get(client, f"{SERVICE}/CertificateLocations")
    assert {"@odata.id": uri} in locations["Links"]["Certificates"]

    duplicate = await post(
        client, TRUSTED, {"CertificateString": ca.pem, "CertificateType": "PEM"}
    )
    assert duplicate.status == 409
    assert await error_ids(duplicate) == ["ResourceAlreadyExists"]

    other = TestCA("other CA")
    replaced = await post(client, REPLACE, replace_body(other.pem, uri=uri))
    assert replaced.status == 200, await replaced.text()
    assert (await get(client, uri))["Fingerprint"] == fingerprint(other.pem)

    deleted = await client.delete(uri, headers=ADMIN_HEADERS)
    assert deleted.status == 204
    assert (await client.get(uri, headers=ADMIN_HEADERS)).status == 404
    assert (await client.delete(uri, headers=ADMIN_HEADERS)).status == 404


async def test_https_certificate_is_never_deleted(client: TestClient) -> None:
    before = await served(client)
    response = await client.delete(HTTPS_CERT, headers=ADMIN_HEADERS)
    assert response.status == 409
    assert await error_ids(response) == ["ResourceCannotBeDeleted"]
    assert await served(client) == before

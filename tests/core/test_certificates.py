"""The certificate manager: CSRs, pending keys, installs, the trust store, expiry."""

from __future__ import annotations

import datetime
import ipaddress
import logging
import os
import ssl
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from certauthority import DAY, TestCA, fingerprint, key_pem, now, pem
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from bmcd.core.certificates import (
    MAX_PENDING_CSRS,
    CertificateManager,
    CertificateRejected,
    Problem,
    Slot,
)
from bmcd.core.csr import (
    CHALLENGE_PASSWORD,
    MAX_ALTERNATIVE_NAMES,
    UNSTRUCTURED_NAME,
    CSRParameterError,
    CSRRequest,
    check_request,
)
from bmcd.http.tls import TLSContextHolder, make_self_signed

KEY_TYPES = [
    ("TPM_ALG_RSA", 2048, None),
    ("TPM_ALG_RSA", 3072, None),
    ("TPM_ALG_RSA", 4096, None),
    ("TPM_ALG_ECDSA", None, "TPM_ECC_NIST_P256"),
    ("TPM_ALG_ECDSA", None, "TPM_ECC_NIST_P384"),
]


class Server:
    """The HTTPS slot's files and a TLS holder that counts reloads."""

    def __init__(self, tmp_path: Path) -> None:
        self.cert_file = tmp_path / "tls" / "server.crt"
        self.key_file = tmp_path / "tls" / "server.key"
        make_self_signed(self.cert_file, self.key_file)
        self.holder = TLSContextHolder(self.cert_file, self.key_file)
        self.reloads = 0
        self.fail_next_reload = False

    def reload(self) -> None:
        if self.fail_next_reload:
            self.fail_next_reload = False
            raise ssl.SSLError("simulated reload failure")
        self.holder.reload()
        self.reloads += 1

    def files(self) -> tuple[bytes, bytes]:
        return self.cert_file.read_bytes(), self.key_file.read_bytes()


@pytest.fixture
def server(tmp_path: Path) -> Server:
    return Server(tmp_path)


def make_manager(
    tmp_path: Path, server: Server, **options: object
) -> CertificateManager:
    return CertificateManager(tmp_path / "state", server, **options)  # type: ignore[arg-type]


@pytest.fixture
async def manager(tmp_path: Path, server: Server) -> AsyncIterator[CertificateManager]:
    manager = make_manager(tmp_path, server)
    await manager.start()
    yield manager
    manager.close()


def request(**overrides: object) -> CSRRequest:
    fields: dict[str, object] = {
        "subject": {
            "CommonName": "bmc.example.test",
            "Organization": "Acme",
            "OrganizationalUnit": "Lab",
            "City": "Springfield",
            "State": "Oregon",
            "Country": "us",
            "Email": "ops@example.test",
        },
        "alternative_names": ("bmc2.example.test", "192.0.2.10", "2001:db8::10"),
    }
    fields.update(overrides)
    return CSRRequest(**fields)  # type: ignore[arg-type]


async def served_fingerprint(manager: CertificateManager) -> str:
    (stored,) = await manager.installed(Slot.HTTPS)
    return stored.facts.fingerprint


# CSRs


@pytest.mark.parametrize(("algorithm", "bits", "curve"), KEY_TYPES)
async def test_csr_for_each_key_type_signed_and_installed(
    manager: CertificateManager,
    server: Server,
    algorithm: str,
    bits: int | None,
    curve: str | None,
) -> None:
    csr_pem = await manager.generate_csr(
        request(key_pair_algorithm=algorithm, key_bit_length=bits, key_curve_id=curve)
    )
    csr = x509.load_pem_x509_csr(csr_pem.encode())
    assert csr.is_signature_valid
    key = csr.public_key()
    if algorithm == "TPM_ALG_RSA":
        assert isinstance(key, rsa.RSAPublicKey) and key.key_size == bits
    else:
        assert isinstance(key, ec.EllipticCurvePublicKey)
        assert (
            key.curve.name
            == {"TPM_ECC_NIST_P256": "secp256r1", "TPM_ECC_NIST_P384": "secp384r1"}[
                curve or ""
            ]
        )
    (pending,) = list(manager.pending.directory.iterdir())
    assert stat.S_IMODE(pending.stat().st_mode) == 0o600

    ca = TestCA()
    certificate = ca.sign_csr(csr_pem)
    stored = await manager.install(Slot.HTTPS, pem(certificate))

    assert stored.facts.fingerprint == fingerprint(pem(certificate))
    assert await served_fingerprint(manager) == stored.facts.fingerprint
    assert server.reloads == 1
    assert list(manager.pending.directory.iterdir()) == []
    assert stat.S_IMODE(server.key_file.stat().st_mode) == 0o600
    assert "PRIVATE KEY" not in csr_pem


async def test_csr_contents(manager: CertificateManager) -> None:
    csr_pem = await manager.generate_csr(
        request(
            subject={
                "CommonName": "bmc.example.test",
                "Country": "DE",
                "GivenName": "Ada",
                "Surname": "Lovelace",
                "Initials": "AL",
                "ContactPerson": "Ada Lovelace",
                "Email": "ada@example.test",
            },
            key_pair_algorithm="TPM_ALG_ECDSA",
            key_usage=(
                "DigitalSignature",
                "KeyAgreement",
                "ServerAuthentication",
                "ClientAuthentication",
            ),
            challenge_password="revoke-me-1",
            unstructured_name="bmc one",
        )
    )
    csr = x509.load_pem_x509_csr(csr_pem.encode())

    subject = {a.oid: a.value for a in csr.subject}
    assert subject[NameOID.COMMON_NAME] == "bmc.example.test"
    assert subject[NameOID.COUNTRY_NAME] == "DE"
    assert subject[NameOID.GIVEN_NAME] == "Ada"
    assert subject[NameOID.SURNAME] == "Lovelace"
    assert subject[NameOID.EMAIL_ADDRESS] == "ada@example.test"
    san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [
        "bmc.example.test",
        "bmc2.example.test",
    ]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("192.0.2.10"),
        ipaddress.ip_address("2001:db8::10"),
    ]
    usage = csr.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature
    assert usage.value.key_agreement and not usage.value.key_encipherment
    extended = csr.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(extended) == [
        ExtendedKeyUsageOID.SERVER_AUTH,
        ExtendedKeyUsageOID.CLIENT_AUTH,
    ]
    attributes = csr.attributes
    assert attributes.get_attribute_for_oid(CHALLENGE_PASSWORD).value == (
        b"revoke-me-1"
    )
    assert attributes.get_attribute_for_oid(UNSTRUCTURED_NAME).value == b"bmc one"


async def test_as_many_alternative_names_as_allowed(
    manager: CertificateManager,
) -> None:
    # Half of them repeat (in another spelling): each name appears once, in
    # the order given, after the common name.
    distinct = [f"host{i}.example.test" for i in range(MAX_ALTERNATIVE_NAMES // 2)]
    names = [*distinct, *(f"DNS:{n.upper()}" for n in distinct)]
    csr_pem = await manager.generate_csr(
        request(
            subject={"CommonName": "192.0.2.1"},
            alternative_names=tuple(names),
            key_pair_algorithm="TPM_ALG_ECDSA",
        )
    )
    csr = x509.load_pem_x509_csr(csr_pem.encode())
    san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("192.0.2.1")
    ]
    assert san.get_values_for_type(x509.DNSName) == distinct


async def test_default_key_is_rsa_2048_for_a_tls_server(
    manager: CertificateManager,
) -> None:
    csr_pem = await manager.generate_csr(request())
    csr = x509.load_pem_x509_csr(csr_pem.encode())
    key = csr.public_key()
    assert isinstance(key, rsa.RSAPublicKey) and key.key_size == 2048
    usage = csr.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and usage.key_encipherment
    extended = csr.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(extended) == [ExtendedKeyUsageOID.SERVER_AUTH]


@pytest.mark.parametrize(
    ("overrides", "parameter", "conflict"),
    [
        (
            {"key_pair_algorithm": "TPM_ALG_RSA", "key_curve_id": "TPM_ECC_NIST_P256"},
            "KeyCurveId",
            True,
        ),
        (
            {"key_pair_algorithm": "TPM_ALG_RSA", "key_bit_length": 256},
            "KeyBitLength",
            True,
        ),
        (
            {"key_pair_algorithm": "TPM_ALG_ECDSA", "key_bit_length": 2048},
            "KeyBitLength",
            True,
        ),
        (
            {"key_curve_id": "TPM_ECC_NIST_P384", "key_bit_length": 256},
            "KeyBitLength",
            True,
        ),
        ({"key_pair_algorithm": "TPM_ALG_DSA"}, "KeyPairAlgorithm", False),
        ({"subject": {"CommonName": "x", "Country": "USA"}}, "Country", False),
        ({"subject": {"CommonName": ""}}, "CommonName", False),
        ({"subject": {"CommonName": "x" * 65}}, "CommonName", False),
        ({"subject": {"CommonName": "x", "Email": "not-an-address"}}, "Email", False),
        ({"alternative_names": ("not a host name",)}, "AlternativeNames", False),
        ({"alternative_names": ("x" * 254,)}, "AlternativeNames", False),
        (
            {"alternative_names": ("a.example.test",) * (MAX_ALTERNATIVE_NAMES + 1)},
            "AlternativeNames",
            False,
        ),
        ({"key_usage": ("Shouting",)}, "KeyUsage", False),
        ({"key_usage": ("EncipherOnly",)}, "KeyUsage", True),
    ],
)
async def test_bad_csr_requests_are_refused_without_a_key(
    manager: CertificateManager,
    overrides: dict[str, object],
    parameter: str,
    conflict: bool,
) -> None:
    bad = request(**overrides)
    with pytest.raises(CSRParameterError) as caught:
        check_request(bad)
    assert caught.value.parameter == parameter
    assert caught.value.conflict is conflict
    with pytest.raises(CSRParameterError):
        await manager.generate_csr(bad)
    assert manager.pending.count() == 0


async def test_pending_keys_are_bounded_and_expire(manager: CertificateManager) -> None:
    fast = request(key_pair_algorithm="TPM_ALG_ECDSA")
    first = await manager.generate_csr(fast)
    for _ in range(MAX_PENDING_CSRS + 1):
        await manager.generate_csr(fast)
    assert manager.pending.count() == MAX_PENDING_CSRS

    # The oldest key went: its certificate now matches nothing.
    certificate = TestCA().sign_csr(first)
    with pytest.raises(CertificateRejected) as caught:
        await manager.install(Slot.HTTPS, pem(certificate))
    assert caught.value.problem is Problem.NO_MATCHING_KEY

    old = (now() - 31 * DAY).timestamp()
    for path in manager.pending.directory.iterdir():
        os.utime(path, (old, old))
    await manager.prune_pending()
    assert manager.pending.count() == 0


async def test_several_csrs_pending_any_can_be_installed(
    manager: CertificateManager,
) -> None:
    fast = request(key_pair_algorithm="TPM_ALG_ECDSA")
    csrs = [await manager.generate_csr(fast) for _ in range(3)]
    ca = TestCA()
    second = ca.sign_csr(csrs[1])
    await manager.install(Slot.HTTPS, pem(second))
    assert manager.pending.count() == 2
    first = ca.sign_csr(csrs[0])
    await manager.install(Slot.HTTPS, pem(first))
    assert await served_fingerprint(manager) == fingerprint(pem(first))


# Installing the HTTPS certificate


async def test_chain_is_served_leaf_first(
    manager: CertificateManager, server: Server
) -> None:
    root = TestCA("root")
    intermediate = TestCA("intermediate", issuer=root)
    csr = await manager.generate_csr(request(key_pair_algorithm="TPM_ALG_ECDSA"))
    leaf = intermediate.sign_csr(csr)
    # Chain first, leaf last: bmcd finds the leaf by its key.
    await manager.replace(Slot.HTTPS, "1", intermediate.pem + pem(leaf))
    served = server.cert_file.read_text()
    assert served.index(pem(leaf)) == 0
    assert intermediate.pem in served


async def test_renewal_with_the_current_key(
    manager: CertificateManager, server: Server
) -> None:
    current = x509.load_pem_x509_certificate(server.cert_file.read_bytes())
    renewed = TestCA().issue(current.public_key(), current.subject)
    await manager.install(Slot.HTTPS, pem(renewed))
    assert await served_fingerprint(manager) == fingerprint(pem(renewed))


def _expired(ca: TestCA, csr: str) -> x509.Certificate:
    return ca.sign_csr(csr, not_before=now() - 10 * DAY, not_after=now() - DAY)


def _future(ca: TestCA, csr: str) -> x509.Certificate:
    return ca.sign_csr(csr, not_before=now() + DAY, not_after=now() + 10 * DAY)


def _with_key(ca: TestCA) -> str:
    certificate, key = ca.server_certificate()
    return pem(certificate) + key_pem(key)


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda ca, csr, other: "garbage", Problem.FORMAT),
        (
            lambda ca, csr, other: (
                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
            ),
            Problem.FORMAT,
        ),
        (lambda ca, csr, other: csr, Problem.FORMAT),  # a CSR is not a certificate
        (lambda ca, csr, other: pem(ca.sign_csr(other)), Problem.NO_MATCHING_KEY),
        (lambda ca, csr, other: pem(_expired(ca, csr)), Problem.EXPIRED),
        (lambda ca, csr, other: pem(_future(ca, csr)), Problem.NOT_YET_VALID),
        (lambda ca, csr, other: _with_key(ca), Problem.KEY_NOT_ALLOWED),
    ],
)
async def test_bad_certificates_change_nothing(
    manager: CertificateManager, server: Server, make: object, problem: Problem
) -> None:
    fast = request(key_pair_algorithm="TPM_ALG_ECDSA")
    csr = await manager.generate_csr(fast)
    # A CSR made elsewhere: its key is not on this BMC.
    other = await make_manager(
        server.cert_file.parent.parent / "elsewhere", server
    ).generate_csr(fast)
    before = server.files()
    text = make(TestCA(), csr, other)  # type: ignore[operator]

    with pytest.raises(CertificateRejected) as caught:
        await manager.replace(Slot.HTTPS, "1", text)

    assert caught.value.problem is problem
    assert server.files() == before
    assert server.reloads == 0
    assert manager.pending.count() == 1


async def test_own_key_accepted_when_configured(tmp_path: Path, server: Server) -> None:
    manager = make_manager(tmp_path, server, allow_key_upload=True)
    await manager.start()
    certificate, key = TestCA().server_certificate()
    await manager.install(Slot.HTTPS, key_pem(key) + pem(certificate))
    assert await served_fingerprint(manager) == fingerprint(pem(certificate))

    other, _ = TestCA().server_certificate()
    with pytest.raises(CertificateRejected) as caught:
        await manager.install(Slot.HTTPS, key_pem(key) + pem(other))
    assert caught.value.problem is Problem.NO_MATCHING_KEY


async def test_failed_reload_restores_the_old_pair(
    manager: CertificateManager, server: Server
) -> None:
    before = server.files()
    csr = await manager.generate_csr(request(key_pair_algorithm="TPM_ALG_ECDSA"))
    server.fail_next_reload = True
    with pytest.raises(ssl.SSLError):
        await manager.install(Slot.HTTPS, pem(TestCA().sign_csr(csr)))
    assert server.files() == before
    assert server.reloads == 1  # the restore reloaded the old pair


async def test_https_certificate_cannot_be_deleted(manager: CertificateManager) -> None:
    with pytest.raises(CertificateRejected) as caught:
        await manager.delete(Slot.HTTPS, "1")
    assert caught.value.problem is Problem.LAST
    assert len(await manager.installed(Slot.HTTPS)) == 1


# Trust store


async def test_trust_store_install_duplicate_delete(
    manager: CertificateManager,
) -> None:
    first, second = TestCA("first CA"), TestCA("second CA")
    one = await manager.install(Slot.TRUST, first.pem)
    two = await manager.install(Slot.TRUST, second.pem)
    assert (one.id, two.id) == ("1", "2")
    assert one.facts.is_ca

    with pytest.raises(CertificateRejected) as caught:
        await manager.install(Slot.TRUST, first.pem)
    assert caught.value.problem is Problem.DUPLICATE
    with pytest.raises(CertificateRejected) as caught:
        await manager.install(Slot.TRUST, first.pem + second.pem)
    assert caught.value.problem is Problem.NOT_ONE
    certificate, key = first.server_certificate()
    with pytest.raises(CertificateRejected) as caught:
        await manager.install(Slot.TRUST, pem(certificate) + key_pem(key))
    assert caught.value.problem is Problem.KEY_NOT_ALLOWED

    third = TestCA("third CA")
    await manager.replace(Slot.TRUST, "2", third.pem)
    replaced = await manager.get(Slot.TRUST, "2")
    assert replaced is not None
    assert replaced.facts.fingerprint == fingerprint(third.pem)

    await manager.delete(Slot.TRUST, "1")
    assert [s.id for s in await manager.installed(Slot.TRUST)] == ["2"]
    with pytest.raises(KeyError):
        await manager.delete(Slot.TRUST, "1")


async def test_outbound_context_trusts_the_store(
    manager: CertificateManager, tmp_path: Path
) -> None:
    ca = TestCA()
    certificate, key = ca.server_certificate()
    (tmp_path / "peer.crt").write_text(pem(certificate))
    (tmp_path / "peer.key").write_text(key_pem(key))
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(tmp_path / "peer.crt", tmp_path / "peer.key")

    before = await manager.client_context(system_cas=False)
    assert not _handshake(before, server_context)
    await manager.install(Slot.TRUST, ca.pem)
    after = await manager.client_context(system_cas=False)
    assert _handshake(after, server_context)


def _handshake(client: ssl.SSLContext, server: ssl.SSLContext) -> bool:
    """A TLS handshake in memory; True if the client accepted the server."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client_side = client.wrap_bio(c_in, c_out, server_hostname="127.0.0.1")
    server_side = server.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(10):
        for side, out, peer_in in (
            (client_side, c_out, s_in),
            (server_side, s_out, c_in),
        ):
            try:
                side.do_handshake()
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLCertVerificationError:
                return False
            except ssl.SSLError:
                if side is client_side:
                    return False
            peer_in.write(out.read())
        try:
            client_side.do_handshake()
            return True
        except ssl.SSLWantReadError:
            continue
        except ssl.SSLError:
            return False
    return False


# Expiry


async def test_expiring_certificates_are_logged(
    manager: CertificateManager, caplog: pytest.LogCaptureFixture
) -> None:
    ca = TestCA()
    soon = ca.issue(ca.key.public_key(), ca.name, not_after=now() + 3 * DAY)
    await manager.install(Slot.TRUST, pem(soon))
    with caplog.at_level(logging.WARNING, logger="bmcd.core.certificates"):
        expiring = await manager.check_expiry()
    assert [s.id for s in expiring] == ["1"]
    assert "Trusted CA certificate 1" in caplog.text
    assert "expires in 2 days" in caplog.text
    # A CA is renewed by its owner, not with a CSR from this BMC.
    assert "GenerateCSR" not in caplog.text
    assert "renewed certificate" in caplog.text


async def test_start_reports_an_expiring_https_certificate(
    tmp_path: Path, server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    manager = make_manager(tmp_path, server, expiry_warning_days=3651)
    with caplog.at_level(logging.WARNING, logger="bmcd.core.certificates"):
        await manager.start()
    assert "HTTPS certificate" in caplog.text
    assert "expires in" in caplog.text
    assert "GenerateCSR, then ReplaceCertificate" in caplog.text


def test_validity_edge_uses_utc() -> None:
    # cryptography 38 gives naive datetimes; bmcd compares aware UTC ones.
    ca = TestCA()
    from bmcd.core.certinfo import not_after

    assert not_after(ca.certificate).tzinfo is not None
    assert not_after(ca.certificate) > now() + datetime.timedelta(days=300)

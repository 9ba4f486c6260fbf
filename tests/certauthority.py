"""A throwaway certificate authority for certificate tests (trusted nowhere)."""

from __future__ import annotations

import datetime
import ipaddress

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

Key = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
DAY = datetime.timedelta(days=1)
# Python 3.13's default SSL context verifies strictly (VERIFY_X509_STRICT): CA
# certificates need key usage and key identifiers, issued ones an AKI.
_CA_KEY_USAGE = x509.KeyUsage(
    digital_signature=False,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=True,
    crl_sign=True,
    encipher_only=False,
    decipher_only=False,
)


def now() -> datetime.datetime:
    """The current time, UTC."""
    return datetime.datetime.now(datetime.UTC)


def pem(certificate: x509.Certificate) -> str:
    """PEM text of a certificate."""
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def key_pem(key: Key) -> str:
    """Unencrypted PKCS#8 PEM text of a key."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _authority_key_id(issuer_key: Key) -> x509.AuthorityKeyIdentifier:
    return x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key())


def fingerprint(certificate_pem: str | bytes) -> str:
    """SHA-256 fingerprint as Redfish shows it (AA:BB:...)."""
    data = (
        certificate_pem.encode()
        if isinstance(certificate_pem, str)
        else (certificate_pem)
    )
    if data.lstrip().startswith(b"-----"):
        certificate = x509.load_pem_x509_certificate(data)
    else:
        certificate = x509.load_der_x509_certificate(data)
    return ":".join(f"{b:02X}" for b in certificate.fingerprint(hashes.SHA256()))


class TestCA:
    """A CA made for one test: signs CSRs and issues certificates."""

    __test__ = False  # not a pytest test class

    def __init__(
        self, common_name: str = "bmcd test CA", issuer: TestCA | None = None
    ) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "bmcd tests"),
            ]
        )
        signer = issuer or self
        builder = (
            x509.CertificateBuilder()
            .subject_name(self.name)
            .issuer_name(signer.name if issuer else self.name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now() - DAY)
            .not_valid_after(now() + 365 * DAY)
            .add_extension(
                x509.BasicConstraints(ca=True, path_length=None), critical=True
            )
            .add_extension(_CA_KEY_USAGE, critical=True)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()),
                critical=False,
            )
            .add_extension(_authority_key_id(signer.key), critical=False)
        )
        self.certificate = builder.sign(signer.key, hashes.SHA256())

    @property
    def pem(self) -> str:
        """This CA's certificate, PEM."""
        return pem(self.certificate)

    def issue(
        self,
        public_key: object,
        subject: x509.Name,
        *,
        alt_names: list[x509.GeneralName] | None = None,
        not_before: datetime.datetime | None = None,
        not_after: datetime.datetime | None = None,
    ) -> x509.Certificate:
        """A server certificate for ``public_key``."""
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.name)
            .public_key(public_key)  # type: ignore[arg-type]
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or now() - DAY)
            .not_valid_after(not_after or now() + 30 * DAY)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
            )
            .add_extension(_authority_key_id(self.key), critical=False)
        )
        if alt_names:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(alt_names), critical=False
            )
        return builder.sign(self.key, hashes.SHA256())

    def sign_csr(
        self, csr_pem: str | bytes, **validity: datetime.datetime
    ) -> x509.Certificate:
        """A certificate for a CSR's key, subject and SANs."""
        data = csr_pem.encode() if isinstance(csr_pem, str) else csr_pem
        csr = x509.load_pem_x509_csr(data)
        assert csr.is_signature_valid
        try:
            san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
            names = list(san.value)
        except x509.ExtensionNotFound:
            names = []
        return self.issue(csr.public_key(), csr.subject, alt_names=names, **validity)

    def server_certificate(
        self, common_name: str = "127.0.0.1"
    ) -> tuple[x509.Certificate, Key]:
        """A fresh key and a certificate for it (for key-upload tests)."""
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        names: list[x509.GeneralName] = [
            x509.IPAddress(ipaddress.ip_address("127.0.0.1"))
        ]
        return self.issue(key.public_key(), subject, alt_names=names), key

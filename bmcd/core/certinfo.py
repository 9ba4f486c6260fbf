"""Reading X.509 certificates: PEM bundles and the facts Redfish shows of them.

Runs on cryptography 38 (Debian 12) and current releases alike: no
``load_pem_x509_certificates`` (39+) and no ``not_valid_after_utc`` (42+).
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import (
    ExtendedKeyUsageOID,
    NameOID,
    ObjectIdentifier,
    SignatureAlgorithmOID,
)

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

# A bundle is a certificate, its chain and maybe a key: a few blocks at most.
MAX_PEM_BLOCKS = 16
_PEM_BLOCK = re.compile(
    rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----", re.DOTALL
)
_KEY_LABELS = {b"PRIVATE KEY", b"RSA PRIVATE KEY", b"EC PRIVATE KEY"}

# Redfish KeyUsage values -> attribute of cryptography's KeyUsage extension.
KEY_USAGE_BITS: dict[str, str] = {
    "DigitalSignature": "digital_signature",
    "NonRepudiation": "content_commitment",
    "KeyEncipherment": "key_encipherment",
    "DataEncipherment": "data_encipherment",
    "KeyAgreement": "key_agreement",
    "KeyCertSign": "key_cert_sign",
    "CRLSigning": "crl_sign",
    "EncipherOnly": "encipher_only",
    "DecipherOnly": "decipher_only",
}
# Redfish KeyUsage values -> extended key usage OIDs.
EXTENDED_KEY_USAGES: dict[str, ObjectIdentifier] = {
    "ServerAuthentication": ExtendedKeyUsageOID.SERVER_AUTH,
    "ClientAuthentication": ExtendedKeyUsageOID.CLIENT_AUTH,
    "CodeSigning": ExtendedKeyUsageOID.CODE_SIGNING,
    "EmailProtection": ExtendedKeyUsageOID.EMAIL_PROTECTION,
    "Timestamping": ExtendedKeyUsageOID.TIME_STAMPING,
    "OCSPSigning": ExtendedKeyUsageOID.OCSP_SIGNING,
}
KEY_USAGES: tuple[str, ...] = (*KEY_USAGE_BITS, *EXTENDED_KEY_USAGES)

# Name attributes shown, by the short names RFC 4514 and OpenSSL use.
NAME_FIELDS: dict[ObjectIdentifier, str] = {
    NameOID.COMMON_NAME: "CN",
    NameOID.ORGANIZATION_NAME: "O",
    NameOID.ORGANIZATIONAL_UNIT_NAME: "OU",
    NameOID.LOCALITY_NAME: "L",
    NameOID.STATE_OR_PROVINCE_NAME: "ST",
    NameOID.COUNTRY_NAME: "C",
    NameOID.EMAIL_ADDRESS: "emailAddress",
    NameOID.DOMAIN_COMPONENT: "DC",
}

# RFC 3279/4055/5758/8410 names of the usual signature algorithms.
_SIGNATURE_NAMES: dict[ObjectIdentifier, str] = {
    SignatureAlgorithmOID.RSA_WITH_SHA1: "sha1WithRSAEncryption",
    SignatureAlgorithmOID.RSA_WITH_SHA224: "sha224WithRSAEncryption",
    SignatureAlgorithmOID.RSA_WITH_SHA256: "sha256WithRSAEncryption",
    SignatureAlgorithmOID.RSA_WITH_SHA384: "sha384WithRSAEncryption",
    SignatureAlgorithmOID.RSA_WITH_SHA512: "sha512WithRSAEncryption",
    SignatureAlgorithmOID.RSASSA_PSS: "RSASSA-PSS",
    SignatureAlgorithmOID.ECDSA_WITH_SHA1: "ecdsa-with-SHA1",
    SignatureAlgorithmOID.ECDSA_WITH_SHA224: "ecdsa-with-SHA224",
    SignatureAlgorithmOID.ECDSA_WITH_SHA256: "ecdsa-with-SHA256",
    SignatureAlgorithmOID.ECDSA_WITH_SHA384: "ecdsa-with-SHA384",
    SignatureAlgorithmOID.ECDSA_WITH_SHA512: "ecdsa-with-SHA512",
    SignatureAlgorithmOID.ED25519: "Ed25519",
    SignatureAlgorithmOID.ED448: "Ed448",
}


class BundleError(ValueError):
    """Text that is not a usable PEM bundle; the text says why."""


@dataclass(frozen=True)
class Bundle:
    """The certificates and private keys of one PEM text, in their order."""

    certificates: tuple[x509.Certificate, ...]
    keys: tuple[PrivateKey, ...]


@dataclass(frozen=True)
class NameFacts:
    """A distinguished name: its attributes by short name, and as one line."""

    fields: dict[str, tuple[str, ...]]
    display: str


@dataclass(frozen=True)
class CertificateFacts:
    """What bmcd shows of one certificate."""

    pem: str
    subject: NameFacts
    issuer: NameFacts
    alt_names: tuple[str, ...]
    not_before: datetime.datetime
    not_after: datetime.datetime
    serial: str
    fingerprint: str
    signature_algorithm: str
    key_usage: tuple[str, ...]
    is_ca: bool


def parse_bundle(text: str | bytes) -> Bundle:
    """Certificates and keys of a PEM text; BundleError if it has no certificate."""
    data = text.encode("utf-8") if isinstance(text, str) else text
    certificates: list[x509.Certificate] = []
    keys: list[PrivateKey] = []
    for count, block in enumerate(_PEM_BLOCK.finditer(data), 1):
        if count > MAX_PEM_BLOCKS:
            raise BundleError(f"more than {MAX_PEM_BLOCKS} PEM blocks")
        label = block.group(1)
        if label == b"CERTIFICATE":
            certificates.append(_certificate(block.group(0), count))
        elif label in _KEY_LABELS:
            keys.append(_private_key(block.group(0), count))
        elif label == b"ENCRYPTED PRIVATE KEY":
            raise BundleError("encrypted private keys are not accepted")
        else:
            raise BundleError(
                f"PEM block {count} is a {label.decode()}, "
                "not a CERTIFICATE or PRIVATE KEY"
            )
    if not certificates:
        raise BundleError("no PEM CERTIFICATE block found")
    return Bundle(tuple(certificates), tuple(keys))


def _certificate(pem: bytes, index: int) -> x509.Certificate:
    try:
        certificate = x509.load_pem_x509_certificate(pem)
        # Parsed lazily: touch what bmcd reads so a bad field fails here.
        certificate.extensions  # noqa: B018
        certificate.serial_number  # noqa: B018
        not_after(certificate)
    except (
        ValueError,
        x509.DuplicateExtension,
        x509.UnsupportedGeneralNameType,
    ) as err:
        raise BundleError(
            f"PEM block {index} is not a valid X.509 certificate ({err})"
        ) from None
    return certificate


def _private_key(pem: bytes, index: int) -> PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except TypeError:
        raise BundleError("encrypted private keys are not accepted") from None
    except (ValueError, UnsupportedAlgorithm) as err:
        raise BundleError(
            f"PEM block {index} is not a valid private key ({err})"
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise BundleError(f"PEM block {index}: only RSA and ECDSA keys are accepted")
    return key


def certificate_pem(certificate: x509.Certificate) -> bytes:
    """The PEM encoding of ``certificate``."""
    return certificate.public_bytes(serialization.Encoding.PEM)


def key_pem(key: PrivateKey) -> bytes:
    """The unencrypted PKCS#8 PEM encoding of ``key``."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_key_id(
    item: x509.Certificate | x509.CertificateSigningRequest | PrivateKey,
) -> bytes:
    """The DER SubjectPublicKeyInfo of a certificate, CSR or key, for matching."""
    return item.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def not_before(certificate: x509.Certificate) -> datetime.datetime:
    """Start of validity, timezone-aware UTC."""
    value: datetime.datetime | None = getattr(certificate, "not_valid_before_utc", None)
    if value is None:  # cryptography < 42: naive UTC
        value = certificate.not_valid_before.replace(tzinfo=datetime.UTC)
    return value


def not_after(certificate: x509.Certificate) -> datetime.datetime:
    """End of validity, timezone-aware UTC."""
    value: datetime.datetime | None = getattr(certificate, "not_valid_after_utc", None)
    if value is None:  # cryptography < 42: naive UTC
        value = certificate.not_valid_after.replace(tzinfo=datetime.UTC)
    return value


def colon_hex(data: bytes) -> str:
    """Bytes as upper-case hex pairs joined by colons (Redfish's pattern)."""
    return ":".join(f"{byte:02X}" for byte in data) or "00"


def describe_name(name: x509.Name) -> NameFacts:
    """The attributes of ``name`` bmcd shows, keyed by short name."""
    fields: dict[str, list[str]] = {}
    for attribute in name:
        short = NAME_FIELDS.get(attribute.oid)
        if short is not None and isinstance(attribute.value, str):
            fields.setdefault(short, []).append(attribute.value)
    return NameFacts({k: tuple(v) for k, v in fields.items()}, name.rfc4514_string())


def alternative_names(certificate: x509.Certificate) -> tuple[str, ...]:
    """The DNS names and IP addresses of the subjectAltName extension."""
    try:
        extension = certificate.extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        )
    except x509.ExtensionNotFound:
        return ()
    names = extension.value.get_values_for_type(x509.DNSName)
    addresses = extension.value.get_values_for_type(x509.IPAddress)
    return (*names, *(str(a) for a in addresses))


def key_usage(certificate: x509.Certificate) -> tuple[str, ...]:
    """The Redfish KeyUsage values of the key usage and EKU extensions."""
    usages: list[str] = []
    extensions = certificate.extensions
    try:
        bits = extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        bits = None
    if bits is not None:
        for usage, attribute in KEY_USAGE_BITS.items():
            if attribute in ("encipher_only", "decipher_only") and (
                not bits.key_agreement
            ):
                continue  # only defined together with keyAgreement
            if getattr(bits, attribute):
                usages.append(usage)
    try:
        extended = extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        extended = None
    if extended is not None:
        for usage, oid in EXTENDED_KEY_USAGES.items():
            if oid in extended:
                usages.append(usage)
    return tuple(usages)


def is_ca(certificate: x509.Certificate) -> bool:
    """Whether the basicConstraints extension marks a CA."""
    try:
        return bool(
            certificate.extensions.get_extension_for_class(
                x509.BasicConstraints
            ).value.ca
        )
    except x509.ExtensionNotFound:
        return False


def signature_algorithm(certificate: x509.Certificate) -> str:
    """The signature algorithm's ASN.1 name (dotted OID when unknown)."""
    oid = certificate.signature_algorithm_oid
    return _SIGNATURE_NAMES.get(oid, oid.dotted_string)


def fingerprint(certificate: x509.Certificate) -> str:
    """The SHA-256 fingerprint as colon-separated hex."""
    return colon_hex(certificate.fingerprint(hashes.SHA256()))


def describe(certificate: x509.Certificate) -> CertificateFacts:
    """Everything bmcd shows of ``certificate``."""
    serial = certificate.serial_number
    serial_bytes = abs(serial).to_bytes(
        max(1, (abs(serial).bit_length() + 7) // 8), "big"
    )
    return CertificateFacts(
        pem=certificate_pem(certificate).decode("ascii"),
        subject=describe_name(certificate.subject),
        issuer=describe_name(certificate.issuer),
        alt_names=alternative_names(certificate),
        not_before=not_before(certificate),
        not_after=not_after(certificate),
        serial=colon_hex(serial_bytes),
        fingerprint=fingerprint(certificate),
        signature_algorithm=signature_algorithm(certificate),
        key_usage=key_usage(certificate),
        is_ca=is_ca(certificate),
    )

"""Certificate signing requests and the private keys waiting for their certificate.

Key generation is slow (RSA 4096: seconds) and runs in a worker thread; the
request is checked first on the caller's side so a bad parameter is refused
at once. The private key is written to disk (mode 0600) and never leaves it:
only the CSR goes back to the client.
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import re
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID, ObjectIdentifier

from bmcd.core.certinfo import (
    EXTENDED_KEY_USAGES,
    KEY_USAGE_BITS,
    PrivateKey,
    key_pem,
    public_key_id,
)
from bmcd.core.files import write_private

_LOGGER = logging.getLogger(__name__)

# TCG algorithm and curve names, as Redfish spells them.
RSA = "TPM_ALG_RSA"
ECDSA = "TPM_ALG_ECDSA"
KEY_PAIR_ALGORITHMS: tuple[str, ...] = (RSA, ECDSA)
RSA_KEY_BITS: tuple[int, ...] = (2048, 3072, 4096)
CURVES: dict[str, tuple[type[ec.EllipticCurve], int]] = {
    "TPM_ECC_NIST_P256": (ec.SECP256R1, 256),
    "TPM_ECC_NIST_P384": (ec.SECP384R1, 384),
}
KEY_BIT_LENGTHS: tuple[int, ...] = (
    *sorted(bits for _, bits in CURVES.values()),
    *RSA_KEY_BITS,
)
DEFAULT_RSA_BITS = 2048

# GenerateCSR subject parameters: name attribute and RFC 5280 upper bound, in
# the order the subject lists them.
SUBJECT_PARAMETERS: dict[str, tuple[ObjectIdentifier, int]] = {
    "Country": (NameOID.COUNTRY_NAME, 2),
    "State": (NameOID.STATE_OR_PROVINCE_NAME, 128),
    "City": (NameOID.LOCALITY_NAME, 128),
    "Organization": (NameOID.ORGANIZATION_NAME, 64),
    "OrganizationalUnit": (NameOID.ORGANIZATIONAL_UNIT_NAME, 64),
    "CommonName": (NameOID.COMMON_NAME, 64),
    "GivenName": (NameOID.GIVEN_NAME, 16),
    "Surname": (NameOID.SURNAME, 40),
    "Initials": (ObjectIdentifier("2.5.4.43"), 5),
    "ContactPerson": (ObjectIdentifier("2.5.4.41"), 128),
    "Email": (NameOID.EMAIL_ADDRESS, 255),
}
# PKCS#9 attributes of the request itself (RFC 2985).
CHALLENGE_PASSWORD = ObjectIdentifier("1.2.840.113549.1.9.7")
UNSTRUCTURED_NAME = ObjectIdentifier("1.2.840.113549.1.9.2")
_ATTRIBUTE_LIMIT = 255
# Plenty for one BMC's names, and keeps a request's checks cheap.
MAX_ALTERNATIVE_NAMES = 100
_MAX_DNS_NAME = 253

_DNS_NAME = re.compile(
    r"^(\*\.)?([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*"
    r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?$"
)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")


class CSRParameterError(ValueError):
    """A GenerateCSR parameter bmcd cannot use.

    ``conflict`` is set when the value is fine alone but not with the others
    (a curve for an RSA key); otherwise its format is wrong.
    """

    def __init__(
        self, parameter: str, value: object, reason: str, conflict: bool = False
    ) -> None:
        super().__init__(f"{parameter}: {reason}")
        self.parameter = parameter
        self.value = value
        self.conflict = conflict


@dataclass(frozen=True)
class CSRRequest:
    """A GenerateCSR request, in Redfish's parameter names."""

    subject: dict[str, str]
    alternative_names: tuple[str, ...] = ()
    key_usage: tuple[str, ...] = ()
    key_pair_algorithm: str | None = None
    key_bit_length: int | None = None
    key_curve_id: str | None = None
    challenge_password: str | None = None
    unstructured_name: str | None = None


@dataclass(frozen=True)
class KeySpec:
    """The key pair to generate."""

    algorithm: str
    bits: int
    curve: str | None = None

    def __str__(self) -> str:
        return f"ECDSA {self.curve}" if self.curve else f"RSA {self.bits}"


@dataclass
class _Checked:
    spec: KeySpec
    name: x509.Name
    alt_names: list[x509.GeneralName] = field(default_factory=list)
    usage: x509.KeyUsage | None = None
    extended: list[ObjectIdentifier] = field(default_factory=list)


def key_spec(request: CSRRequest) -> KeySpec:
    """The key the request asks for, with defaults filled in."""
    algorithm = request.key_pair_algorithm
    bits = request.key_bit_length
    curve = request.key_curve_id
    if algorithm is None:
        algorithm = ECDSA if curve is not None or bits in (256, 384) else RSA
    if algorithm == RSA:
        if curve is not None:
            raise CSRParameterError(
                "KeyCurveId", curve, "only for ECDSA keys", conflict=True
            )
        bits = DEFAULT_RSA_BITS if bits is None else bits
        if bits not in RSA_KEY_BITS:
            raise CSRParameterError(
                "KeyBitLength", bits, "not an RSA key size", conflict=True
            )
        return KeySpec(RSA, bits)
    if algorithm != ECDSA:
        raise CSRParameterError("KeyPairAlgorithm", algorithm, "not supported")
    if curve is None:
        by_bits = {b: name for name, (_, b) in CURVES.items()}
        curve = by_bits.get(bits if bits is not None else 256)
        if curve is None:
            raise CSRParameterError(
                "KeyBitLength", bits, "no such curve size", conflict=True
            )
    if curve not in CURVES:
        raise CSRParameterError("KeyCurveId", curve, "not supported")
    size = CURVES[curve][1]
    if bits is not None and bits != size:
        raise CSRParameterError(
            "KeyBitLength", bits, f"{curve} is {size} bits", conflict=True
        )
    return KeySpec(ECDSA, size, curve)


def _subject(request: CSRRequest) -> x509.Name:
    attributes = []
    for parameter, (oid, limit) in SUBJECT_PARAMETERS.items():
        value = request.subject.get(parameter)
        if value is None or (value == "" and parameter != "CommonName"):
            continue  # clients send "" for "not set"
        if not value.strip() or len(value) > limit or not value.isprintable():
            raise CSRParameterError(
                parameter, value, f"must be 1 to {limit} printable characters"
            )
        if parameter == "Country" and not (
            value.isascii() and value.isalpha() and len(value) == 2
        ):
            raise CSRParameterError(
                parameter, value, "must be a two-letter ISO 3166 code"
            )
        if parameter == "Email" and not _EMAIL.match(value):
            raise CSRParameterError(parameter, value, "not an e-mail address")
        if parameter == "Country":
            value = value.upper()
        try:
            attributes.append(x509.NameAttribute(oid, value))
        except ValueError as err:
            raise CSRParameterError(parameter, value, str(err)) from None
    return x509.Name(attributes)


def _general_name(text: str) -> x509.GeneralName:
    kind, sep, rest = text.partition(":")
    if sep and kind.upper() in ("DNS", "IP"):
        text = rest  # OpenSSL's "DNS:name" and "IP:address" spellings
    try:
        return x509.IPAddress(ipaddress.ip_address(text))
    except ValueError:
        pass
    if len(text) > _MAX_DNS_NAME or not _DNS_NAME.match(text):
        raise CSRParameterError(
            "AlternativeNames", text, "neither a DNS name nor an IP address"
        )
    return x509.DNSName(text.rstrip(".").lower())


def _alt_names(request: CSRRequest) -> list[x509.GeneralName]:
    if len(request.alternative_names) > MAX_ALTERNATIVE_NAMES:
        raise CSRParameterError(
            "AlternativeNames",
            f"{len(request.alternative_names)} names",
            f"at most {MAX_ALTERNATIVE_NAMES} names",
        )
    # A dict keeps the order and drops repeats in linear time.
    names = dict.fromkeys(_general_name(text) for text in request.alternative_names)
    # Clients check the SAN, not the CN: put the CN there too when it is a
    # host name or an address.
    common = request.subject.get("CommonName", "")
    try:
        own = _general_name(common)
    except CSRParameterError:
        return list(names)
    return list(dict.fromkeys((own, *names)))


def _usage(
    request: CSRRequest, spec: KeySpec
) -> tuple[x509.KeyUsage | None, list[ObjectIdentifier]]:
    wanted = list(request.key_usage)
    if not wanted:
        # A TLS server key: RSA encrypts the key exchange, ECDSA agrees on it.
        wanted = [
            "DigitalSignature",
            "KeyEncipherment" if spec.algorithm == RSA else "KeyAgreement",
            "ServerAuthentication",
        ]
    for usage in wanted:
        if usage not in KEY_USAGE_BITS and usage not in EXTENDED_KEY_USAGES:
            raise CSRParameterError("KeyUsage", usage, "unknown key usage")
    bits = {attribute: usage in wanted for usage, attribute in KEY_USAGE_BITS.items()}
    extended = [oid for usage, oid in EXTENDED_KEY_USAGES.items() if usage in wanted]
    if not any(bits.values()):
        return None, extended
    if (bits["encipher_only"] or bits["decipher_only"]) and not bits["key_agreement"]:
        usage = "EncipherOnly" if bits["encipher_only"] else "DecipherOnly"
        raise CSRParameterError("KeyUsage", usage, "needs KeyAgreement", conflict=True)
    return x509.KeyUsage(**bits), extended


def _attribute(parameter: str, value: str | None) -> bytes | None:
    if value is None or value == "":
        return None
    if len(value) > _ATTRIBUTE_LIMIT or not value.isprintable():
        raise CSRParameterError(
            parameter,
            "******" if "Password" in parameter else value,
            f"must be 1 to {_ATTRIBUTE_LIMIT} printable characters",
        )
    return value.encode("utf-8")


def check_request(request: CSRRequest) -> KeySpec:
    """Refuse a request bmcd cannot fulfil (cheap; no key is made)."""
    return _check(request).spec


def _check(request: CSRRequest) -> _Checked:
    spec = key_spec(request)
    if not request.subject.get("CommonName"):
        raise CSRParameterError(
            "CommonName", request.subject.get("CommonName"), "must not be empty"
        )
    usage, extended = _usage(request, spec)
    _attribute("ChallengePassword", request.challenge_password)
    _attribute("UnstructuredName", request.unstructured_name)
    return _Checked(spec, _subject(request), _alt_names(request), usage, extended)


def generate_key(spec: KeySpec) -> PrivateKey:
    """A new private key (slow for RSA: call it in a thread)."""
    if spec.algorithm == RSA:
        return rsa.generate_private_key(public_exponent=65537, key_size=spec.bits)
    assert spec.curve is not None
    return ec.generate_private_key(CURVES[spec.curve][0]())


def build_csr(request: CSRRequest, key: PrivateKey) -> bytes:
    """The PEM CSR for ``request``, signed with ``key``."""
    checked = _check(request)
    builder = x509.CertificateSigningRequestBuilder().subject_name(checked.name)
    if checked.alt_names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(checked.alt_names), critical=False
        )
    if checked.usage is not None:
        builder = builder.add_extension(checked.usage, critical=True)
    if checked.extended:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage(checked.extended), critical=False
        )
    password = _attribute("ChallengePassword", request.challenge_password)
    if password is not None:
        builder = builder.add_attribute(CHALLENGE_PASSWORD, password)
    unstructured = _attribute("UnstructuredName", request.unstructured_name)
    if unstructured is not None:
        builder = builder.add_attribute(UNSTRUCTURED_NAME, unstructured)
    csr = builder.sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM)


class PendingKeys:
    """Private keys of CSRs waiting for their certificate, one 0600 file each.

    At most ``limit`` are kept (the oldest goes first) and none longer than
    ``lifetime``. Every method does file I/O: call them in a thread.
    """

    SUFFIX = ".key"

    def __init__(
        self, directory: Path, limit: int, lifetime: datetime.timedelta
    ) -> None:
        self.directory = directory
        self.limit = limit
        self.lifetime = lifetime

    def _files(self) -> list[Path]:
        """Pending key files, oldest first."""
        try:
            files = [
                p
                for p in self.directory.iterdir()
                if p.suffix == self.SUFFIX and p.is_file()
            ]
        except FileNotFoundError:
            return []
        return sorted(files, key=lambda p: (p.stat().st_mtime, p.name))

    def add(self, key: PrivateKey) -> str:
        """Keep ``key``; return its id. Evicts the oldest beyond the limit."""
        self.prune()
        key_id = time.strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(4)
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_private(self.directory / f"{key_id}{self.SUFFIX}", key_pem(key))
        files = self._files()
        for old in files[: max(0, len(files) - self.limit)]:
            old.unlink(missing_ok=True)
            _LOGGER.info(
                "Dropped the key of pending CSR %s: more than %d CSRs "
                "wait for a certificate",
                old.stem,
                self.limit,
            )
        return key_id

    def keys(self) -> list[tuple[str, PrivateKey]]:
        """Every pending key that still loads, with its id."""
        found: list[tuple[str, PrivateKey]] = []
        for path in self._files():
            try:
                key = serialization.load_pem_private_key(path.read_bytes(), None)
            except (OSError, ValueError, TypeError) as err:
                _LOGGER.warning("Ignoring pending CSR key %s: %s", path, err)
                continue
            if isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
                found.append((path.stem, key))
        return found

    def find(self, public_ids: set[bytes]) -> tuple[str, PrivateKey] | None:
        """The pending key whose public key is one of ``public_ids``."""
        for key_id, key in reversed(self.keys()):  # newest first
            if public_key_id(key) in public_ids:
                return key_id, key
        return None

    def remove(self, key_id: str) -> None:
        """Forget a key (its certificate is installed)."""
        (self.directory / f"{key_id}{self.SUFFIX}").unlink(missing_ok=True)

    def count(self) -> int:
        """How many keys wait."""
        return len(self._files())

    def prune(self) -> int:
        """Delete keys older than the lifetime; return how many went."""
        deadline = time.time() - self.lifetime.total_seconds()
        dropped = 0
        for path in self._files():
            try:
                if path.stat().st_mtime < deadline:
                    path.unlink()
                    dropped += 1
            except FileNotFoundError:
                continue
        if dropped:
            _LOGGER.info(
                "Dropped %d CSR key(s) whose certificate did not come within %d days",
                dropped,
                self.lifetime.days,
            )
        return dropped

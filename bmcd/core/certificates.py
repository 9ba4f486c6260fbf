"""The certificates bmcd holds: its HTTPS identity and the CAs it trusts.

Two slots. The HTTPS slot is the server certificate and key the TLS listener
presents (the configured files, or the self-signed pair in <state>/tls); a new
certificate goes in only with a private key bmcd already has: one it made
for a CSR (kept under <state>/certs/pending until then) or the current one,
or, where the config allows it, a key sent along. The trust slot keeps the CA
certificates bmcd checks servers against when it connects out
(<state>/certs/trust/<id>.pem).

Every check runs before anything is written, files are replaced atomically,
and the live TLS context is swapped only once the new pair has loaded, so a
refused or failed change leaves the old certificate served.
"""

from __future__ import annotations

import asyncio
import datetime
import enum
import logging
import os
import shutil
import ssl
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from bmcd.core.certinfo import (
    BundleError,
    CertificateFacts,
    PrivateKey,
    certificate_pem,
    describe,
    key_pem,
    not_after,
    not_before,
    parse_bundle,
    public_key_id,
)
from bmcd.core.csr import (
    CSRRequest,
    PendingKeys,
    build_csr,
    check_request,
    generate_key,
)
from bmcd.core.files import previous_version, write_private

_LOGGER = logging.getLogger(__name__)

HTTPS_ID = "1"
# Niceness of the key generation thread: the event loop wins the CPU.
KEYGEN_NICENESS = 10
MAX_TRUSTED = 32
MAX_PENDING_CSRS = 8
PENDING_LIFETIME = datetime.timedelta(days=30)


class ServerTLS(Protocol):
    """The HTTPS server's certificate files and how to load them anew.

    bmcd.http.tls.TLSContextHolder is the one in use; the files can change
    under a SIGHUP reload, so they are read from it on every use.
    """

    cert_file: Path
    key_file: Path

    def reload(self) -> None:
        """Load the files into a new context and swap it in; raise if unusable."""


class Slot(enum.Enum):
    """Where a certificate is used."""

    HTTPS = "https"  # the HTTPS server's own certificate
    TRUST = "trust"  # CAs trusted for bmcd's outbound TLS connections


# What an expiry warning calls a certificate of each slot, and what to do.
_EXPIRY_ADVICE: dict[Slot, tuple[str, str]] = {
    Slot.HTTPS: (
        "HTTPS certificate",
        "replace it (GenerateCSR, then ReplaceCertificate with the "
        "certificate the CA issues for that CSR)",
    ),
    Slot.TRUST: (
        "Trusted CA certificate",
        "get the CA's renewed certificate and put it in place with "
        "ReplaceCertificate, or delete this one if no server bmcd "
        "connects to still needs it",
    ),
}


class Problem(enum.Enum):
    """Why a certificate was refused."""

    FORMAT = "format"  # not PEM, not X.509, unusable key
    NO_MATCHING_KEY = "no matching key"
    KEY_NOT_ALLOWED = "key not allowed"
    EXPIRED = "expired"
    NOT_YET_VALID = "not yet valid"
    NOT_ONE = "not one certificate"
    DUPLICATE = "duplicate"
    LIMIT = "limit"
    LAST = "last certificate"


class CertificateRejected(Exception):
    """A certificate change bmcd refused; nothing was changed."""

    def __init__(self, problem: Problem, detail: str) -> None:
        super().__init__(detail)
        self.problem = problem
        self.detail = detail


@dataclass(frozen=True)
class StoredCertificate:
    """One installed certificate."""

    slot: Slot
    id: str
    facts: CertificateFacts


def _lower_priority() -> None:
    # Linux nice values are per thread: this slows only the key generator.
    if sys.platform == "linux":
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), KEYGEN_NICENESS)
        except OSError as err:
            _LOGGER.debug("Key generation runs at normal priority: %s", err)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _stamp(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def check_validity(
    certificate: x509.Certificate, now: datetime.datetime | None = None
) -> None:
    """Refuse a certificate outside its validity period."""
    now = now or _now()
    if not_after(certificate) <= now:
        raise CertificateRejected(
            Problem.EXPIRED, f"expired on {_stamp(not_after(certificate))}"
        )
    if not_before(certificate) > now:
        raise CertificateRejected(
            Problem.NOT_YET_VALID, f"not valid before {_stamp(not_before(certificate))}"
        )


def _bundle(
    text: str | bytes,
) -> tuple[tuple[x509.Certificate, ...], tuple[PrivateKey, ...]]:
    try:
        bundle = parse_bundle(text)
    except BundleError as err:
        raise CertificateRejected(Problem.FORMAT, str(err)) from None
    return bundle.certificates, bundle.keys


def _label(certificate: x509.Certificate) -> str:
    return certificate.subject.rfc4514_string() or "(empty subject)"


class CertificateManager:
    """Reads, installs and replaces certificates; swaps the HTTPS identity."""

    def __init__(
        self,
        state_dir: Path,
        server: ServerTLS,
        *,
        allow_key_upload: bool = False,
        expiry_warning_days: int = 30,
    ) -> None:
        self.root = state_dir / "certs"
        self.trust_dir = self.root / "trust"
        self.server = server
        self.allow_key_upload = allow_key_upload
        self.expiry_warning_days = expiry_warning_days
        self.pending = PendingKeys(
            self.root / "pending" / Slot.HTTPS.value, MAX_PENDING_CSRS, PENDING_LIFETIME
        )
        self._lock = asyncio.Lock()  # one change at a time
        # One slow key generation at a time, in a thread of its own.
        self._keygen = ThreadPoolExecutor(1, "bmcd-keygen", _lower_priority)

    async def start(self) -> None:
        """Create the directories, drop stale CSR keys, report expiring ones."""
        await asyncio.to_thread(self._prepare)
        await self.check_expiry()

    def close(self) -> None:
        """Drop queued key generations (a running one finishes in its thread)."""
        self._keygen.shutdown(wait=False, cancel_futures=True)

    def _prepare(self) -> None:
        for directory in (self.root, self.trust_dir, self.pending.directory):
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.pending.prune()

    # Reading

    async def installed(self, slot: Slot) -> list[StoredCertificate]:
        """Every certificate in ``slot``, by id."""
        return await asyncio.to_thread(self._installed, slot)

    async def get(self, slot: Slot, cert_id: str) -> StoredCertificate | None:
        """One certificate, or None."""
        return await asyncio.to_thread(self._get, slot, cert_id)

    def _installed(self, slot: Slot) -> list[StoredCertificate]:
        if slot is Slot.HTTPS:
            served = self._get(Slot.HTTPS, HTTPS_ID)
            return [served] if served else []
        found = []
        for cert_id in self._trusted_ids():
            stored = self._get(Slot.TRUST, cert_id)
            if stored is not None:
                found.append(stored)
        return found

    def _get(self, slot: Slot, cert_id: str) -> StoredCertificate | None:
        if slot is Slot.HTTPS:
            if cert_id != HTTPS_ID:
                return None
            path = self.server.cert_file
        else:
            if cert_id not in self._trusted_ids():
                return None
            path = self._trusted_path(cert_id)
        try:
            certificates, _ = _bundle(path.read_bytes())
        except (OSError, CertificateRejected) as err:
            _LOGGER.error("Cannot read certificate %s: %s", path, err)
            return None
        return StoredCertificate(slot, cert_id, describe(certificates[0]))

    def _trusted_ids(self) -> list[str]:
        try:
            names = [p.stem for p in self.trust_dir.glob("*.pem")]
        except OSError:
            return []
        return sorted((n for n in names if n.isdigit()), key=int)

    def _trusted_path(self, cert_id: str) -> Path:
        return self.trust_dir / f"{cert_id}.pem"

    # CSRs

    async def generate_csr(self, request: CSRRequest) -> str:
        """A PEM CSR for the HTTPS slot; its key waits on disk (0600)."""
        spec = check_request(request)  # refuse bad parameters before the wait
        loop = asyncio.get_running_loop()
        started = loop.time()
        csr, key_id = await loop.run_in_executor(
            self._keygen, self._generate_csr, request
        )
        elapsed = loop.time() - started
        _LOGGER.info(
            "Generated a CSR with a new %s key (pending key %s) for %s in %.2f s",
            spec,
            key_id,
            request.subject.get("CommonName"),
            elapsed,
        )
        return csr

    def _generate_csr(self, request: CSRRequest) -> tuple[str, str]:
        key = generate_key(check_request(request))
        csr = build_csr(request, key)
        return csr.decode("ascii"), self.pending.add(key)

    # Installing

    async def install(self, slot: Slot, text: str) -> StoredCertificate:
        """Add a certificate to ``slot`` (the HTTPS slot's one is replaced)."""
        async with self._lock:
            if slot is Slot.HTTPS:
                return await asyncio.to_thread(self._install_server, text)
            return await asyncio.to_thread(self._install_trusted, text, None)

    async def replace(self, slot: Slot, cert_id: str, text: str) -> StoredCertificate:
        """Put a new certificate in place of ``cert_id`` (same id)."""
        async with self._lock:
            if await self.get(slot, cert_id) is None:
                raise KeyError(cert_id)
            if slot is Slot.HTTPS:
                return await asyncio.to_thread(self._install_server, text)
            return await asyncio.to_thread(self._install_trusted, text, cert_id)

    async def delete(self, slot: Slot, cert_id: str) -> None:
        """Remove a trusted CA; the HTTPS certificate cannot go."""
        async with self._lock:
            if await self.get(slot, cert_id) is None:
                raise KeyError(cert_id)
            if slot is Slot.HTTPS:
                raise CertificateRejected(
                    Problem.LAST,
                    "the HTTPS server needs its certificate; replace it instead",
                )
            await asyncio.to_thread(self._trusted_path(cert_id).unlink)
        _LOGGER.info("Removed trusted CA certificate %s", cert_id)

    def _server_key(self) -> PrivateKey | None:
        try:
            data = self.server.key_file.read_bytes()
            key = serialization.load_pem_private_key(data, None)
        except (OSError, ValueError, TypeError) as err:
            _LOGGER.warning(
                "Cannot read the HTTPS key %s: %s", self.server.key_file, err
            )
            return None
        if isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            return key
        return None

    def _pick_key(
        self, certificates: tuple[x509.Certificate, ...], keys: tuple[PrivateKey, ...]
    ) -> tuple[x509.Certificate, PrivateKey, str | None]:
        """The leaf certificate, its key, and the pending key id it used."""
        by_key = {public_key_id(c): c for c in reversed(certificates)}
        if len(keys) > 1:
            raise CertificateRejected(Problem.FORMAT, "more than one private key")
        if keys:
            if not self.allow_key_upload:
                raise CertificateRejected(
                    Problem.KEY_NOT_ALLOWED,
                    "a private key is not accepted: "
                    "use GenerateCSR so the key never leaves the BMC",
                )
            leaf = by_key.get(public_key_id(keys[0]))
            if leaf is None:
                raise CertificateRejected(
                    Problem.NO_MATCHING_KEY,
                    "the private key matches none of the certificates",
                )
            return leaf, keys[0], None
        found = self.pending.find(set(by_key))
        if found is not None:
            key_id, key = found
            return by_key[public_key_id(key)], key, key_id
        current = self._server_key()
        if current is not None and public_key_id(current) in by_key:
            return by_key[public_key_id(current)], current, None
        raise CertificateRejected(
            Problem.NO_MATCHING_KEY,
            "its public key matches no pending CSR "
            "key and not the current key; use GenerateCSR first",
        )

    def _install_server(self, text: str) -> StoredCertificate:
        certificates, keys = _bundle(text)
        leaf, key, pending_id = self._pick_key(certificates, keys)
        check_validity(leaf)
        chain = [c for c in certificates if c is not leaf]
        cert_data = b"".join(certificate_pem(c) for c in (leaf, *chain))
        key_data = key_pem(key)
        self._check_pair(cert_data, key_data)
        self._swap_server(cert_data, key_data)
        if pending_id is not None:
            self.pending.remove(pending_id)
        _LOGGER.info(
            "Installed HTTPS certificate %s (%s, valid until %s); new "
            "connections get it",
            _label(leaf),
            describe(leaf).fingerprint,
            _stamp(not_after(leaf)),
        )
        return StoredCertificate(Slot.HTTPS, HTTPS_ID, describe(leaf))

    def _check_pair(self, cert_data: bytes, key_data: bytes) -> None:
        """Load the pair the way the TLS listener will, from private temp files."""
        temp = Path(tempfile.mkdtemp(dir=self.root, prefix=".check-"))
        try:
            write_private(temp / "cert.pem", cert_data)
            write_private(temp / "key.pem", key_data)
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(str(temp / "cert.pem"), str(temp / "key.pem"))
        except ssl.SSLError as err:
            raise CertificateRejected(
                Problem.FORMAT, f"the TLS library refuses it ({err.reason})"
            ) from None
        finally:
            shutil.rmtree(temp, ignore_errors=True)

    def _swap_server(self, cert_data: bytes, key_data: bytes) -> None:
        old_cert = self.server.cert_file.read_bytes()
        old_key = self.server.key_file.read_bytes()
        # Saved first: a crash between the two renames below leaves a key
        # that does not match the certificate, and start-up then falls back
        # to this pair (TLSContextHolder.open).
        cert_backup = previous_version(self.server.cert_file)
        key_backup = previous_version(self.server.key_file)
        write_private(key_backup, old_key)
        write_private(cert_backup, old_cert, 0o644)
        try:
            write_private(self.server.key_file, key_data)
            write_private(self.server.cert_file, cert_data, 0o644)
            self.server.reload()
        except Exception:
            _LOGGER.exception(
                "Cannot put the new HTTPS certificate in place at "
                "%s; restoring the previous one",
                self.server.cert_file,
            )
            write_private(self.server.key_file, old_key)
            write_private(self.server.cert_file, old_cert, 0o644)
            self.server.reload()
            raise

    def _install_trusted(self, text: str, cert_id: str | None) -> StoredCertificate:
        certificates, keys = _bundle(text)
        if keys:
            raise CertificateRejected(
                Problem.KEY_NOT_ALLOWED,
                "the trust store takes certificates only, never a private key",
            )
        if len(certificates) != 1:
            raise CertificateRejected(
                Problem.NOT_ONE,
                f"holds {len(certificates)} certificates; install one per request",
            )
        certificate = certificates[0]
        check_validity(certificate)
        data = certificate_pem(certificate)
        try:
            ssl.create_default_context().load_verify_locations(
                cadata=data.decode("ascii")
            )
        except ssl.SSLError as err:
            raise CertificateRejected(
                Problem.FORMAT, f"the TLS library refuses it ({err.reason})"
            ) from None
        facts = describe(certificate)
        existing = self._trusted_ids()
        for other in self._installed(Slot.TRUST):
            if other.facts.fingerprint == facts.fingerprint and other.id != cert_id:
                raise CertificateRejected(Problem.DUPLICATE, facts.fingerprint)
        if cert_id is None:
            if len(existing) >= MAX_TRUSTED:
                raise CertificateRejected(
                    Problem.LIMIT,
                    f"the trust store holds {MAX_TRUSTED} certificates at most",
                )
            cert_id = str(max((int(i) for i in existing), default=0) + 1)
        write_private(self._trusted_path(cert_id), data, 0o644)
        if not facts.is_ca:
            _LOGGER.info(
                "Trusted certificate %s (%s) is not a CA: it only vouches for itself",
                cert_id,
                _label(certificate),
            )
        _LOGGER.info(
            "Installed trusted certificate %s: %s", cert_id, _label(certificate)
        )
        return StoredCertificate(Slot.TRUST, cert_id, facts)

    # Expiry and outbound TLS

    async def check_expiry(self) -> list[StoredCertificate]:
        """Log a warning for each certificate expiring soon; return them."""
        # TODO(event issue: also publish an event and raise a service
        # condition for each one).
        limit = _now() + datetime.timedelta(days=self.expiry_warning_days)
        expiring = []
        for slot in Slot:
            for stored in await self.installed(slot):
                if stored.facts.not_after > limit:
                    continue
                expiring.append(stored)
                what, advice = _EXPIRY_ADVICE[slot]
                days = (stored.facts.not_after - _now()).days
                _LOGGER.warning(
                    "%s%s (%s) %s %s; %s",
                    what,
                    "" if slot is Slot.HTTPS else f" {stored.id}",
                    stored.facts.subject.display,
                    "expired on" if days < 0 else f"expires in {days} days, on",
                    _stamp(stored.facts.not_after),
                    advice,
                )
        return expiring

    async def prune_pending(self) -> None:
        """Drop CSR keys whose certificate never came."""
        await asyncio.to_thread(self.pending.prune)

    async def client_context(self, *, system_cas: bool = True) -> ssl.SSLContext:
        """An SSLContext for bmcd's outbound connections (events, downloads).

        It trusts the trust store and, with ``system_cas``, the system's CAs.
        """
        return await asyncio.to_thread(self._client_context, system_cas)

    def _client_context(self, system_cas: bool) -> ssl.SSLContext:
        if system_cas:
            context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        else:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        data = "".join(s.facts.pem for s in self._installed(Slot.TRUST))
        if data:
            context.load_verify_locations(cadata=data)
        return context

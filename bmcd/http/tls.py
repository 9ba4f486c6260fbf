"""The HTTPS server's TLS context, replaceable while bmcd runs.

The listening socket keeps one SSLContext for its whole life; an SNI callback
hands each new handshake the context held *now*. Replacing the certificate
builds a complete new context first, so a bad certificate or key raises and
the server keeps presenting the old one; open connections are not touched.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import logging
import os
import socket
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from bmcd.core.files import previous_version, write_private

_LOGGER = logging.getLogger(__name__)

SELF_SIGNED_DAYS = 3650


def build_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """A server context for the pair; raises ssl.SSLError/OSError if unusable."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(cert_file), str(key_file))
    return context


class TLSContextHolder:
    """Holds the context that new handshakes use and swaps it atomically."""

    def __init__(self, cert_file: Path, key_file: Path) -> None:
        self.cert_file = cert_file
        self.key_file = key_file
        self._current = build_context(cert_file, key_file)
        self.listening_context = build_context(cert_file, key_file)
        self.listening_context.sni_callback = self._pick_context

    @classmethod
    def open(cls, cert_file: Path, key_file: Path) -> TLSContextHolder:
        """Load the pair, falling back to the pair saved before a replacement.

        A crash between writing the new key and the new certificate leaves a
        mismatched pair; the previous pair, saved beside them before the
        replacement, is then put back so that bmcd can still serve HTTPS.
        """
        try:
            return cls(cert_file, key_file)
        except (ssl.SSLError, OSError) as err:
            cert_backup = previous_version(cert_file)
            key_backup = previous_version(key_file)
            if not (cert_backup.exists() and key_backup.exists()):
                raise
            _LOGGER.warning(
                "HTTPS certificate %s does not load (%s); restoring the "
                "previous certificate saved before an interrupted replacement",
                cert_file,
                err,
            )
            build_context(cert_backup, key_backup)
            os.replace(key_backup, key_file)
            os.replace(cert_backup, cert_file)
            return cls(cert_file, key_file)

    def _pick_context(
        self,
        connection: ssl.SSLObject,
        _server_name: str | None,
        _context: ssl.SSLContext,
    ) -> None:
        # Runs for clients without SNI too (connections to an IP address).
        connection.context = self._current

    def reload(self) -> None:
        """Load the files again; on failure keep serving the old certificate."""
        self._current = build_context(self.cert_file, self.key_file)
        _LOGGER.info("HTTPS certificate reloaded from %s", self.cert_file)

    def use_files(self, cert_file: Path, key_file: Path) -> None:
        """Serve another pair of files; on failure nothing changes."""
        context = build_context(cert_file, key_file)
        self.cert_file, self.key_file, self._current = cert_file, key_file, context
        _LOGGER.info("HTTPS certificate now served from %s", cert_file)


def make_self_signed(cert_file: Path, key_file: Path) -> None:
    """Create a self-signed ECDSA P-256 certificate for this host (slow-ish)."""
    key = ec.generate_private_key(ec.SECP256R1())
    hostname = socket.gethostname() or "bmcd"
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, hostname),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "bmcd"),
        ]
    )
    alt_names: list[x509.GeneralName] = [
        x509.DNSName(hostname),
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=SELF_SIGNED_DAYS))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_encipherment=False,
                content_commitment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    write_private(
        key_file,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    write_private(
        cert_file, certificate.public_bytes(serialization.Encoding.PEM), 0o644
    )


async def ensure_certificate(
    state_dir: Path, cert_file: Path | None, key_file: Path | None
) -> tuple[Path, Path]:
    """The certificate and key to serve, making a self-signed pair if none."""
    if cert_file is not None and key_file is not None:
        return cert_file, key_file
    cert_file = state_dir / "tls" / "server.crt"
    key_file = state_dir / "tls" / "server.key"
    if not (cert_file.exists() and key_file.exists()):
        _LOGGER.info(
            "No HTTPS certificate configured; creating a self-signed one in %s",
            cert_file.parent,
        )
        # Private like the rest of the state (the key file is 0600 anyway).
        await asyncio.to_thread(
            cert_file.parent.mkdir, mode=0o700, parents=True, exist_ok=True
        )
        await asyncio.to_thread(make_self_signed, cert_file, key_file)
    return cert_file, key_file

"""bmcd.http.tls: the swappable context and recovery from a torn replacement."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from bmcd.core.files import previous_version
from bmcd.http.tls import TLSContextHolder, make_self_signed


def _pair(directory: Path) -> tuple[Path, Path]:
    directory.mkdir()
    cert, key = directory / "server.crt", directory / "server.key"
    make_self_signed(cert, key)
    return cert, key


def test_open_restores_the_previous_pair_after_a_torn_replacement(
    tmp_path: Path,
) -> None:
    cert, key = _pair(tmp_path / "old")
    _, other_key = _pair(tmp_path / "new")
    # What a crash between the key and the certificate rename leaves behind.
    previous_version(cert).write_bytes(cert.read_bytes())
    previous_version(key).write_bytes(key.read_bytes())
    key.write_bytes(other_key.read_bytes())

    holder = TLSContextHolder.open(cert, key)

    assert holder.cert_file == cert
    assert not previous_version(cert).exists()
    ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)


def test_open_without_a_previous_pair_reports_the_error(tmp_path: Path) -> None:
    cert, key = _pair(tmp_path / "old")
    _, other_key = _pair(tmp_path / "new")
    key.write_bytes(other_key.read_bytes())
    with pytest.raises(ssl.SSLError):
        TLSContextHolder.open(cert, key)


def test_use_files_keeps_the_old_pair_on_failure(tmp_path: Path) -> None:
    cert, key = _pair(tmp_path / "old")
    new_cert, new_key = _pair(tmp_path / "new")
    holder = TLSContextHolder(cert, key)
    with pytest.raises(ssl.SSLError):
        holder.use_files(new_cert, key)
    assert (holder.cert_file, holder.key_file) == (cert, key)
    holder.use_files(new_cert, new_key)
    assert (holder.cert_file, holder.key_file) == (new_cert, new_key)

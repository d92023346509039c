"""The license wire format and SSH signatures."""

from __future__ import annotations

import pytest

from shared.ingest.licenses.keys import (
    SOURCEGRAPH_PRODUCTION_PUBLIC_KEY,
    LicenseFormatError,
    decode_license,
    parse_authorized_keys,
    signature_valid,
)
from tools.signing import encode_license


def test_production_public_key_parses():
    (key,) = parse_authorized_keys(SOURCEGRAPH_PRODUCTION_PUBLIC_KEY)
    assert key.key_size == 2048


@pytest.mark.parametrize("fmt", ["ssh-rsa", "rsa-sha2-256", "rsa-sha2-512"])
def test_rsa_signature_formats_verify(rsa, fmt):
    lic = decode_license(rsa.issue(sig_format=fmt))
    assert lic.sig_format == fmt
    (pub,) = parse_authorized_keys(rsa.public_path.read_text())
    assert signature_valid(lic, pub) is True


def test_ed25519_verifies_and_is_not_confused_with_rsa(rsa, ed):
    lic = decode_license(ed.issue())
    assert lic.sig_format == "ssh-ed25519"
    (ed_pub,) = parse_authorized_keys(ed.public_path.read_text())
    (rsa_pub,) = parse_authorized_keys(rsa.public_path.read_text())
    assert signature_valid(lic, ed_pub) is True
    assert signature_valid(lic, rsa_pub) is False


def test_format_claimed_differently_fails(rsa):
    key = rsa.issue(sig_format="rsa-sha2-256")
    lic = decode_license(key)
    (pub,) = parse_authorized_keys(rsa.public_path.read_text())
    forged = type(lic)(lic.info, lic.info_bytes, "rsa-sha2-512", lic.sig_blob)
    assert signature_valid(forged, pub) is False


def test_whitespace_ignored_and_fingerprint_stable(rsa):
    key = rsa.issue()
    wrapped = " \n".join(key[i:i + 50] for i in range(0, len(key), 50)) + "\n"
    assert decode_license(wrapped).fingerprint == decode_license(key).fingerprint


@pytest.mark.parametrize("text", ["", "   ", "%%%", "bm90IGpzb24", "eyJzaWciOiAxfQ"])
def test_malformed_keys(text):
    with pytest.raises(LicenseFormatError):
        decode_license(text)


@pytest.mark.parametrize("version", [0, 4, "3", None])
def test_unknown_format_versions_refused(rsa, version):

    key = encode_license({"v": version, "t": [], "e": "2030-01-01T00:00:00Z"}, rsa.private)
    with pytest.raises(LicenseFormatError, match="version"):
        decode_license(key)

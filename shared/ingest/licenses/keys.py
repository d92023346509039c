"""Sourcegraph license keys: the wire format and SSH signature verification (issuing lives in tools.signing)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from shared.timestamps import parse_rfc3339

SOURCEGRAPH_PRODUCTION_PUBLIC_KEY = (
    "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQDUUd9r83fGmYVLzcqQp5InyAoJB5lLxlM7s41SUUtxfnG6JpmvjNd+WuEptJGk0C"
    "/Zpyp/cCjCV4DljDs8Z7xjRbvJYW+vklFFxXrMTBs/+HjpIBKlYTmG8SqTyXyu1s4485Kh1fEC5SK6z2IbFaHuSHUXgDi/IepSOg1"
    "QudW4n8J91gPtT2E30/bPCBRq8oz/RVwJSDMvYYjYVb//LhV0Mx3O6hg4xzUNuwiCtNjCJ9t4YU2sV87+eJwWtQNbSQ8TelQa8W"
    "jG++XSnXUHw12bPDe7wGL/7/EJb7knggKSAMnpYpCyV35dyi4DsVc46c+b6P0gbVSosh3Uc3BJHSWF"
)
SUPPORTED_INFO_VERSIONS = (1, 2, 3)
RSA_HASHES = {"ssh-rsa": hashes.SHA1, "rsa-sha2-256": hashes.SHA256, "rsa-sha2-512": hashes.SHA512}
ED25519 = "ssh-ed25519"
_WHITESPACE = re.compile(r"\s+")

PublicKey = rsa.RSAPublicKey | ed25519.Ed25519PublicKey


class LicenseFormatError(ValueError):
    """The text is not a license key in Sourcegraph's format."""


@dataclass(frozen=True)
class SignedLicense:
    """A decoded (not yet verified) license key."""

    info: dict
    info_bytes: bytes
    sig_format: str
    sig_blob: bytes

    @property
    def fingerprint(self) -> str:
        """Stable id of the license: SHA-256 of its signature (Sourcegraph identifies licenses by it)."""
        return hashlib.sha256(self.sig_blob).hexdigest()


def _b64decode(text: str, *, urlsafe: bool) -> bytes:
    padded = text + "=" * (-len(text) % 4)
    try:
        if urlsafe:
            return base64.urlsafe_b64decode(padded)
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise LicenseFormatError(f"bad base64: {exc}") from None


def license_time(value: object) -> datetime | None:
    """Parse an RFC 3339 time from license info; None when absent."""
    if value in (None, ""):
        return None
    try:
        return parse_rfc3339(value)
    except ValueError as exc:
        raise LicenseFormatError(f"license time: {exc}") from None


def decode_license(key: str) -> SignedLicense:
    """Decode a license key (whitespace anywhere is ignored); checks shape, not the signature."""
    compact = _WHITESPACE.sub("", key)
    if not compact:
        raise LicenseFormatError("empty license key")
    try:
        outer = orjson.loads(_b64decode(compact, urlsafe=True))
        sig, info_b64 = outer["sig"], outer["info"]
        sig_format, blob_b64 = sig["Format"], sig["Blob"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        raise LicenseFormatError("license key is not signed license JSON") from None
    if not all(isinstance(v, str) for v in (info_b64, sig_format, blob_b64)):
        raise LicenseFormatError("license key fields have wrong types")
    info_bytes = _b64decode(info_b64, urlsafe=False)
    try:
        info = orjson.loads(info_bytes)
    except orjson.JSONDecodeError:
        raise LicenseFormatError("license info is not JSON") from None
    if not isinstance(info, dict):
        raise LicenseFormatError("license info is not an object")
    version = info.get("v")
    if type(version) is not int or version not in SUPPORTED_INFO_VERSIONS:
        raise LicenseFormatError(f"unsupported license format version {version!r}")
    tags = info.get("t") or []  # Go encodes a nil tag list as null: no tags
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise LicenseFormatError("license tags are not a list of strings")
    license_time(info.get("e"))
    license_time(info.get("c"))
    return SignedLicense(info, info_bytes, sig_format, _b64decode(blob_b64, urlsafe=False))


def signature_valid(lic: SignedLicense, public_key: PublicKey) -> bool:
    """Whether public_key made lic's signature (the format must suit the key type)."""
    try:
        if isinstance(public_key, ed25519.Ed25519PublicKey):
            if lic.sig_format != ED25519:
                return False
            public_key.verify(lic.sig_blob, lic.info_bytes)
            return True
        hash_cls = RSA_HASHES.get(lic.sig_format)
        if hash_cls is None:
            return False
        public_key.verify(lic.sig_blob, lic.info_bytes, padding.PKCS1v15(), hash_cls())
        return True
    except InvalidSignature:
        return False


def parse_authorized_keys(text: str) -> list[PublicKey]:
    """Parse SSH authorized_keys lines (blank lines and # comments skipped)."""
    keys: list[PublicKey] = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            key = serialization.load_ssh_public_key(line.encode())
        except (ValueError, TypeError) as exc:
            raise ValueError(f"line {number}: not an SSH public key ({exc})") from None
        if not isinstance(key, rsa.RSAPublicKey | ed25519.Ed25519PublicKey):
            raise ValueError(f"line {number}: only RSA and Ed25519 keys are supported")
        keys.append(key)
    return keys


def load_authorized_keys(path: Path) -> list[PublicKey]:
    """Read an authorized_keys file."""
    return parse_authorized_keys(path.read_text())

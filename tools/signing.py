"""Issuing Sourcegraph-format license keys (operators and tests): key pairs and signing. Never deployed."""

from __future__ import annotations

import base64
from pathlib import Path

import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from shared.ingest.licenses.keys import ED25519, RSA_HASHES, PublicKey

PrivateKey = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


def encode_license(info: dict, private_key: PrivateKey, sig_format: str | None = None) -> str:
    """Sign info and encode it as a license key in Sourcegraph's format."""
    info_bytes = orjson.dumps(info)
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        sig_format, blob = ED25519, private_key.sign(info_bytes)
    else:
        sig_format = sig_format or "rsa-sha2-512"
        if sig_format not in RSA_HASHES:
            raise ValueError(f"unsupported RSA signature format {sig_format!r}")
        blob = private_key.sign(info_bytes, padding.PKCS1v15(), RSA_HASHES[sig_format]())
    outer = {
        "sig": {"Format": sig_format, "Blob": base64.b64encode(blob).decode(), "Rest": None},
        "info": base64.b64encode(info_bytes).decode(),
    }
    return base64.urlsafe_b64encode(orjson.dumps(outer)).decode().rstrip("=")


def public_key_line(public_key: PublicKey, comment: str = "telemetry-license-key") -> str:
    """The authorized_keys line of a public key."""
    raw = public_key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return f"{raw.decode()} {comment}"


def generate_private_key(kind: str = "rsa") -> PrivateKey:
    """A new license signing key: RSA 3072 (as Sourcegraph uses RSA) or Ed25519."""
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    return rsa.generate_private_key(public_exponent=65537, key_size=3072)


def private_key_pem(private_key: PrivateKey) -> bytes:
    """OpenSSH private key file content (unencrypted)."""
    return private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )


def load_private_key(path: Path) -> PrivateKey:
    """Read an OpenSSH private key written by `keygen`."""
    key = serialization.load_ssh_private_key(path.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
        raise ValueError("only RSA and Ed25519 private keys are supported")
    return key

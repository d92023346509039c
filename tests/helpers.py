"""Builders shared by the tests: events, request bodies, licenses."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from devtools.procs import ROOT
from shared.envelope import Batch, Identity, encode
from tools.signing import encode_license, generate_private_key, private_key_pem, public_key_line


def make_event(**overrides: object) -> dict:
    """A realistic, valid telemetry v2 event."""
    event = {
        "id": str(uuid.uuid4()),
        "timestamp": (datetime.now(UTC) - timedelta(minutes=5)).isoformat().replace("+00:00", "Z"),
        "feature": "cody.completion",
        "action": "executed",
        "source": {"server": {"version": "5.3.0"}, "client": {"name": "VSCODE_CODY_EXTENSION", "version": "1.2"}},
        "parameters": {"version": 1, "metadata": {"latencyMs": 120.5, "accepted": 1},
                       "billingMetadata": {"product": "CODY", "category": "CORE"}},
        "user": {"userId": 42, "anonymousUserId": "anon-1"},
        "featureFlags": {"flags": {"cody-autocomplete": "true"}},
    }
    event.update(overrides)
    return event


def make_body(events: list, instance_id: str = "instance-1", request_id: str | None = None) -> dict:
    """A RecordEvents request body."""
    return {
        "metadata": {
            "requestId": request_id or str(uuid.uuid4()),
            "identifier": {"licensedInstance": {"instanceId": instance_id, "externalUrl": "https://sg.example.com"}},
        },
        "events": events,
    }


def gzip_json(doc: object) -> bytes:
    """gzip'd JSON bytes."""
    return gzip.compress(orjson.dumps(doc))


class KeyPair:
    """A license signing key pair written to disk, able to issue licenses."""

    def __init__(self, directory: Path, kind: str = "rsa") -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.private = generate_private_key(kind)
        self.private_path = directory / "license-key"
        self.private_path.write_bytes(private_key_pem(self.private))
        self.public_path = directory / "license-key.pub"
        self.public_path.write_text(public_key_line(self.private.public_key()) + "\n")

    def issue(self, tags: tuple[str, ...] = (), expires: datetime | None = None, version: int = 3,
              sig_format: str | None = None) -> str:
        """A license key signed by this pair."""
        expires = expires or datetime.now(UTC) + timedelta(days=365)
        info = {"v": version, "n": [1, 2, 3, 4, 5, 6, 7, 8], "t": list(tags), "u": 10,
                "e": expires.strftime("%Y-%m-%dT%H:%M:%SZ")}
        return encode_license(info, self.private, sig_format)


class TokenIssuer:
    """Plays Google for ID tokens: an RSA key with a self-signed certificate, and tokens signed with it."""

    def __init__(self, kid: str = "test-key-1") -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID

        self.kid = kid
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-accounts.google.com")])
        now = datetime.now(UTC)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
                .not_valid_after(now + timedelta(days=30)).sign(key, hashes.SHA256()))
        self.cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
        self.key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()).decode()

    def certs(self) -> dict[str, str]:
        """What Google's v1 certs endpoint serves: key id -> X.509 certificate."""
        return {self.kid: self.cert_pem}

    def token(self, email: str, audience: str, *, expires_in: int = 3600, verified: bool = True,
              issuer: str = "https://accounts.google.com") -> str:
        """A Google-style ID token for a service account."""
        from google.auth import crypt, jwt

        now = int(datetime.now(UTC).timestamp())
        payload = {"iss": issuer, "aud": audience, "sub": "1234567890", "email": email, "email_verified": verified,
                   "iat": now - 10, "exp": now + expires_in}
        return jwt.encode(crypt.RSASigner.from_string(self.key_pem, self.kid), payload).decode()


def cli(*args: str, stdin: bytes | None = None, license_key: str | None = None) -> subprocess.CompletedProcess:
    """Run `python -m tools.client ARGS` as an instance operator would (the license only in the environment)."""
    env = {k: v for k, v in os.environ.items() if k != "TELEMETRY_LICENSE_KEY"}
    if license_key is not None:
        env["TELEMETRY_LICENSE_KEY"] = license_key
    return subprocess.run([sys.executable, "-m", "tools.client", *args], input=stdin, capture_output=True,
                          cwd=ROOT, timeout=180, env=env)


# Pub/Sub's attributes on a dead-lettered message (tools.deadletter and tools.redrive tests).
DEAD_LETTER_ATTRIBUTES = {"CloudPubSubDeadLetterSourceDeliveryCount": "5",
                          "CloudPubSubDeadLetterSourceSubscription": "telemetry-events-sink",
                          "CloudPubSubDeadLetterSourceSubscriptionProject": "p",
                          "CloudPubSubDeadLetterSourceTopicPublishTime": "2026-11-01T00:00:00.000Z"}


def batch_message(events: int = 1, received_at: str | None = None, **extra: str) -> tuple[bytes, dict]:
    """A published batch message of `events` realistic events."""
    identity = Identity("inst-1", None, "fp-1", ("dev",), "dev", "licensed_instance")
    batch = Batch(identity, "req-1", received_at or datetime.now(UTC).isoformat(),
                  [make_event() for _ in range(events)])
    return encode(batch, 1, extra or None)

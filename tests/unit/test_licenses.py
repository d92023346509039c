"""License format, signatures, keyrings, revocation, expiry and the CLI."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from shared.config import Config
from shared.errors import ConfigError, Forbidden, Unauthorized
from shared.licenses import Keyring, LicenseVerifier, keyring_from_config, load_revoked
from shared.licenses.keys import (
    SOURCEGRAPH_PRODUCTION_PUBLIC_KEY,
    LicenseFormatError,
    decode_license,
    parse_authorized_keys,
    signature_valid,
)
from tests.helpers import KeyPair


@pytest.fixture(scope="module")
def rsa(tmp_path_factory) -> KeyPair:
    return KeyPair(tmp_path_factory.mktemp("rsa"))


@pytest.fixture(scope="module")
def ed(tmp_path_factory) -> KeyPair:
    return KeyPair(tmp_path_factory.mktemp("ed"), "ed25519")


def verifier(*pairs: KeyPair, **kwargs) -> LicenseVerifier:
    keys = tuple(k for p in pairs for k in parse_authorized_keys(p.public_path.read_text()))
    return LicenseVerifier(Keyring(keys), **kwargs)


def test_production_public_key_parses():
    (key,) = parse_authorized_keys(SOURCEGRAPH_PRODUCTION_PUBLIC_KEY)
    assert key.key_size == 2048


@pytest.mark.parametrize("fmt", ["ssh-rsa", "rsa-sha2-256", "rsa-sha2-512"])
def test_rsa_signature_formats_verify(rsa, fmt):
    lic = decode_license(rsa.issue(sig_format=fmt))
    assert lic.sig_format == fmt
    (pub,) = parse_authorized_keys(rsa.public_path.read_text())
    assert signature_valid(lic, pub)


def test_ed25519_verifies_and_is_not_confused_with_rsa(rsa, ed):
    lic = decode_license(ed.issue())
    assert lic.sig_format == "ssh-ed25519"
    (ed_pub,) = parse_authorized_keys(ed.public_path.read_text())
    (rsa_pub,) = parse_authorized_keys(rsa.public_path.read_text())
    assert signature_valid(lic, ed_pub)
    assert not signature_valid(lic, rsa_pub)


def test_format_claimed_differently_fails(rsa):
    key = rsa.issue(sig_format="rsa-sha2-256")
    lic = decode_license(key)
    (pub,) = parse_authorized_keys(rsa.public_path.read_text())
    forged = type(lic)(lic.info, lic.info_bytes, "rsa-sha2-512", lic.sig_blob)
    assert not signature_valid(forged, pub)


def test_whitespace_ignored_and_fingerprint_stable(rsa):
    key = rsa.issue()
    wrapped = " \n".join(key[i:i + 50] for i in range(0, len(key), 50)) + "\n"
    assert decode_license(wrapped).fingerprint == decode_license(key).fingerprint
    assert verifier(rsa).verify(wrapped).fingerprint == decode_license(key).fingerprint


@pytest.mark.parametrize("text", ["", "   ", "%%%", "bm90IGpzb24", "eyJzaWciOiAxfQ"])
def test_malformed_keys(text):
    with pytest.raises(LicenseFormatError):
        decode_license(text)


@pytest.mark.parametrize("version", [0, 4, "3", None])
def test_unknown_format_versions_refused(rsa, version):
    from shared.licenses.keys import encode_license

    key = encode_license({"v": version, "t": [], "e": "2030-01-01T00:00:00Z"}, rsa.private)
    with pytest.raises(LicenseFormatError, match="version"):
        decode_license(key)


def test_verifier_results(rsa, ed, tmp_path):
    v = verifier(rsa)
    lic = v.verify(rsa.issue(tags=("dev", "plan:x")))
    assert lic.tags == ("dev", "plan:x") and lic.info_version == 3 and lic.user_count == 10
    with pytest.raises(Unauthorized) as exc:
        v.verify(ed.issue())
    assert exc.value.code == "untrusted_license"
    both = verifier(rsa, ed)
    assert both.verify(ed.issue()).fingerprint


def test_other_environment_key_is_403(rsa, ed):
    keys = tuple(parse_authorized_keys(rsa.public_path.read_text()))
    other = tuple(parse_authorized_keys(ed.public_path.read_text()))
    with pytest.raises(Forbidden) as exc:
        LicenseVerifier(Keyring(keys, other)).verify(ed.issue())
    assert exc.value.code == "wrong_environment"


def test_revocation_and_expiry_policy(rsa, tmp_path):
    revoked_key = rsa.issue()
    fingerprint = decode_license(revoked_key).fingerprint
    listed = tmp_path / "revoked"
    listed.write_text(f"# comment\n\n{fingerprint.upper()}  # customer churned\n")
    v = verifier(rsa, revoked=load_revoked(listed), expiry_grace_days=30)
    with pytest.raises(Forbidden, match="revoked"):
        v.verify(revoked_key)
    recently = rsa.issue(expires=datetime.now(UTC) - timedelta(days=10))
    assert v.verify(recently)
    long_ago = rsa.issue(expires=datetime.now(UTC) - timedelta(days=31))
    with pytest.raises(Forbidden) as exc:
        v.verify(long_ago)
    assert exc.value.code == "license_expired"
    assert verifier(rsa, expiry_grace_days=-1).verify(long_ago)


def test_cache_is_bounded_and_expiry_checked_on_hits(rsa):
    now = [datetime.now(UTC).timestamp()]
    v = verifier(rsa, cache_size=2, clock=lambda: now[0], expiry_grace_days=0)
    key = rsa.issue(expires=datetime.now(UTC) + timedelta(days=1))
    v.verify(key)
    assert len(v._cache) == 1
    now[0] += 2 * 86400
    with pytest.raises(Forbidden):
        v.verify(key)
    for _ in range(3):
        with pytest.raises(Unauthorized):
            v.verify(rsa.issue() + "x")
    assert len(v._cache) == 2


def _config(**env: str) -> Config:
    return Config.from_env(env)


def test_keyrings_per_environment(rsa, ed):
    prod = keyring_from_config(_config(TELEMETRY_ENV="prod"))
    assert len(prod.trusted) == 1 and prod.trusted[0].key_size == 2048
    listed = keyring_from_config(_config(TELEMETRY_ENV="prod", TRUSTED_LICENSE_KEYS_FILE=str(ed.public_path)))
    assert len(listed.trusted) == 1 and signature_valid(decode_license(ed.issue()), listed.trusted[0])
    dev = keyring_from_config(_config(TELEMETRY_ENV="dev", TRUSTED_LICENSE_KEYS_FILE=str(rsa.public_path)))
    assert len(dev.other_environment) == 1  # Sourcegraph's production key, refused with a clear 403
    with pytest.raises(ConfigError, match="dev-private"):
        keyring_from_config(_config(TELEMETRY_ENV="dev"))


def test_bad_key_file_is_config_error(tmp_path):
    bad = tmp_path / "keys"
    bad.write_text("ssh-rsa not-base64\n")
    with pytest.raises(ConfigError, match="line 1"):
        keyring_from_config(_config(TELEMETRY_ENV="prod", TRUSTED_LICENSE_KEYS_FILE=str(bad)))


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "shared.licenses", *args], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[2], timeout=60)


def test_cli_keygen_issue_inspect(tmp_path):
    assert run_cli("keygen", "--out", str(tmp_path)).returncode == 0
    assert (tmp_path / "license-key").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "license-key.pub").read_text().startswith("ssh-rsa ")
    issued = run_cli("issue", "--key", str(tmp_path / "license-key"), "--tags", "dev,plan:team", "--users", "7",
                     "--expires", "2031-02-03", "--sf-sub-id", "sub-1")
    assert issued.returncode == 0, issued.stderr
    key = issued.stdout.strip()
    report = run_cli("inspect", key, "--public-key", str(tmp_path / "license-key.pub"))
    assert report.returncode == 0
    doc = orjson.loads(report.stdout)
    assert doc["verified"] is True
    assert doc["info"]["t"] == ["dev", "plan:team"] and doc["info"]["u"] == 7
    assert doc["info"]["e"] == "2031-02-03T00:00:00Z" and doc["info"]["sf_sub_id"] == "sub-1"
    assert doc["fingerprint"] == decode_license(key).fingerprint
    against_prod = run_cli("inspect", key)
    assert against_prod.returncode == 1 and orjson.loads(against_prod.stdout)["verified"] is False
    assert run_cli("keygen", "--out", str(tmp_path)).returncode == 1


def test_far_future_expiry_is_accepted_not_a_crash(rsa):
    key = rsa.issue(expires=datetime(9999, 12, 31, 23, 0, tzinfo=UTC))
    assert verifier(rsa, expiry_grace_days=30).verify(key).expires_at.year == 9999

"""License verification: keyrings, revocation, expiry policy, caching."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.errors import ConfigError, Forbidden, Unauthorized
from shared.ingest.config import IngestConfig
from shared.ingest.licenses.keys import decode_license, parse_authorized_keys, signature_valid
from shared.ingest.licenses.verifier import Keyring, LicenseVerifier, keyring_from_config, load_revoked
from tests.helpers import KeyPair


def verifier(*pairs: KeyPair, **kwargs) -> LicenseVerifier:
    keys = tuple(k for p in pairs for k in parse_authorized_keys(p.public_path.read_text()))
    return LicenseVerifier(Keyring(keys), **kwargs)


def test_verifier_results(rsa, ed, tmp_path):
    v = verifier(rsa)
    lic = v.verify(rsa.issue(tags=("dev", "plan:x")))
    assert lic.tags == ("dev", "plan:x")
    with pytest.raises(Unauthorized) as exc:
        v.verify(ed.issue())
    assert exc.value.code == "untrusted_license"
    both = verifier(rsa, ed)
    ed_key = ed.issue()
    assert both.verify(ed_key).fingerprint == decode_license(ed_key).fingerprint


def test_whitespace_wrapped_key_verifies_as_the_same_license(rsa):
    key = rsa.issue()
    wrapped = " \n".join(key[i:i + 50] for i in range(0, len(key), 50)) + "\n"
    assert verifier(rsa).verify(wrapped).fingerprint == decode_license(key).fingerprint


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
    assert v.verify(recently).fingerprint == decode_license(recently).fingerprint
    long_ago = rsa.issue(expires=datetime.now(UTC) - timedelta(days=31))
    with pytest.raises(Forbidden) as exc:
        v.verify(long_ago)
    assert exc.value.code == "license_expired"
    assert verifier(rsa, expiry_grace_days=-1).verify(long_ago).fingerprint == decode_license(long_ago).fingerprint


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


def _config(**env: str) -> IngestConfig:
    return IngestConfig.from_env(env)


def test_keyrings_per_environment(rsa, ed):
    prod = keyring_from_config(_config(TELEMETRY_ENV="prod"))
    assert len(prod.trusted) == 1 and prod.trusted[0].key_size == 2048
    listed = keyring_from_config(_config(TELEMETRY_ENV="prod", TRUSTED_LICENSE_KEYS_FILE=str(ed.public_path)))
    assert len(listed.trusted) == 1 and signature_valid(decode_license(ed.issue()), listed.trusted[0]) is True
    dev = keyring_from_config(_config(TELEMETRY_ENV="dev", TRUSTED_LICENSE_KEYS_FILE=str(rsa.public_path)))
    assert len(dev.other_environment) == 1  # Sourcegraph's production key, refused with a clear 403
    with pytest.raises(ConfigError, match="dev-private"):
        keyring_from_config(_config(TELEMETRY_ENV="dev"))


def test_bad_key_file_is_config_error(tmp_path):
    bad = tmp_path / "keys"
    bad.write_text("ssh-rsa not-base64\n")
    with pytest.raises(ConfigError, match="line 1"):
        keyring_from_config(_config(TELEMETRY_ENV="prod", TRUSTED_LICENSE_KEYS_FILE=str(bad)))


def test_far_future_expiry_is_accepted_not_a_crash(rsa):
    key = rsa.issue(expires=datetime(9999, 12, 31, 23, 0, tzinfo=UTC))
    assert verifier(rsa, expiry_grace_days=30).verify(key).expires_at.year == 9999


def test_refusals_are_cached_small_and_keyed_by_a_hash(rsa):
    v = verifier(rsa)
    garbage = "x" * 3000
    for _ in range(2):
        with pytest.raises(Unauthorized) as exc:
            v.verify(garbage)
        assert exc.value.code == "invalid_license"
    ((key, value),) = v._cache.items()
    assert len(key) == 32 and garbage.encode() not in key
    assert value == (Unauthorized, "invalid_license", exc.value.message)  # no exception, no traceback kept


def test_null_tag_list_is_no_tags(rsa):
    from tools.signing import encode_license

    key = encode_license({"v": 3, "t": None, "e": "2099-01-01T00:00:00Z"}, rsa.private)
    assert verifier(rsa).verify(key).tags == ()

"""The privacy policy: allowlisted private metadata, marketing tracking from listed instances only."""

from __future__ import annotations

import pytest

from shared.errors import ConfigError
from shared.ingest.config import IngestConfig
from shared.ingest.policy import MARKETING_TRACKING, PRIVATE_METADATA, PrivacyPolicy, read_allowlist
from tests.helpers import make_event


def policy(tmp_path, allow: str | None, instances: str | None = None) -> PrivacyPolicy:
    env = {"TELEMETRY_ENV": "dev"}
    if allow is not None:
        (tmp_path / "allow").write_text(allow)
        env["PRIVATE_METADATA_ALLOWLIST_FILE"] = str(tmp_path / "allow")
    if instances is not None:
        (tmp_path / "instances").write_text(instances)
        env["MARKETING_TRACKING_INSTANCES_FILE"] = str(tmp_path / "instances")
    return PrivacyPolicy.from_config(IngestConfig.from_env(env))


def private(feature: str = "cody.completion", action: str = "accepted") -> dict:
    return make_event(feature=feature, action=action, parameters={"version": 1, "privateMetadata": {"q": "secret"}},
                      marketingTracking={"url": "https://x"})


def test_unset_means_nothing_is_kept(tmp_path):
    event, removed = policy(tmp_path, None).apply(private(), "inst")
    assert removed == [PRIVATE_METADATA, MARKETING_TRACKING]
    assert "privateMetadata" not in event["parameters"] and "marketingTracking" not in event
    assert event["parameters"]["version"] == 1


@pytest.mark.parametrize(("feature", "action", "kept"), [
    ("cody.completion", "accepted", True), ("cody.completion", "suggested", True), ("cody.chat", "submitted", True),
    ("search.results", "viewed", False), ("blob.view", "submitted", True), ("blob.view", "hover", False)])
def test_allowlist_patterns(tmp_path, feature, action, kept):
    rules = policy(tmp_path, "# comment\ncody.completion:*\n*:submitted  # any feature\n\n", "inst-marketing\n")
    original = private(feature, action)
    event, removed = rules.apply(original, "inst-marketing")
    assert ("privateMetadata" in event["parameters"]) is kept
    assert removed == ([] if kept else [PRIVATE_METADATA])
    assert event["marketingTracking"] == {"url": "https://x"}  # a listed instance keeps it
    assert original["parameters"]["privateMetadata"] == {"q": "secret"}  # the caller's object is not changed


def test_unchanged_event_is_returned_as_is(tmp_path):
    event = make_event()
    assert policy(tmp_path, "").apply(event, "i") == (event, [])


def test_empty_values_are_dropped_but_not_reported(tmp_path):
    event, removed = policy(tmp_path, None).apply(make_event(parameters={"privateMetadata": None}), "i")
    assert removed == [] and "privateMetadata" not in event["parameters"]


@pytest.mark.parametrize("line", ["cody.completion", ":x", "x:"])
def test_malformed_allowlist_is_a_config_error(tmp_path, line):
    (tmp_path / "a").write_text(line + "\n")
    with pytest.raises(ConfigError, match="feature:action"):
        read_allowlist(tmp_path / "a")


def test_a_pinned_instance_keeps_marketing_only_with_its_license(tmp_path):
    rules = policy(tmp_path, None, "dotcom ABCDEF\nloose-instance\n")
    event = make_event(marketingTracking={"url": "https://x"})
    assert rules.apply(event, "dotcom", "abcdef")[1] == []  # the pinned license
    assert rules.apply(event, "dotcom", "other-license")[1] == [MARKETING_TRACKING]  # someone claiming its id
    assert rules.apply(event, "dotcom", None)[1] == [MARKETING_TRACKING]
    assert rules.apply(event, "loose-instance", "anything")[1] == []


def test_snake_case_names_go_through_the_policy_too():
    from datetime import UTC, datetime, timedelta

    from shared.ingest.batch import Limits, validate_batch

    limits = Limits(65536, 32, 16384, timedelta(hours=1), timedelta(days=365))
    event = make_event(feature="search.results", action="viewed", parameters={"private_metadata": {"q": "secret"}},
                       marketing_tracking={"url": "https://x"})
    result = validate_batch([event], limits, datetime.now(UTC), lambda e: PrivacyPolicy().apply(e, "i"))
    (published,) = result.accepted
    assert result.redacted == [[PRIVATE_METADATA, MARKETING_TRACKING]]
    assert b"secret" not in result.accepted_json[0] and b"https://x" not in result.accepted_json[0]
    assert "private_metadata" not in published["parameters"] and "marketing_tracking" not in published

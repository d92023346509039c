"""Proto3 JSON names: declared snake_case fields are read under their camelCase names."""

from __future__ import annotations

import pytest

from shared.ingest.names import DuplicateField, camel_case, snake_case
from tests.helpers import make_event


def test_snake_case():
    assert [snake_case(n) for n in ("featureFlags", "id", "samsExternalId")] == ["feature_flags", "id",
                                                                                 "sams_external_id"]


def test_declared_fields_are_renamed_at_every_level_and_maps_are_left_alone():
    event = {"id": "a", "feature_flags": {"flags": {"some_flag": "true"}},
             "parameters": {"legacy_metadata": {"n_count": "5"}, "billing_metadata": {"product": "CODY"}},
             "user": {"user_id": "7", "anonymous_user_id": "x"},
             "interaction": {"trace_id": "t", "geolocation": {"country_code": "DE"}}, "unknown_field": 1}
    assert camel_case(event) == {
        "id": "a", "featureFlags": {"flags": {"some_flag": "true"}},
        "parameters": {"legacyMetadata": {"n_count": "5"}, "billingMetadata": {"product": "CODY"}},
        "user": {"userId": "7", "anonymousUserId": "x"},
        "interaction": {"traceId": "t", "geolocation": {"countryCode": "DE"}}, "unknown_field": 1}


def test_camel_case_events_are_returned_unchanged():
    event = make_event()
    assert camel_case(event) is event


def test_both_spellings_are_refused():
    with pytest.raises(DuplicateField, match="featureFlags"):
        camel_case({"featureFlags": {}, "feature_flags": {}})

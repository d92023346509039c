"""Grouping rejected rows back into their original messages for replay."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import orjson

from tools.replay import _batches


def row(rejection_id: str, message_id: str, event: dict, kind: str | None = "licensed_instance") -> SimpleNamespace:
    return SimpleNamespace(rejection_id=rejection_id, message_id=message_id, request_id=f"r-{message_id}",
                           instance_id="i", external_url=None, license_fingerprint="fp", license_tags=["dev"],
                           environment="dev", caller_kind=kind, service_environment=None, caller_email=None,
                           received_at=datetime(2026, 1, 1, tzinfo=UTC),
                           raw_event=orjson.dumps(event).decode())


def test_one_batch_per_original_message_each_rejection_once():
    rows = [row("m1:0", "m1", {"id": "a"}), row("m2:3", "m2", {"id": "b"}, kind=None),
            row("m1:2", "m1", {"id": "c"}), row("m1:0", "m1", {"id": "a"})]
    (b1, ids1), (b2, ids2) = _batches(rows)
    assert ids1 == ["m1:0", "m1:2"] and [e["id"] for e in b1.events] == ["a", "c"]
    assert b1.request_id == "r-m1" and b1.identity.license_tags == ("dev",)
    assert b1.received_at == "2026-01-01T00:00:00+00:00"
    assert ids2 == ["m2:3"] and b2.identity.kind == "licensed_instance"

"""Request-log records -> `requests` rows."""

from __future__ import annotations

import orjson
import pytest

from shared.sink.request_rows import request_row
from shared.sink.warehouse.tables import REQUESTS


def test_json_columns_become_json_text_and_unknown_or_null_fields_are_left_out():
    record = {"record_id": "r", "received_at": 5, "outcome": "partial", "status": 200, "refused": {"x": 1},
              "suppressed_by_code": None, "a_column_of_a_later_release": 1}
    row = request_row(record, 9)
    assert row == {"record_id": "r", "received_at": 5, "outcome": "partial", "status": 200,
                   "refused": '{"x":1}', "inserted_at": 9}
    assert orjson.loads(row["refused"]) == {"x": 1}
    assert set(row) <= {c.name for c in REQUESTS.columns}


def test_a_record_without_its_required_columns_is_refused():
    with pytest.raises(ValueError, match="outcome"):
        request_row({"record_id": "r", "received_at": 5}, 9)

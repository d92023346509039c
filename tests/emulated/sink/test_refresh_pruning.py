"""The refresh's pruning construction on the BigQuery emulator: the day filters the script writes with literals
are the ones `refresh.day_filters` models (tests/unit/sink/warehouse/test_refresh.py reads the executed text
through that model), and the EXECUTE IMMEDIATE statements run, in their transaction, with the right result."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from devtools.pipeline import create_warehouse
from shared.sink.clients import bigquery_client
from shared.sink.config import SinkConfig
from shared.sink.warehouse import refresh

TODAY = datetime.now(UTC).date()
LATE = [TODAY - timedelta(days=300), TODAY - timedelta(days=1), TODAY]


@pytest.fixture
def warehouse(bigquery_env) -> tuple:
    """A client and the test's dataset, made as deploy.sh makes it."""
    config = SinkConfig.from_env(bigquery_env)
    create_warehouse(config)
    return bigquery_client(config), config.dataset_ref


@pytest.mark.parametrize("days", [
    [], [date(2026, 1, 1)], LATE, [date(2025, 12, 30), date(2025, 12, 31), date(2026, 1, 1), date(2026, 1, 3)],
    [date(2024, 2, 28) + timedelta(days=n) for n in range(0, 400, 2)] + [date(2023, 1, 1)]])
def test_the_script_writes_the_day_filters_the_model_does(warehouse, days):
    client, _ = warehouse
    literal = ", ".join(f"DATE '{d}'" for d in days)
    script = (f"DECLARE days ARRAY<DATE> DEFAULT {f'[{literal}]' if days else 'CAST(NULL AS ARRAY<DATE>)'};\n"
              f"SELECT {', '.join(f'{sql} AS h{i}' for i, sql in enumerate(refresh.FILTERS_SQL.values()))}")
    [row] = client.query(script).result()
    assert {hole: row[f"h{i}"] for i, hole in enumerate(refresh.FILTERS_SQL)} == refresh.day_filters(days)


def insert_events(client, ds: str, days: list[date], instance: str) -> None:
    values = ", ".join(
        f"('e-{instance}-{d}', TIMESTAMP '{d} 12:00:00+00', 'pruning.test', 'seen', '{instance}', 'fp', 7, "
        "CURRENT_TIMESTAMP(), CURRENT_TIMESTAMP())" for d in days)
    client.query(f"INSERT INTO `{ds}.events` (event_id, `timestamp`, feature, action, instance_id, "
                 f"license_fingerprint, user_id, received_at, inserted_at) VALUES {values}").result()


def events(client, ds: str) -> dict[date, int]:
    """Events per day in daily_active_users (one row per day and instance)."""
    rows = client.query(f"SELECT day, SUM(events) AS events FROM `{ds}.daily_active_users` GROUP BY day").result()
    return {r["day"]: r["events"] for r in rows}


def test_a_refresh_with_a_late_event_rebuilds_exactly_its_days_and_then_nothing(warehouse):
    client, ds = warehouse
    insert_events(client, ds, [*LATE, TODAY - timedelta(days=150)], "a")
    assert refresh.refresh(client, ds) == sorted([*LATE, TODAY - timedelta(days=150)])  # the first run: every day
    insert_events(client, ds, LATE, "b")  # a second instance on today, yesterday and 300 days ago
    assert refresh.refresh(client, ds, overlap_minutes=0) == LATE
    assert events(client, ds) == {LATE[0]: 2, LATE[1]: 2, LATE[2]: 2, TODAY - timedelta(days=150): 1}
    assert refresh.refresh(client, ds, overlap_minutes=0) == []  # no days: FALSE filters, nothing deleted
    assert events(client, ds) == {LATE[0]: 2, LATE[1]: 2, LATE[2]: 2, TODAY - timedelta(days=150): 1}
    assert refresh.rebuild(client, ds, [LATE[0]]) == [LATE[0]]
    assert events(client, ds)[LATE[0]] == 2

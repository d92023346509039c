"""The aggregates' refresh script: structure, pruning, atomic replacement, the watermark."""

from __future__ import annotations

from datetime import date

from shared.sink.warehouse import aggregates, refresh

DS = "proj.telemetry"


def statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";\n") if s.strip()]


def test_the_refresh_rebuilds_the_days_named_by_one_variable():
    parts = statements(refresh.refresh_script(DS))
    declares = [p for p in parts if p.startswith("DECLARE")]
    assert parts[: len(declares)] == declares  # BigQuery wants every DECLARE first
    assert [d.split()[1] for d in declares] == ["run_started", "since", "days", "first_day", "last_day"]
    assert f"INTERVAL {aggregates.OVERLAP_MINUTES} MINUTE" in declares[1] and "kind = 'refresh'" in declares[1]
    assert "inserted_at >= since" in declares[2]
    merges = [p for p in parts if p.startswith("MERGE")]
    targets = (*aggregates.DAILY_TABLES, aggregates.INSTANCES)
    assert [m.split("`")[1] for m in merges] == [f"{DS}.{t.name}" for t in targets]
    for merge in merges[:-1]:
        # The source reads events through constants (the variables), so BigQuery prunes partitions; the target
        # loses only the rebuilt days' rows, in the same statement that writes their new ones.
        assert "`timestamp` >= TIMESTAMP(first_day) AND `timestamp` < TIMESTAMP(DATE_ADD(last_day" in merge
        assert "DATE(`timestamp`) IN UNNEST(days)" in merge
        assert "WHEN NOT MATCHED BY SOURCE AND t.day IN UNNEST(days) THEN DELETE" in merge
        assert "GROUP BY license_fingerprint, instance_id, event_id, `timestamp`, feature, action" in merge
        assert "SELECT" not in merge.split("WHERE", 1)[1].split("GROUP BY")[0]  # no subquery in the filter
    assert "WHEN NOT MATCHED BY SOURCE THEN DELETE" in merges[-1]  # instances: replaced whole
    # The daily tables change together; instances after the commit (in a transaction a materialized view is
    # read like a logical view, over all of events); the watermark moves last; the result is the days.
    daily = [parts.index(m) for m in merges[:-1]]
    assert parts[min(daily) - 1] == "BEGIN TRANSACTION" and parts[max(daily) + 1] == "COMMIT TRANSACTION"
    assert parts.index(merges[-1]) == max(daily) + 2
    assert parts[-2].startswith(f"INSERT INTO `{DS}.aggregate_runs`")
    assert parts[-1] == "SELECT IFNULL(days, []) AS days"


def test_a_rebuild_names_its_days_and_leaves_the_watermark_alone():
    script = refresh.rebuild_script(DS, [date(2026, 1, 3), date(2026, 1, 1), date(2026, 1, 3)])
    assert "DEFAULT (SELECT [DATE '2026-01-01', DATE '2026-01-03'])" in script
    assert "since" not in script and "VALUES ('rebuild'" in script
    assert "CAST(NULL AS ARRAY<DATE>)" in refresh.rebuild_script(DS, [])


def test_the_lookback_is_the_event_age_limit_plus_slack():
    assert "INTERVAL IF(since IS NULL, 3650,\n" in refresh.refresh_script(DS)
    assert f"{1000 + aggregates.LOOKBACK_SLACK_DAYS}) DAY)" in refresh.refresh_script(DS, lookback_days=1035)
    assert f"{aggregates.LOOKBACK_DAYS}) DAY)" in refresh.refresh_script(DS)

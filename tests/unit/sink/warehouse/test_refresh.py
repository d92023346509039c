"""The aggregates' refresh script: structure, pruning, atomic replacement, the watermark."""

from __future__ import annotations

import re
from datetime import date, timedelta

from shared.sink.warehouse import aggregates, refresh

DS = "proj.telemetry"
TODAY = date(2026, 3, 10)
# A refresh's usual changed days (today and yesterday) plus one late event 300 days old.
LATE = [TODAY - timedelta(days=300), TODAY - timedelta(days=1), TODAY]


def statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";\n") if s.strip()]


_DYNAMIC = re.compile(r'^EXECUTE IMMEDIATE (?:REPLACE\()*"""(.*?)"""(.*)$', re.S)


def executed(script: str, days: list[date], from_day: date = TODAY) -> list[str]:
    """The statements the script runs once its days are `days`: an EXECUTE IMMEDIATE is the text it executes,
    its holes filled with what the script computes for them (refresh.day_filters, checked against the
    emulator in tests/integration/test_refresh_pruning.py)."""
    out = []
    for statement in statements(script):
        match = _DYNAMIC.match(statement)
        if match is None:
            out.append(statement)
            continue
        values = {**refresh.day_filters(days), refresh.FROM_DAY: from_day.isoformat()}
        text = match.group(1)
        for hole in re.findall(r", '(__[A-Z_]+__)', ", match.group(2)):
            text = text.replace(hole, values[hole])
        out.append(text)
    return out


def event_filters(statement: str, table: str = "events") -> list[str]:
    """The WHERE clause of each read of a table (`events`, `requests`) in a statement."""
    reads = statement.split(f"FROM `{DS}.{table}`")[1:]
    return [re.split(r"\n\s*(?:GROUP BY|UNION ALL|QUALIFY)", read.split("WHERE", 1)[1])[0] for read in reads]


LITERAL_TOKENS = {"`timestamp`", "received_at", "inserted_at", "TIMESTAMP", "AND", "OR", "FALSE", "IS", "NULL",
                  "?", ">=", "<", "(", ")"}
HEALTH = f"{DS}.{aggregates.DAILY_INGESTION_HEALTH.name}"


def daily_merges(run: list[str]) -> list[str]:
    """The MERGEs of the daily tables of events (not instances', not the health table's)."""
    names = {f"{DS}.{t.name}" for t in aggregates.DAILY_TABLES}
    return [s for s in run if s.startswith("MERGE") and s.split("`")[1] in names]


def health_merge(run: list[str]) -> str:
    [merge] = [s for s in run if s.startswith(f"MERGE `{HEALTH}`")]
    return merge


def test_every_read_of_events_filters_its_partitions_with_literals_only():
    # BigQuery prunes partitions for a constant filter expression ("If you use dynamic expressions in your query
    # filter, BigQuery must scan all of the partitions"); a script variable is not documented to be constant.
    for script in (refresh.refresh_script(DS), refresh.rebuild_script(DS, LATE)):
        reads = [f for s in executed(script, LATE) for f in event_filters(s)]
        # finding the days, then one per daily table and the health table's
        assert len(reads) == (1 + 3 + 1 if "'refresh'" in script else 3 + 1)
        request_reads = [f for s in executed(script, LATE) for f in event_filters(s, "requests")]
        assert len(request_reads) == (1 + 1 if "'refresh'" in script else 1)  # finding the days, then health
        for where in reads + request_reads:
            assert re.search(r"(`timestamp`|received_at) >= TIMESTAMP '\d{4}-\d\d-\d\d'", where), where
            tokens = re.findall(r"`\w+`|'[^']*'|>=|\?|[<()]|\w+", re.sub(r"'[^']*'", " ", where))
            assert set(tokens) <= LITERAL_TOKENS, (set(tokens) - LITERAL_TOKENS, where)


def days_of(ranges: list[tuple[str, str]], last_included: bool) -> set[date]:
    """The days (partitions) the ranges cover."""
    days = set()
    for first, end in ranges:
        day, stop = date.fromisoformat(first), date.fromisoformat(end) + timedelta(days=int(last_included))
        while day < stop:
            days.add(day)
            day += timedelta(days=1)
    return days


def test_a_late_event_300_days_old_reads_its_partition_and_not_the_299_between():
    for script in (refresh.refresh_script(DS), refresh.rebuild_script(DS, LATE)):
        run = executed(script, LATE)
        merges = daily_merges(run)
        assert len(merges) == len(aggregates.DAILY_TABLES)
        for merge, table, column in [*((m, "events", "`timestamp`") for m in [*merges, health_merge(run)]),
                                     (health_merge(run), "requests", "received_at")]:
            [where] = event_filters(merge, table)
            ranges = re.findall(rf"{column} >= TIMESTAMP '([\d-]+)' AND {column} < TIMESTAMP '([\d-]+)'", where)
            assert len(ranges) == 2  # consecutive days are one range: [D-300, D-299) and [D-1, D+1)
            assert days_of(ranges, last_included=False) == set(LATE)  # three partitions
            # The target loses exactly those days' rows, in the statement that writes their new ones.
            scope = merge.split("WHEN NOT MATCHED BY SOURCE AND ", 1)[1].split(" THEN DELETE")[0]
            targets = re.findall(r"t\.day BETWEEN DATE '([\d-]+)' AND DATE '([\d-]+)'", scope)
            assert days_of(targets, last_included=True) == set(LATE)


def test_no_days_read_no_partition_and_delete_nothing():
    for script in (refresh.refresh_script(DS), refresh.rebuild_script(DS, [])):
        run = executed(script, [])
        merges = [*daily_merges(run), health_merge(run)]
        assert all("WHERE (FALSE)" in m and "WHEN NOT MATCHED BY SOURCE AND (FALSE) THEN DELETE" in m for m in merges)
        assert health_merge(run).count("WHERE (FALSE)") == 2  # its read of requests and of events


def test_the_refresh_runs_the_statements_a_rebuild_of_its_days_runs():
    refreshed = [s for s in executed(refresh.refresh_script(DS), LATE) if s.startswith("MERGE")]
    rebuilt = [s for s in executed(refresh.rebuild_script(DS, LATE), LATE) if s.startswith("MERGE")]
    assert refreshed == rebuilt and "EXECUTE IMMEDIATE" not in refresh.rebuild_script(DS, LATE)


def test_the_day_filters_join_consecutive_days():
    assert refresh.day_runs([date(2026, 1, 3), date(2026, 1, 1), date(2026, 1, 2), date(2026, 1, 5)]) == [
        (date(2026, 1, 1), date(2026, 1, 3)), (date(2026, 1, 5), date(2026, 1, 5))]
    assert refresh.day_filters([date(2025, 12, 31)]) == {
        refresh.EVENT_DAYS: "`timestamp` >= TIMESTAMP '2025-12-31' AND `timestamp` < TIMESTAMP '2026-01-01'",
        refresh.REQUEST_DAYS: "received_at >= TIMESTAMP '2025-12-31' AND received_at < TIMESTAMP '2026-01-01'",
        refresh.TARGET_DAYS: "t.day BETWEEN DATE '2025-12-31' AND DATE '2025-12-31'"}
    assert refresh.day_filters([]) == {refresh.EVENT_DAYS: "FALSE", refresh.REQUEST_DAYS: "FALSE",
                                       refresh.TARGET_DAYS: "FALSE"}


def test_the_refresh_rebuilds_the_days_named_by_one_variable():
    parts = statements(refresh.refresh_script(DS))
    declares = [p for p in parts if p.startswith("DECLARE")]
    assert parts[: len(declares)] == declares  # BigQuery wants every DECLARE first
    assert [d.split()[1] for d in declares] == ["run_started", "since", "days", "event_days", "request_days",
                                                "target_days"]
    assert f"INTERVAL {aggregates.OVERLAP_MINUTES} MINUTE" in declares[1] and "kind = 'refresh'" in declares[1]
    find = parts[len(declares)]
    assert find.startswith("EXECUTE IMMEDIATE") and find.endswith("INTO days USING since, since, since, since")
    assert find.count("AND (? IS NULL OR inserted_at >= ?)") == 2  # new events' days and new requests' days
    assert parts[len(declares) + 1].startswith("SET event_days = ")
    assert parts[len(declares) + 2].startswith("SET request_days = ")
    assert parts[len(declares) + 3].startswith("SET target_days = ")
    run = executed(refresh.refresh_script(DS), LATE)
    merges = [p for p in run if p.startswith("MERGE")]
    targets = (*aggregates.DAILY_TABLES, aggregates.INSTANCES, aggregates.DAILY_INGESTION_HEALTH)
    assert [m.split("`")[1] for m in merges] == [f"{DS}.{t.name}" for t in targets]
    for merge in merges[:-2]:
        assert "GROUP BY license_fingerprint, instance_id, event_id, `timestamp`, feature, action" in merge
        assert "SELECT" not in merge.split("WHERE", 1)[1].split("GROUP BY")[0]  # no subquery in the filter
    assert "WHEN NOT MATCHED BY SOURCE THEN DELETE" in merges[-2]  # instances: replaced whole
    # The daily tables change together; instances after the commit (in a transaction a materialized view is
    # read like a logical view, over all of events), then the health table (it names instances by license
    # from `instances`); the watermark moves last; the result is the days.
    daily = [run.index(m) for m in merges[:-2]]
    assert daily == list(range(min(daily), max(daily) + 1))
    assert run[min(daily) - 1] == "BEGIN TRANSACTION" and run[max(daily) + 1] == "COMMIT TRANSACTION"
    assert run.index(merges[-2]) == max(daily) + 2 and run.index(merges[-1]) == max(daily) + 3
    assert parts[-2].startswith(f"INSERT INTO `{DS}.aggregate_runs`")
    assert parts[-1] == "SELECT IFNULL(days, []) AS days"


def test_a_rebuild_names_its_days_and_leaves_the_watermark_alone():
    script = refresh.rebuild_script(DS, [date(2026, 1, 3), date(2026, 1, 1), date(2026, 1, 3)])
    assert "DECLARE days ARRAY<DATE> DEFAULT [DATE '2026-01-01', DATE '2026-01-03']" in script
    assert "since" not in script and "VALUES ('rebuild'" in script
    assert "CAST(NULL AS ARRAY<DATE>)" in refresh.rebuild_script(DS, [])


def test_the_lookback_is_the_event_age_limit_plus_slack():
    assert "INTERVAL IF(since IS NULL, 3650, " in refresh.refresh_script(DS)
    assert f"{1000 + aggregates.LOOKBACK_SLACK_DAYS}) DAY)" in refresh.refresh_script(DS, lookback_days=1035)
    assert f"{aggregates.LOOKBACK_DAYS}) DAY)" in refresh.refresh_script(DS)

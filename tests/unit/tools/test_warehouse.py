"""deploy.sh's questions to the warehouse definitions (python -m tools.warehouse), answered in process."""

from __future__ import annotations

import io
import json

import pytest

from shared.ingest.config import IngestConfig
from shared.sink.warehouse import aggregates, refresh
from shared.sink.warehouse.tables import EVENTS
from tools.cli import dispatch
from tools.warehouse import find_configs, parser, refresh_lookback

DS = "proj.telemetry"


@pytest.fixture
def cli(monkeypatch, capsys):
    """Run `python -m tools.warehouse ARGS` with stdin; (exit code, stdout, stderr)."""
    monkeypatch.setenv("TELEMETRY_ENV", "dev")

    def run(*args: str, stdin: str = "") -> tuple[int, str, str]:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        code = dispatch(parser(), list(args))
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def shown(columns: list[str], expiration_days: int | None = 730) -> str:
    """A table as `bq show --format=json` prints it (the API's Table resource)."""
    resource = {"schema": {"fields": [{"name": c, "type": "STRING"} for c in columns]}}
    if expiration_days:
        resource["timePartitioning"] = {"type": "DAY", "field": "timestamp",
                                        "expirationMs": str(expiration_days * 86_400_000)}
    return json.dumps(resource)


@pytest.mark.parametrize(("shown_", "rc"), [
    ("{labels}", 0), ('{"labels": {"definition": "0000"}}', 1), ("{}", 1), ("", 1)])
def test_mv_current_compares_the_live_label(cli, shown_, rc):
    shown_ = shown_.replace("{labels}", json.dumps({"labels": {"definition": aggregates.definition_label(DS)}}))
    assert cli("mv-current", DS, stdin=shown_)[0] == rc


def test_find_config_matches_the_name_and_the_data_source(cli):
    configs = [{"name": "projects/1/locations/us/transferConfigs/9", "displayName": "agg", "dataSourceId": "x"},
               {"name": "projects/1/locations/us/transferConfigs/2", "displayName": "agg",
                "dataSourceId": "scheduled_query"},
               {"name": "projects/1/locations/us/transferConfigs/1", "displayName": "other"}]
    assert find_configs(configs, "agg") == ["projects/1/locations/us/transferConfigs/2"]
    code, out, err = cli("find-config", "agg", stdin=json.dumps(configs * 2))
    assert code == 0 and out.strip() == "projects/1/locations/us/transferConfigs/2" and "2 scheduled queries" in err
    assert cli("find-config", "agg", stdin="")[:2] == (0, "\n")  # bq prints nothing when there is no config
    assert cli("find-config", "agg", stdin='{"not": "a list"}')[0] == 1


def test_the_refresh_follows_the_deployed_event_age_limit(cli, monkeypatch):
    assert json.loads(cli("refresh-params", DS)[1]) == {"query": refresh.refresh_script(DS)}
    monkeypatch.setenv("EVENT_MAX_AGE_DAYS", "1000")
    assert f"{1000 + aggregates.LOOKBACK_SLACK_DAYS}) DAY)" in cli("refresh-script", DS)[1]


def test_create_uses_the_tables_expiration_setting(cli, monkeypatch):
    monkeypatch.setenv("EVENTS_PARTITION_EXPIRATION_DAYS", "90")
    code, out, _ = cli("create", "events", DS)
    assert code == 0 and out.startswith(f"CREATE TABLE IF NOT EXISTS `{DS}.events`")
    assert "partition_expiration_days = 90" in out and "CLUSTER BY feature, action, instance_id" in out
    assert "partition_expiration_days" not in cli("create", "instances", DS)[1]  # not partitioned


def test_migrate_a_current_table_prints_nothing(cli):
    assert cli("migrate", "events", DS, stdin=shown([c.name for c in EVENTS.columns])) == (0, "", "")


def test_migrate_adds_the_missing_columns_in_one_statement_and_fixes_the_expiration(cli):
    names = [c.name for c in EVENTS.columns]
    code, out, _ = cli("migrate", "events", DS, stdin=shown(names[:-2], expiration_days=365))
    statements = [s for s in out.split(";\n") if s.strip()]
    assert code == 0 and len(statements) == 2
    assert statements[0].count("ALTER TABLE") == 1 and statements[0].count("ADD COLUMN IF NOT EXISTS") == 2
    assert f"`{names[-2]}`" in statements[0] and f"`{names[-1]}`" in statements[0]
    expire = f"ALTER TABLE `{DS}.events` SET OPTIONS (partition_expiration_days = 730)"
    assert statements[1].strip().rstrip(";") == expire


def test_migrate_needs_the_live_table(cli):
    with pytest.raises(SystemExit, match="stdin is not a bq show answer"):
        cli("migrate", "events", DS, stdin="BigQuery error in show operation: Not found")


def test_views_replace_the_current_and_drop_the_retired(cli):
    out = cli("views", DS)[1]
    assert f"CREATE OR REPLACE VIEW `{DS}.events_deduped`" in out
    assert f"CREATE OR REPLACE VIEW `{DS}.metadata_keys`" in out
    assert f"DROP VIEW IF EXISTS `{DS}.daily_event_counts`" in out


def test_grant_and_table_names(cli):
    assert cli("grant", "roles/bigquery.dataEditor", DS, "serviceAccount:a@p.iam.gserviceaccount.com")[1] == (
        f'GRANT `roles/bigquery.dataEditor` ON SCHEMA `{DS}` TO "serviceAccount:a@p.iam.gserviceaccount.com"\n')
    assert cli("tables")[1].split() == ["events", "rejected_events", "requests", "daily_feature_usage",
                                        "daily_active_users",
                                        "daily_metadata_keys", "instances", "daily_ingestion_health", "aggregate_runs"]
    with pytest.raises(SystemExit):
        cli("create", "no_such_table", DS)


def test_authorize_prints_the_whole_access_list_or_nothing(cli):
    live = {"etag": "e1", "access": [{"role": "READER", "specialGroup": "projectReaders"}]}
    code, out, _ = cli("authorize", "proj.telemetry_analysts", stdin=json.dumps(live))
    entry = {"dataset": {"dataset": {"projectId": "proj", "datasetId": "telemetry_analysts"}, "targetTypes": ["VIEWS"]}}
    assert code == 0 and json.loads(out) == {"access": [*live["access"], entry]}  # only access: bq keeps the rest
    assert cli("authorize", "proj.telemetry_analysts", stdin=out)[:2] == (0, "")
    with pytest.raises(SystemExit):
        cli("authorize", "proj.telemetry_analysts", stdin="")


def test_analyst_views_and_role(cli):
    code, out, _ = cli("analyst-views", DS, "proj.telemetry_analysts")
    assert code == 0 and out.count("CREATE OR REPLACE VIEW `proj.telemetry_analysts.") == 8
    assert "FROM `proj.telemetry.daily_active_instances`" in out and "telemetry.events`" not in out
    assert cli("analyst-role")[1].strip() == "roles/bigquery.dataViewer"


def test_the_refresh_looks_back_the_deployed_max_age_plus_the_slack_wherever_it_runs():
    """The scheduled query (refresh-script), `python -m tools.aggregates refresh` and the demo take one lookback."""
    assert refresh_lookback({"EVENT_MAX_AGE_DAYS": "90"}) == 90 + aggregates.LOOKBACK_SLACK_DAYS
    default = IngestConfig.setting_for("EVENT_MAX_AGE_DAYS")[1].value({})
    assert refresh_lookback({}) == aggregates.LOOKBACK_DAYS == default + aggregates.LOOKBACK_SLACK_DAYS

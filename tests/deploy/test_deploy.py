"""deploy.sh against a fake gcloud/bq that records every call (no emulator exists for gcloud itself)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from devtools.procs import ROOT

READ_ONLY = {"describe", "show", "list"}


def mutating(call: list[str]) -> bool:
    return not READ_ONLY & set(call) and call[1:3] != ["auth", "list"]


@pytest.fixture
def fake(tmp_path) -> dict:
    """PATH with the stateful fake gcloud and bq first; the environment, recorded calls and the fake's state."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    source = Path(__file__).with_name("fake_gcloud.py").read_text()
    for tool in ("gcloud", "bq"):
        target = bin_dir / tool
        # This interpreter, not `env python3`: a version manager's shim costs ~0.1 s a call, and a deploy makes 90.
        target.write_text(f"#!{sys.executable}\n" + source.split("\n", 1)[1])
        target.chmod(0o755)
    log, state = tmp_path / "calls.jsonl", tmp_path / "state.json"
    log.touch()
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_LOG": str(log), "PYTHON": sys.executable,
           "FAKE_STATE_FILE": str(state), "DEPLOY_RETRY_SECONDS": "0"}
    return {"env": env, "calls": lambda: [json.loads(x) for x in log.read_text().splitlines()],
            "reset": lambda: log.write_text(""), "state": lambda: json.loads(state.read_text())}


def deploy(repo: Path, fake: dict, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(repo / "deploy.sh"), *args], cwd=repo, env={**fake["env"], **env},
                          capture_output=True, text=True, timeout=300)


def has(calls: list, *words: str) -> list:
    return [c for c in calls if all(w in c for w in words)]


def sink_subscription(state: dict) -> str:
    return state["functions"]["telemetry-sink"]["trigger"]["subscription"].rsplit("/", 1)[-1]


def assert_aggregates(state: dict, computed: int) -> None:
    """The aggregate tables, the materialized view (computed that many times) and exactly one schedule."""
    from shared.sink.warehouse import aggregates, refresh

    dataset = "sourcegraph-telemetry-gateway-dev:telemetry"
    for table in aggregates.TABLES:
        assert f"{dataset}.{table.name}" in state["bq"], table.name
    mv = state["bq"][f"{dataset}.daily_active_instances"]
    assert mv["materialized"] and state["computations"][f"{dataset}.daily_active_instances"] == computed
    assert mv["labels"]["definition"] == aggregates.definition_label("sourcegraph-telemetry-gateway-dev.telemetry")
    (schedule,) = state["transfer_configs"].values()
    assert schedule["displayName"] == "telemetry-aggregates-dev"
    assert schedule["schedule"] == "every 3 hours from 00:17 to 21:17"
    assert schedule["params"] == {"query": refresh.refresh_script("sourcegraph-telemetry-gateway-dev.telemetry")}
    assert schedule["serviceAccount"] == f"telemetry-aggregates@{dataset.split(':')[0]}.iam.gserviceaccount.com"
    assert schedule["dataSourceId"] == "scheduled_query"
    assert state["queries"]["dry_run"][-1] == schedule["params"]["query"].rstrip("\n")  # BigQuery checked it first


def test_fresh_deploy_creates_everything(repo, fake):
    out = deploy(repo, fake, "dev")
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    calls, state = fake["calls"](), fake["state"]()
    assert {"iam.googleapis.com", "bigquerystorage.googleapis.com"} <= set(state["services"])
    assert set(state["topics"]) == {"telemetry-events", "telemetry-events-dead-letter"}
    queries = state["queries"]["all"]
    creates = {q.split("`")[1].rsplit(".", 1)[-1]: q for q in queries if q.startswith("CREATE TABLE IF NOT EXISTS")}
    assert set(creates) == {"events", "rejected_events", "requests", "daily_feature_usage", "daily_active_users",
                            "daily_metadata_keys", "instances", "daily_ingestion_health", "aggregate_runs"}
    assert "PARTITION BY `timestamp`" in creates["events"] and "partition_expiration_days = 730" in creates["events"]
    assert "partition_expiration_days = 30" in creates["rejected_events"]
    assert "CLUSTER BY feature, action, instance_id" in creates["events"]
    grant = "GRANT `roles/bigquery.dataEditor` ON SCHEMA `sourcegraph-telemetry-gateway-dev.telemetry`"
    assert any(q.startswith(grant) and "serviceAccount:telemetry-sink@" in q for q in queries)
    (views,) = [q for q in queries  # one script of every view of the sink's dataset
                if q.startswith("CREATE OR REPLACE VIEW `sourcegraph-telemetry-gateway-dev.telemetry.")]
    assert views.count("CREATE OR REPLACE VIEW") == 2 and views.count("DROP VIEW IF EXISTS") == 2
    assert not has(calls, "bq", "add-iam-policy-binding")
    assert len(state["accounts"]) == 5 and "retrying" in out.stdout  # a new account's first binding failed once
    assert any(q.startswith(grant) and "serviceAccount:telemetry-aggregates@" in q for q in queries)
    assert_aggregates(state, computed=1)
    ingest, sink = state["functions"]["telemetry-ingest"]["flags"], state["functions"]["telemetry-sink"]["flags"]
    assert ingest["concurrency"] == "8" and "WORKERS=1@THREADS=8" in ingest["set-env-vars"]
    assert ingest["ingress-settings"] == "all"  # no INGEST_DOMAIN: the function URL serves instances
    assert ingest["build-service-account"].endswith("/serviceAccounts/telemetry-build@"
                                                     "sourcegraph-telemetry-gateway-dev.iam.gserviceaccount.com")
    assert sink["ingress-settings"] == "internal-only"
    # the sink takes SINK_CONCURRENCY requests per instance, served by as many gunicorn threads, on a whole vCPU
    assert sink["concurrency"] == "8" and sink["cpu"] == "1" and "WORKERS=1@THREADS=8" in sink["set-env-vars"]
    assert sink["trigger-service-account"].startswith("telemetry-sink-push@")
    source = Path(ingest["source"])
    assert (source / "main.py").exists() and (source / "shared" / "ingest" / "licenses" / "keys.py").exists()
    assert not (source / "shared" / "sink").exists() and not (source / "tools").exists()
    assert (source / "config" / "trusted-license-keys.pub").exists()
    assert "cody.completion:*" in (source / "config" / "private-metadata-allowlist.txt").read_text()
    assert (source / "config" / "marketing-tracking-instances.txt").exists()
    assert "PRIVATE_METADATA_ALLOWLIST_FILE=config/private-metadata-allowlist.txt" in ingest["set-env-vars"]
    assert "EVENTS_PARTITION_EXPIRATION_DAYS=730" in sink["set-env-vars"]
    assert "PUBSUB_TOPIC" not in sink["set-env-vars"] and "BQ_DATASET" not in ingest["set-env-vars"]
    assert (source / "config" / "managed-services.txt").exists()
    assert ("ID_TOKEN_AUDIENCE=https://us-central1-sourcegraph-telemetry-gateway-dev.cloudfunctions.net/"
            "telemetry-ingest") in ingest["set-env-vars"]
    assert (source / "shared" / "VERSION").read_text().strip() in out.stdout
    subscription = state["subscriptions"][sink_subscription(state)]
    assert subscription["dead-letter-topic"] == "telemetry-events-dead-letter"
    assert subscription["max-delivery-attempts"] == "20"
    assert subscription["min-retry-delay"] == "10s" and subscription["max-retry-delay"] == "600s"
    assert set(state["metrics"]) == {p.stem for p in (repo / "deploy" / "metrics").glob("*.yaml")}  # one a file
    assert len(state["policies"]) == 1 and len(state["dashboards"]) == 1
    (dashboard,) = state["dashboards"].values()
    assert dashboard["displayName"] == "Telemetry gateway (dev)"
    assert len(dashboard["doc"]["mosaicLayout"]["tiles"]) == 8
    assert "ingest URL: https://ingest.example.run.app/v1/events" in out.stdout


def test_analysts_get_views_authorized_on_the_source_dataset_and_a_redeploy_authorizes_nothing_twice(repo, fake,
                                                                                                   tmp_path):
    from shared.sink.warehouse import analysts

    copy = tmp_path / "repo"
    shutil.copytree(repo, copy, symlinks=True, ignore=shutil.ignore_patterns("build"))
    settings = copy / "deploy" / "dev.env"
    settings.write_text(settings.read_text().replace("ANALYSTS_GROUP=\n",
                                                     "ANALYSTS_GROUP=group:analysts@example.com\n"))
    out = deploy(copy, fake, "dev")
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    state, project = fake["state"](), "sourcegraph-telemetry-gateway-dev"
    assert f"{project}:telemetry_analysts" in state["bq"]
    (views,) = [q for q in state["queries"]["all"] if f"VIEW `{project}.telemetry_analysts." in q]
    assert views.count("CREATE OR REPLACE VIEW") == len(analysts.OBJECTS) and "telemetry.events`" not in views
    entry = analysts.authorized_dataset_entry(f"{project}.telemetry_analysts")
    assert state["bq"][f"{project}:telemetry"]["access"] == [entry]
    grants = [q for q in state["queries"]["all"] if q.startswith("GRANT") and "group:analysts@" in q]
    assert grants == [f'GRANT `roles/bigquery.dataViewer` ON SCHEMA `{project}.telemetry_analysts` '
                      f'TO "group:analysts@example.com"']
    out = deploy(copy, fake, "dev")
    assert out.returncode == 0 and f"authorized: {project}.telemetry_analysts's views" in out.stdout
    assert fake["state"]()["access_updates"] == {f"{project}:telemetry": 1}


def test_redeploy_keeps_the_trigger_and_updates_in_place(repo, fake):
    assert deploy(repo, fake, "dev").returncode == 0
    first = fake["state"]()
    fake["reset"]()
    out = deploy(repo, fake, "dev")
    assert out.returncode == 0, out.stderr[-2000:]
    calls, state = fake["calls"](), fake["state"]()
    assert sink_subscription(state) == sink_subscription(first)  # same push subscription, backlog intact
    assert sum(1 for s in state["subscriptions"].values() if s.get("eventarc")) == 1
    assert "trigger is unchanged" in out.stdout
    (sink_deploy,) = has(calls, "functions", "deploy", "telemetry-sink")
    assert not [a for a in sink_deploy if a.startswith(("--trigger-topic", "--retry"))]
    assert state["subscriptions"][sink_subscription(state)]["dead-letter-topic"] == "telemetry-events-dead-letter"
    assert not [c for c in calls if "create" in c or "mk" in c]  # nothing created twice
    (policy,) = state["policies"].values()
    (dashboard,) = state["dashboards"].values()
    assert policy["updates"] == 1 and dashboard["updates"] == 1
    assert not [q for q in state["queries"]["all"] if q.startswith("ALTER TABLE")]  # nothing new: no ALTER
    assert all(m == 2 for m in state["metrics"].values())
    assert state["functions"]["telemetry-sink"]["deploys"] == 2
    assert_aggregates(state, computed=1)  # the unchanged materialized view is not recomputed
    assert [c["updates"] for c in state["transfer_configs"].values()] == [1]  # the schedule updated, not doubled
    assert deploy(repo, fake, "dev").returncode == 0  # a third time: the dashboard's new etag is fetched again
    assert [d["updates"] for d in fake["state"]()["dashboards"].values()] == [2]


def test_a_changed_materialized_view_is_recomputed_once(repo, fake):
    assert deploy(repo, fake, "dev").returncode == 0
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    source = repo / "shared" / "sink" / "warehouse" / "aggregates.py"
    original = source.read_text()
    subprocess.run([*git, "checkout", "-qb", "mv-change"], cwd=repo, check=True)
    source.write_text(original.replace("GROUP BY day_start, instance_id", "GROUP BY instance_id, day_start"))
    subprocess.run([*git, "commit", "-qam", "reorder"], cwd=repo, check=True)
    subprocess.run([*git, "checkout", "-q", "-"], cwd=repo, check=True)
    out = deploy(repo, fake, "dev", "--version", "mv-change")
    assert out.returncode == 0, out.stderr[-2000:]
    mv = "sourcegraph-telemetry-gateway-dev:telemetry.daily_active_instances"
    assert fake["state"]()["computations"][mv] == 2 and "DROP MATERIALIZED VIEW IF EXISTS" in out.stdout
    assert deploy(repo, fake, "dev", "--version", "mv-change").returncode == 0
    assert fake["state"]()["computations"][mv] == 2  # the same definition again: left alone


def test_a_release_from_before_the_warehouse_cli_is_refused_clearly(repo, fake):
    """Such a release is deployed with its own deploy.sh: this one needs the staged tools/warehouse.py."""
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "checkout", "-qb", "before-warehouse"], cwd=repo, check=True)
    subprocess.run([*git, "rm", "-q", "tools/warehouse.py"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qam", "an older release"], cwd=repo, check=True)
    subprocess.run([*git, "checkout", "-q", "-"], cwd=repo, check=True)
    out = deploy(repo, fake, "dev", "--version", "before-warehouse")
    assert out.returncode != 0 and "predates tools/warehouse.py" in out.stderr
    assert not [c for c in fake["calls"]() if mutating(c)]


def test_a_missing_table_is_created_and_any_other_show_failure_stops(repo, fake):
    """bq answers "Not found" on stdout with exit 2: only that means missing."""
    out = deploy(repo, fake, "dev", FAKE_FAIL="show sourcegraph-telemetry-gateway-dev:telemetry.events")
    assert out.returncode != 0 and "bq show sourcegraph-telemetry-gateway-dev:telemetry.events failed" in out.stderr
    assert "fake failure of" in out.stderr  # bq's own words, read from its stdout


def test_a_failing_show_of_the_materialized_view_stops_instead_of_recomputing_it(repo, fake):
    assert deploy(repo, fake, "dev").returncode == 0
    out = deploy(repo, fake, "dev", FAKE_FAIL="show sourcegraph-telemetry-gateway-dev:telemetry.daily_active")
    assert out.returncode != 0 and "bq show sourcegraph-telemetry-gateway-dev:telemetry.daily_active" in out.stderr
    assert fake["state"]()["computations"]["sourcegraph-telemetry-gateway-dev:telemetry.daily_active_instances"] == 1


def test_a_schedule_update_without_update_credentials_would_keep_the_old_account(repo, fake):
    """The fake models `bq update --transfer_config`: the service account changes only with --update_credentials."""
    assert deploy(repo, fake, "dev").returncode == 0
    state = fake["state"]()
    (name,) = state["transfer_configs"]
    state["transfer_configs"][name]["serviceAccount"] = "someone@example.com"
    Path(fake["env"]["FAKE_STATE_FILE"]).write_text(json.dumps(state))
    assert deploy(repo, fake, "dev").returncode == 0
    assert fake["state"]()["transfer_configs"][name]["serviceAccount"].startswith("telemetry-aggregates@")


def test_a_changed_trigger_is_refused_unless_allowed(repo, fake):
    assert deploy(repo, fake, "dev").returncode == 0
    state = fake["state"]()
    state["functions"]["telemetry-sink"]["trigger"]["identity"] = "someone-else@example.com"
    Path(fake["env"]["FAKE_STATE_FILE"]).write_text(json.dumps(state))
    before = sink_subscription(state)
    out = deploy(repo, fake, "dev")
    assert out.returncode != 0 and "drops its backlog" in out.stderr
    assert sink_subscription(fake["state"]()) == before
    out = deploy(repo, fake, "dev", "--allow-trigger-change")
    assert out.returncode == 0 and "WARNING: the sink's trigger changes" in out.stdout
    assert sink_subscription(fake["state"]()) != before


def test_prod_without_a_notification_channel_warns(repo, fake):
    out = deploy(repo, fake, "prod", "--plan")
    assert out.returncode == 0 and "NOTIFICATION_CHANNEL is empty" in out.stderr


def test_plan_runs_nothing_and_prints_everything(repo, fake):
    out = deploy(repo, fake, "dev", "--plan")
    assert out.returncode == 0, out.stderr
    assert fake["calls"]() == []
    for expected in ("gcloud pubsub topics create telemetry-events", "bq --project_id=", "mk --dataset",
                     "gcloud functions deploy telemetry-ingest", "gcloud functions deploy telemetry-sink",
                     "--dead-letter-topic=telemetry-events-dead-letter", "gcloud logging metrics create",
                     "CREATE OR REPLACE VIEW", "CREATE MATERIALIZED VIEW",
                     "CREATE TABLE IF NOT EXISTS", "mk --transfer_config"):
        assert expected in out.stdout, expected


def with_settings(repo: Path, tmp_path: Path, **values: str) -> Path:
    """A copy of the repository whose dev.env (uncommitted: deploy.sh reads the work tree's) has these values."""
    copy = tmp_path / "repo"
    shutil.copytree(repo, copy, symlinks=True, ignore=shutil.ignore_patterns("build"))
    settings = copy / "deploy" / "dev.env"
    text = settings.read_text()
    for name, value in values.items():
        text = "\n".join(f"{name}={value}" if line.startswith(f"{name}=") else line for line in text.split("\n"))
    settings.write_text(text)
    return copy


def test_plan_with_a_domain_shows_the_whole_edge_and_closing_checks_the_certificate(repo, fake, tmp_path):
    copy = with_settings(repo, tmp_path, INGEST_DOMAIN="telemetry.example.com", INGEST_FUNCTION_URL="closed")
    out = deploy(copy, fake, "dev", "--plan")
    assert out.returncode == 0, out.stderr
    assert fake["calls"]() == []
    assert out.stdout.count("gcloud compute addresses create telemetry-ingest-ip") == 1  # before ingest, once
    assert out.stdout.index("EDGE_ADDRESS: the new address's IP") < out.stdout.index("gcloud functions deploy "
                                                                                        "telemetry-ingest")
    for expected in ("gcloud compute addresses create telemetry-ingest-ip",
                     "gcloud compute security-policies create telemetry-ingest-armor --file-name=",
                     "gcloud compute network-endpoint-groups create telemetry-ingest-neg",
                     "--network-endpoint-type=serverless --cloud-run-service=telemetry-ingest",
                     "update telemetry-ingest-backend --global --security-policy=telemetry-ingest-armor",
                     "--domains=telemetry.example.com", "gcloud compute target-https-proxies create",
                     "--target-https-proxy=telemetry-ingest-https-proxy --ports=443",
                     "gcloud compute url-maps import telemetry-ingest-http-redirect",
                     "--target-http-proxy=telemetry-ingest-http-proxy --ports=80",
                     "--ingress-settings=internal-and-gclb", "? certificate telemetry-ingest-cert",
                     "DNS: an A record telemetry.example.com -> ADDRESS", "ingest URL: https://telemetry.example.com"):
        assert expected in out.stdout, expected
    policy = json.loads((copy / "build" / "dev" / "telemetry-ingest-armor.json").read_text())  # what it creates from
    assert [r["priority"] for r in policy["rules"]] == [1000, 2000, 3000, 3500, 4000, 2147483647]
    assert policy["rules"][1]["rateLimitOptions"]["enforceOnKeyName"] == "Authorization"
    opened = deploy(with_settings(repo, tmp_path / "open", INGEST_DOMAIN="telemetry.example.com"), fake, "dev",
                    "--plan")  # a domain alone keeps the function URL open: instances move before it closes
    assert opened.returncode == 0 and "--ingress-settings=all" in opened.stdout


@pytest.mark.parametrize(("values", "message"), [
    ({"INGEST_FUNCTION_URL": "maybe"}, "INGEST_FUNCTION_URL must be open or closed"),
    ({"EDGE_IP_REQUESTS_PER_MINUTE": "0"}, "EDGE_IP_REQUESTS_PER_MINUTE must be from 1 to 10000"),
    ({"INGEST_FUNCTION_URL": "closed", "INGEST_DOMAIN": ""}, "INGEST_FUNCTION_URL=closed needs INGEST_DOMAIN"),
])
def test_a_bad_edge_setting_stops_before_anything_is_deployed(repo, fake, tmp_path, values, message):
    out = deploy(with_settings(repo, tmp_path, **{"INGEST_DOMAIN": "telemetry.example.com", **values}), fake, "dev")
    assert out.returncode != 0 and message in out.stderr, out.stderr
    assert not [c for c in fake["calls"]() if mutating(c)]


def test_plan_needs_no_gcloud_at_all(repo, fake, tmp_path):
    env = {**fake["env"], "PATH": "/usr/local/bin:/usr/bin:/bin"}
    out = subprocess.run(["bash", str(repo / "deploy.sh"), "prod", "--plan"], cwd=repo, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "sourcegraph-telemetry-gateway-prod" in out.stdout


def test_failing_step_stops_with_message(repo, fake):
    out = deploy(repo, fake, "dev", FAKE_FAIL="functions deploy telemetry-sink")
    assert out.returncode != 0
    assert "fake failure of: gcloud functions deploy telemetry-sink" in out.stderr
    assert not has(fake["calls"](), "subscriptions", "update")


def test_prod_refuses_dirty_tree(repo, fake):
    readme = repo / "README.md"
    original = readme.read_text()
    readme.write_text(original + "\nuncommitted\n")
    try:
        out = deploy(repo, fake, "prod")
    finally:
        readme.write_text(original)
    assert out.returncode != 0 and "uncommitted changes" in out.stderr
    assert fake["calls"]() == []


@pytest.mark.parametrize(("args", "env", "message"), [
    (("staging",), {}, "unknown argument 'staging'"),
    ((), {}, "name the environment"),
    (("dev", "--version", "no-such-ref"), {}, "unknown git ref"),
    (("dev",), {"FAKE_LOGGED_OUT": "1"}, "not logged in"),
])
def test_clear_early_errors(repo, fake, args, env, message):
    out = deploy(repo, fake, *args, **env)
    assert out.returncode != 0 and message in out.stderr
    assert not [c for c in fake["calls"]() if mutating(c)]


def test_missing_setting(repo, fake):
    settings = repo / "deploy" / "dev.env"
    original = settings.read_text()
    settings.write_text(original.replace("TOPIC=telemetry-events\n", ""))
    try:
        out = deploy(repo, fake, "dev", "--plan")
    finally:
        settings.write_text(original)
    assert out.returncode != 0 and "setting TOPIC is missing" in out.stderr


def test_verify_runs_contract_suite_against_the_url(repo, fake, dev_server, keys):
    out = deploy(repo, fake, "dev", "--verify", FAKE_URL=dev_server.url,
                 DEV_VERIFY_LICENSE_KEY=keys["dev"].issue(tags=("dev",)))
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "passed" in out.stdout and "skipped" not in out.stdout


def test_verify_fails_deploy_when_contract_fails(repo, fake, dev_server):
    out = deploy(repo, fake, "dev", "--verify", FAKE_URL=dev_server.url,
                 DEV_VERIFY_LICENSE_KEY="not-a-valid-license")
    assert out.returncode != 0 and "contract tests failed" in out.stderr


def test_shellcheck_clean():
    if shutil.which("shellcheck") is None:
        if os.environ.get("CI"):
            pytest.fail("shellcheck is not installed (.ci/run installs it from Debian's packages)")
        pytest.skip("shellcheck not installed")
    out = subprocess.run(["shellcheck", "-x", str(ROOT / "deploy.sh"), str(ROOT / "deploy" / "lib.sh"),
                          str(ROOT / ".ci" / "run")], cwd=ROOT,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout


@pytest.mark.parametrize(("said", "missing"), [
    ("BigQuery error in show operation: Not found: Dataset p:telemetry", True),
    ("ERROR: (gcloud.pubsub.topics.describe) NOT_FOUND: Resource not found (resource=t).", True),
    ("BigQuery error in show operation: Not found: Project tg-typo", False),
    ("ERROR: (gcloud.run.services.describe) PERMISSION_DENIED: denied", False),
    ("BigQuery error in show operation: Not found:\nProject tg-typo", False),  # bq wraps at 80 columns
    # Compute on a brand-new project (midl-dev/tezos-on-gke#7): the project, not the resource, is "not found".
    ("ERROR: (gcloud.compute.addresses.describe) Could not fetch resource:\n - Project 123 is not found and cannot "
     "be used for API calls. If it is recently created, enable Compute Engine API by visiting …", False),
])
def test_answer_treats_only_a_missing_resource_as_missing(tmp_path, said, missing):
    """deploy/lib.sh's answer(): a missing resource returns 1; a missing project (bq's "Not found: Project") or any
    other failure stops the deploy, quoting the tool."""
    script = (f"source {ROOT / 'deploy' / 'lib.sh'}; BUILD={tmp_path}; tool() {{ echo \"$1\"; return 2; }}; "
              "answer tool \"$SAID\"; echo \"returned $?\"")
    out = subprocess.run(["bash", "-c", script], env={"SAID": said, "PATH": "/usr/bin:/bin",
                                                      "DEPLOY_RETRY_SECONDS": "0"}, capture_output=True,
                         text=True, timeout=30, check=False)
    if missing:
        assert (out.returncode, out.stdout.strip()) == (0, "returned 1"), out
    else:
        assert out.returncode == 1 and "returned" not in out.stdout and said in out.stderr, out


@pytest.mark.parametrize(("said", "waited"), [
    # bq's own wrapping of a failed GRANT job (the real bq, through the stand-in): on a space, and after hyphens.
    ("BigQuery error in query operation: Error processing job 'tg-\ndev-1:bqjob_1': Service account\n"
     "telemetry-sink@tg-dev-1.iam.gserviceaccount.com does not exist", "a new service account or service agent"),
    ("Service account telemetry-\nsink@tg-dev-1.iam.gserviceaccount.com does not exist",
     "a new service account or service agent"),
    ("ERROR: (gcloud.functions.deploy) ResponseError: status=[400], code=[Bad Request], message=[Validation failed "
     "for trigger projects/p/locations/r/triggers/t-1: Invalid resource state for \"\": Permission denied while "
     "using the Eventarc Service Agent.", "Eventarc's service agent"),
    ("ERROR: (gcloud.functions.deploy) PERMISSION_DENIED: caller lacks permission", None),
])
def test_waiting_for_reads_each_propagation_text_however_the_tool_wrapped_it(tmp_path, said, waited):
    """deploy/lib.sh's waiting_for(): which propagation a failure shows, or status 1 for any other failure."""
    (tmp_path / "out").write_text(said)
    script = f"source {ROOT / 'deploy' / 'lib.sh'}; waiting_for {tmp_path / 'out'}; echo \"status $?\""
    out = subprocess.run(["bash", "-c", script], env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
                         timeout=30, check=True)
    assert out.stdout.splitlines() == ([waited, "status 0"] if waited else ["status 1"])


def test_answer_waits_for_a_service_enabled_moments_ago_and_then_reads_the_answer(tmp_path):
    """A describe right after `services enable compute.googleapis.com` may fail with the project "not found and
    cannot be used for API calls" (or SERVICE_DISABLED's "If you enabled this API recently"): answer() waits, as
    propagating() does, and then reads what the describe says."""
    script = (f"source {ROOT / 'deploy' / 'lib.sh'}; BUILD={tmp_path}; "  # calls counted in a file (a subshell runs it)
              "tool() { echo x >>\"$BUILD/calls\"; n=$(wc -l <\"$BUILD/calls\"); "
              "if [ $n -lt 3 ]; then echo 'ERROR: Could not fetch resource: - Project 1 is "
              "not found and cannot be used for API calls. If it is recently created, enable Compute Engine API' >&2;"
              " return 1; fi; echo '{\"address\": \"192.0.2.1\"}'; }; answer tool; echo \"returned $? after "
              "$(wc -l <\"$BUILD/calls\"): $ANSWER\"")
    out = subprocess.run(["bash", "-c", script], env={"PATH": "/usr/bin:/bin", "DEPLOY_RETRY_SECONDS": "0"},
                         capture_output=True, text=True, timeout=30, check=True)
    assert out.stdout.count("waiting for a service enabled moments ago to propagate") == 2
    assert out.stdout.splitlines()[-1] == 'returned 0 after 3: {"address": "192.0.2.1"}'

"""Acceptance tests: `deploy.sh dev` through the real gcloud and bq, against the stand-in and the emulators.

They share one stand-in and the emulators (tests.deploy.standin.fixtures). A project lives through module
fixtures, one deploy each (new, redeployed, a new column, a trigger change refused then allowed; with a domain:
first, then updated), so a test run alone deploys what it needs and passes in any order. Select them with
`-m deploy`.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.deploy.standin import fixtures, sql
from tests.deploy.standin.fixtures import Stack
from tools.settings import settings_file

standin_stack = fixtures.standin_stack  # the session's stand-in and emulators
cli_environ = fixtures.cli_environ

pytestmark = pytest.mark.deploy
PROJECT = "sourcegraph-telemetry-gateway-dev"
GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
RETENTION_7D = "604800s"

def private_repo(repo: Path, dest: Path) -> Path:
    """A private copy of the committed repository whose dev.env names a project of its own."""
    shutil.copytree(repo, dest, symlinks=True, ignore=shutil.ignore_patterns("build"))
    settings = dest / "deploy" / "dev.env"
    settings.write_text(settings.read_text().replace(f"PROJECT={PROJECT}\n", f"PROJECT={project_of(dest)}\n"))
    subprocess.run([*GIT, "commit", "-qam", "this test's project"], cwd=dest, check=True)  # on every branch made later
    return dest


@pytest.fixture
def real_repo(repo: Path, tmp_path: Path) -> Path:
    """A private copy of the committed repository whose dev.env names a project of this test's own."""
    return private_repo(repo, tmp_path / "repo")


def set_settings(repo: Path, **values: str) -> None:
    """Change settings of the (uncommitted) dev.env: deploy.sh reads the work tree's settings file."""
    settings = repo / "deploy" / "dev.env"
    text = settings.read_text()
    for name, value in values.items():
        text, found = re.subn(rf"^{name}=.*$", f"{name}={value}", text, flags=re.M)
        assert found == 1, name
    settings.write_text(text)


def project_of(repo: Path) -> str:
    """The test's project id (6-30 characters, a letter first)."""
    return "tg-dev-" + hashlib.sha256(str(repo).encode()).hexdigest()[:10]


def deploy(repo: Path, environ: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """`bash deploy.sh dev ARGS` with the real CLIs (bounded)."""
    return subprocess.run(["bash", str(repo / "deploy.sh"), "dev", *args], cwd=repo, env=environ,
                          capture_output=True, text=True, timeout=280)


def output(out: subprocess.CompletedProcess) -> str:
    """The tail of a run's output, for assertion messages."""
    return f"exit {out.returncode}\nSTDOUT:\n{out.stdout[-3000:]}\nSTDERR:\n{out.stderr[-2000:]}"


def subscription(stack: Stack, path: str) -> dict | None:
    """A subscription as Pub/Sub answers it (through the stand-in, which keeps what the emulator cannot)."""
    try:
        with urllib.request.urlopen(f"{stack.standin.url}/pubsub/v1/{path}", timeout=10) as answer:
            return json.load(answer)
    except urllib.error.HTTPError:
        return None


def project_number(stack: Stack, project: str) -> str:
    """The project's number, as Resource Manager answers (alert policies and schedules are named with it)."""
    with urllib.request.urlopen(f"{stack.standin.url}/cloudresourcemanager/v1/projects/{project}", timeout=10) as got:
        return json.load(got)["projectNumber"]


def owned(resources: dict, stack: Stack, project: str) -> list[dict]:
    """The resources (by name) of this project."""
    number = project_number(stack, project)
    return [r for name, r in resources.items() if name.startswith((f"projects/{project}/", f"projects/{number}/"))]


def sink_subscription(state: dict, project: str) -> str:
    """The push subscription of the project's sink's Eventarc trigger."""
    (trigger,) = [t for name, t in state["eventarc"]["triggers"].items() if t["destination"]["cloudRun"]["service"]
                  == "telemetry-sink" and name.startswith(f"projects/{project}/")]
    return trigger["transport"]["pubsub"]["subscription"]


def statements(requests: list[dict], project: str) -> list[sql.Statement]:
    """Every SQL statement of the recorded (non-dry-run) query jobs."""
    found = []
    for request in requests:
        config = (request.get("body") or {}).get("configuration", {}) if request["method"] == "POST" else {}
        if "query" in config.get("query", {}) and not config.get("dryRun"):
            found += [sql.classify(s, project) for s in sql.split_statements(config["query"]["query"])]
    return found


def dev_setting(name: str) -> str:
    """A value of deploy/dev.env (the settings deploy.sh reads)."""
    return settings_file("dev")[name]


def assert_healthy_sink_subscription(stack: Stack, state: dict, project: str) -> dict:
    """The sink's push subscription keeps 7 days, never expires, and dead-letters after the set attempts."""
    sub = subscription(stack, sink_subscription(state, project))
    assert sub is not None
    assert sub["deadLetterPolicy"]["deadLetterTopic"].endswith("/topics/telemetry-events-dead-letter")
    assert sub["deadLetterPolicy"]["maxDeliveryAttempts"] == int(dev_setting("MAX_DELIVERY_ATTEMPTS"))
    assert sub.get("messageRetentionDuration") == RETENTION_7D, sub
    assert sub.get("expirationPolicy") == {}, sub  # {} (no ttl): never expires
    return sub


def test_plan_reaches_no_server(real_repo, standin_stack, cli_environ):
    standin_stack.reset_requests()
    out = deploy(real_repo, cli_environ, "--plan")
    assert out.returncode == 0, output(out)
    assert "gcloud functions deploy telemetry-sink" in out.stdout
    assert standin_stack.requests() == []


def fresh_deploy(repo: Path, stack: Stack, environ: dict[str, str]) -> tuple[dict, str]:
    """Deploy a new project (no domain); check everything it must create, and that nothing of the edge is; the
    stand-in's state and the deploy's output."""
    project = project_of(repo)
    out = deploy(repo, environ)
    assert out.returncode == 0, output(out)
    state = stack.state()
    accounts = {a for a in state["identities"]["accounts"] if a.endswith(f"@{project}.iam.gserviceaccount.com")}
    assert len(accounts) == 5
    functions = state["cloudfunctions"]["functions"]
    sink = functions[f"projects/{project}/locations/us-central1/functions/telemetry-sink"]
    assert sink["eventTrigger"]["retryPolicy"] == "RETRY_POLICY_RETRY"
    assert sink["eventTrigger"]["serviceAccountEmail"] == f"telemetry-sink-push@{project}.iam.gserviceaccount.com"
    assert sink["serviceConfig"]["ingressSettings"] == "ALLOW_INTERNAL_ONLY"
    assert sink["serviceConfig"]["environmentVariables"]["BQ_DATASET"] == "telemetry"
    assert "PUBSUB_TOPIC" not in sink["serviceConfig"]["environmentVariables"]
    ingest = functions[f"projects/{project}/locations/us-central1/functions/telemetry-ingest"]
    env = ingest["serviceConfig"]["environmentVariables"]
    assert env["TRUSTED_LICENSE_KEYS_FILE"] == "config/trusted-license-keys.pub" and env["WORKERS"] == "1"
    assert env["PRIVATE_METADATA_ALLOWLIST_FILE"] == "config/private-metadata-allowlist.txt"
    assert "BQ_DATASET" not in env and "BIGQUERY_EMULATOR_HOST" not in env
    assert ingest["buildConfig"]["serviceAccount"].endswith(f"/telemetry-build@{project}.iam.gserviceaccount.com")
    assert len(owned(state["monitoring"]["policies"], stack, project)) == 1
    assert len(owned(state["bigquerydatatransfer"]["configs"], stack, project)) == 1
    (board,) = owned(state["monitoring"]["dashboards"], stack, project)
    lag = [t for t in board["mosaicLayout"]["tiles"] if "oldest_unacked" in json.dumps(t)]
    sink_id = sink_subscription(state, project).rsplit("/", 1)[-1]
    assert len(lag) == 1 and f'subscription_id=\\"{sink_id}\\"' in json.dumps(lag[0])  # the sink's, not the DLQ's
    grants = state["bigquery"]["grants"][f"{project}.telemetry"]
    assert {g["userByEmail"].split("@")[0] for g in grants} == {"telemetry-sink", "telemetry-aggregates"}
    assert state["bigquery"]["computations"][f"{project}.telemetry.daily_active_instances"] == 1
    assert f"ingest URL: {ingest['serviceConfig']['uri']}/v1/events" in out.stdout
    assert_healthy_sink_subscription(stack=stack, state=state, project=project)
    # dev.env sets no INGEST_DOMAIN: nothing of the edge exists, and the function URL serves as before.
    assert edge_of(state, project) == {} and ingest["serviceConfig"]["ingressSettings"] == "ALLOW_ALL"
    assert "INGEST_DOMAIN is empty: no load balancer" in out.stdout
    assert not [t for t in board["mosaicLayout"]["tiles"] if "Cloud Armor" in t["widget"]["title"]]
    return state, out.stdout + out.stderr


# The life of one project, each deploy a fixture of the one before: a test item holds one deploy's time when the
# module runs in order; run alone, it deploys the chain up to it (hence the longer timeout).
CHAIN_TIMEOUT = pytest.mark.timeout(1500)


@dataclass
class Life:
    """A project's repository, the state after its first deploy; the last deploy's result, the stand-in's state
    and requests right after it (later deploys change them)."""

    repo: Path
    first: dict
    out: subprocess.CompletedProcess
    state: dict
    requests: list[dict]


def redeployed(life: Life, stack: Stack, environ: dict[str, str], *args: str) -> Life:
    stack.reset_requests()
    out = deploy(life.repo, environ, *args)
    return Life(life.repo, life.first, out, stack.state(), stack.requests())


@pytest.fixture(scope="module")
def new_project(repo: Path, tmp_path_factory: pytest.TempPathFactory, standin_stack: Stack,
                cli_environ: dict[str, str]) -> Life:
    """A brand-new project (no domain: only Google's default services on, no service agents yet) deployed once and
    checked by fresh_deploy. Its accounts, agents and grants propagate: the build account's first three builds fail
    with each of the documented texts in turn, a new agent's first use fails (the stand-in's defaults), each
    service refuses a new account's first binding (Pub/Sub, Resource Manager, BigQuery's GRANT), and deploy.sh waits
    for each (here 2 s x the attempt between tries)."""
    dest = private_repo(repo, tmp_path_factory.mktemp("new") / "repo")
    with standin_stack.behaviour(build_iam_failing_builds=3, new_account_refusals_per_service=1):
        state, said = fresh_deploy(dest, standin_stack, {**cli_environ, "BUILD_RETRY_SECONDS": "2"})
    return Life(dest, state, subprocess.CompletedProcess([], 0, said, ""), state, [])


@pytest.fixture(scope="module")
def unchanged(new_project: Life, standin_stack: Stack, cli_environ: dict[str, str]) -> Life:
    """The same commit deployed again; its sink subscription checked while it is the live one."""
    life = redeployed(new_project, standin_stack, cli_environ)
    assert life.out.returncode == 0, output(life.out)
    assert_healthy_sink_subscription(standin_stack, life.state, project_of(life.repo))
    return life


@pytest.fixture(scope="module")
def new_column(unchanged: Life, standin_stack: Stack, cli_environ: dict[str, str]) -> Life:
    """A release whose `events` has one more column (its last), deployed with --version."""
    repo = unchanged.repo
    tables = repo / "shared" / "sink" / "warehouse" / "tables.py"
    original = tables.read_text()
    # The last column of `events` only (its tuple ends with the caller columns it shares with rejected_events).
    line_end = original.index("        *_CALLER,\n", original.index("EVENTS = TableDef(")) + len("        *_CALLER,\n")
    subprocess.run([*GIT, "checkout", "-qb", "new-column"], cwd=repo, check=True)
    tables.write_text(original[:line_end] + '        Column("standin_probe", STRING, "A column added by a test."),\n'
                      + original[line_end:])
    # The same release changes the dead-letter alert's text and a metric's description and filter.
    alert = repo / "deploy" / "alert-dead-letter.json"
    content = '"documentation": {"content": "'
    alert.write_text(alert.read_text().replace(content, content + PROBE))
    metric = repo / "deploy" / "metrics" / "telemetry_publish_failures.yaml"
    metric.write_text(metric.read_text().replace("description: ", f"description: {PROBE}", 1)
                      .replace('"pubsub_unavailable"', '"pubsub_unavailable" AND severity>=DEFAULT'))
    subprocess.run([*GIT, "commit", "-qam", "a new column, alert text, metric and schedule"], cwd=repo, check=True)
    subprocess.run([*GIT, "checkout", "-q", "-"], cwd=repo, check=True)
    set_settings(repo, AGGREGATES_SCHEDULE=f'"{NEW_SCHEDULE}"')  # a setting: the work tree's dev.env
    return redeployed(unchanged, standin_stack, cli_environ, "--version", "new-column")


PROBE = "Changed by a test - "
NEW_SCHEDULE = "every 6 hours from 01:17 to 19:17"


def change_push_account(repo: Path) -> None:
    """Point the sink's push identity at another account in dev.env (the trigger then changes)."""
    settings = repo / "deploy" / "dev.env"
    text = settings.read_text()
    settings.write_text(text.replace("PUSH_SA=telemetry-sink-push\n", "PUSH_SA=telemetry-sink-pusher\n"))


@pytest.fixture(scope="module")
def trigger_refused(new_column: Life, standin_stack: Stack, cli_environ: dict[str, str]) -> Life:
    """The sink's push account changed in dev.env, deployed without --allow-trigger-change."""
    change_push_account(new_column.repo)
    return redeployed(new_column, standin_stack, cli_environ)


@pytest.fixture(scope="module")
def trigger_allowed(trigger_refused: Life, standin_stack: Stack, cli_environ: dict[str, str]) -> Life:
    """The same, deployed with --allow-trigger-change; its new sink subscription checked while it is live."""
    life = redeployed(trigger_refused, standin_stack, cli_environ, "--allow-trigger-change")
    assert life.out.returncode == 0, output(life.out)
    assert_healthy_sink_subscription(standin_stack, life.state, project_of(life.repo))
    old = sink_subscription(life.first, project_of(life.repo))
    assert subscription(standin_stack, old) is None  # recreated: the old backlog is gone
    return life


def test_a_new_project_waits_for_each_propagating_account_agent_and_grant(new_project):
    """Each documented propagation text was answered, and deploy.sh said what it waited for each time."""
    said = new_project.out.stdout + new_project.out.stderr
    for text, waited in (
            ("missing permission on the build service account", "the build account's grants"),
            ("does not have permission to write logs to Cloud Logging", "the build account's Logs Writer grant"),
            ("Access to bucket gcf-v2-sources-", "the build account's access to the function's source bucket"),
            ("Permission denied while using the Eventarc Service Agent", "Eventarc's service agent"),
            ("does not exist.", "a new service account or service agent")):
        assert text in said, text
        assert f"waiting for {waited} to propagate: retrying in" in said, waited
    assert "still waiting" not in said
    # BigQuery refused each new account's first GRANT (a failed query job, as bq prints it), and deploy.sh waited.
    unwrapped = said.replace("-\n", "-").replace("\n", " ")  # bq wraps its messages at 80 columns
    for account in ("telemetry-sink", "telemetry-aggregates"):
        refused = (r"(?:BigQuery error in query operation|Error in query string): Error processing job '[^']+': "
                   rf"Service account {account}@\S+ does not exist")  # bq's form depends on the job's reason
        assert re.search(refused, unwrapped), account


def test_a_new_project_enables_every_api_it_calls_and_no_more(new_project, standin_stack):
    """Only the default services were on; the deploy enabled what it uses (Compute only with a domain)."""
    enabled = new_project.first["identities"]["enabled"][project_of(new_project.repo)]
    assert "cloudresourcemanager.googleapis.com" in enabled and "eventarc.googleapis.com" in enabled
    assert "compute.googleapis.com" not in enabled  # no INGEST_DOMAIN


@CHAIN_TIMEOUT
def test_a_new_project_redeploys_unchanged(unchanged, standin_stack):
    out, project, state = unchanged.out, project_of(unchanged.repo), unchanged.state
    assert "trigger is unchanged" in out.stdout
    assert sink_subscription(state, project) == sink_subscription(unchanged.first, project)  # backlog kept
    assert [s.text for s in statements(unchanged.requests, project) if s.kind == "ALTER_TABLE"] == []
    assert len(owned(state["monitoring"]["policies"], standin_stack, project)) == 1
    assert len(owned(state["monitoring"]["dashboards"], standin_stack, project)) == 1
    assert len(owned(state["bigquerydatatransfer"]["configs"], standin_stack, project)) == 1
    assert state["bigquery"]["computations"][f"{project}.telemetry.daily_active_instances"] == 1
    changes = [f"{r['method']} {r['api']} {r['path']}" for r in unchanged.requests if mutating(r)]
    assert [c for c in changes if not any(re.fullmatch(pattern, c) for pattern, _ in UNCONDITIONAL)] == []


# What an unchanged redeploy may still send, each an update Google documents as unconditional (the same request
# sent again leaves the resource as it was, or is how the tool always applies a file), with its source.
UNCONDITIONAL = (
    (r"POST serviceusage .*:batchEnable", "services.batchEnable: enabling an enabled service succeeds (Service Usage)"),
    (r"POST (iam|pubsub|cloudresourcemanager|cloudfunctions|run|bigquery) .*:setIamPolicy",
     "add-iam-policy-binding always reads then sets the policy; setIamPolicy replaces it with the same bindings"),
    (r"PATCH cloudfunctions .*/functions/telemetry-(ingest|sink)", "functions deploy always rebuilds"),
    (r"POST cloudfunctions .*/functions:generateUploadUrl", "functions deploy uploads the source every time"),
    (r"PUT upload .*", "the source archive, to the signed upload URL"),
    (r"PATCH pubsub .*/subscriptions/.*", "subscriptions.patch of the fields deploy.sh owns (Pub/Sub)"),
    (r"PUT logging .*/metrics/.*", "logging metrics update is projects.metrics.update, a full replace"),
    (r"PATCH monitoring .*/(alertPolicies|dashboards)/.*", "monitoring updates send the whole file"),
    (r"PATCH bigquerydatatransfer .*/transferConfigs/.*", "bq update --transfer_config: transferConfigs.patch"),
    (r"POST bigquery .*/jobs", "query jobs: CREATE … IF NOT EXISTS and CREATE OR REPLACE VIEW, idempotent DDL"),
)


# POST methods that read (IAM policies, credentials) or poll an operation.
READING_POSTS = re.compile(r"(:getIamPolicy|:testIamPermissions|:checkValidCreds|:wait|/operations/[^/]+)$")


def mutating(request: dict) -> bool:
    """A request that may change something (not a read, nor the polling of an operation)."""
    return request["method"] not in ("GET", "HEAD") and not READING_POSTS.search(request["path"])


@CHAIN_TIMEOUT
def test_a_new_column_is_added_by_one_alter_table(new_column, standin_stack):
    assert new_column.out.returncode == 0, output(new_column.out)
    alters = [s for s in statements(new_column.requests, project_of(new_column.repo)) if s.kind == "ALTER_TABLE"]
    assert len(alters) == 1 and alters[0].target == f"{project_of(new_column.repo)}.telemetry.events", [
        s.text for s in alters]
    assert "standin_probe" in alters[0].text


@CHAIN_TIMEOUT
def test_a_release_s_changed_alert_metric_and_schedule_are_applied(new_column, standin_stack):
    """Read back after the redeploy: the alert's new text, the metric's new description and filter (its kind and
    type unchanged: they are immutable), the refresh's new schedule on the one scheduled query."""
    project, state = project_of(new_column.repo), new_column.state
    (policy,) = owned(state["monitoring"]["policies"], standin_stack, project)
    assert policy["documentation"]["content"].startswith(PROBE)
    metric = state["logging"]["metrics"][f"projects/{project}/metrics/telemetry_publish_failures"]
    assert metric["description"].startswith(PROBE) and "severity>=DEFAULT" in metric["filter"]
    (config,) = owned(state["bigquerydatatransfer"]["configs"], standin_stack, project)
    assert config["scheduleOptionsV2"]["timeBasedSchedule"]["schedule"] == NEW_SCHEDULE


@CHAIN_TIMEOUT
def test_a_trigger_change_is_refused_without_leave(trigger_refused, standin_stack):
    out, project = trigger_refused.out, project_of(trigger_refused.repo)
    assert out.returncode != 0 and "the sink's trigger would change" in out.stderr, output(out)
    patches = [r for r in trigger_refused.requests if r["api"] == "cloudfunctions" and r["method"] == "PATCH"
               and "telemetry-sink" in r["path"]]
    assert patches == []
    assert sink_subscription(trigger_refused.state, project) == sink_subscription(trigger_refused.first, project)


@CHAIN_TIMEOUT
def test_an_allowed_trigger_change_recreates_a_healthy_subscription(trigger_allowed):
    project = project_of(trigger_allowed.repo)
    old, new = sink_subscription(trigger_allowed.first, project), sink_subscription(trigger_allowed.state, project)
    assert new != old  # a new subscription, checked healthy and the old one gone by the fixture


def bq_resource(stack: Stack, path: str) -> dict:
    """A BigQuery v2 resource as bq would read it through the stand-in (path after bigquery/v2/projects/)."""
    with urllib.request.urlopen(f"{stack.standin.url}/bigquery/bigquery/v2/projects/{path}", timeout=10) as answer:
        return json.load(answer)


@dataclass
class Deployed:
    """One deploy: what it printed, and the stand-in's state and requests after it."""

    repo: Path
    project: str
    output: subprocess.CompletedProcess
    state: dict
    requests: list[dict]


DOMAINS = ("telemetry-gateway.example.com", "telemetry.example.org")


def deployed(repo: Path, stack: Stack, environ: dict[str, str]) -> Deployed:
    """Deploy the repository's project; what happened."""
    stack.reset_requests()
    out = deploy(repo, environ)
    assert out.returncode == 0, output(out)
    return Deployed(repo, project_of(repo), out, stack.state(), stack.requests())


@pytest.fixture(scope="module")
def first_with_a_domain(repo: Path, tmp_path_factory: pytest.TempPathFactory, standin_stack: Stack,
                        cli_environ: dict[str, str]) -> Deployed:
    """A new project with an analysts' group and a domain, deployed (each deploy a fixture of its own, so that no
    test item holds both deploys' time)."""
    dest = private_repo(repo, tmp_path_factory.mktemp("edge") / "repo")
    set_settings(dest, ANALYSTS_GROUP="group:analysts@example.com", INGEST_DOMAIN=DOMAINS[0])
    return deployed(dest, standin_stack, cli_environ)


@pytest.fixture(scope="module")
def second_with_a_domain(first_with_a_domain: Deployed, standin_stack: Stack,
                         cli_environ: dict[str, str]) -> Deployed:
    """The same project deployed again, after an operator changed its domain and its license threshold."""
    set_settings(first_with_a_domain.repo, INGEST_DOMAIN=DOMAINS[1], EDGE_LICENSE_REQUESTS_PER_MINUTE="240")
    return deployed(first_with_a_domain.repo, standin_stack, cli_environ)


def point_dns(stack: Stack, domain: str, address: str) -> None:
    """The domain's A record now names the address (what the operator does at the DNS provider)."""
    request = urllib.request.Request(f"{stack.standin.url}/__standin/dns", method="POST",
                                     data=json.dumps({domain: address}).encode(),
                                     headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=10).close()


@pytest.fixture(scope="module")
def closing_refused(second_with_a_domain: Deployed, standin_stack: Stack, cli_environ: dict[str, str]) -> Deployed:
    """INGEST_FUNCTION_URL=closed while the new domain's certificate is PROVISIONING (its DNS not moved yet)."""
    set_settings(second_with_a_domain.repo, INGEST_FUNCTION_URL="closed")
    standin_stack.reset_requests()
    out = deploy(second_with_a_domain.repo, cli_environ)
    return Deployed(second_with_a_domain.repo, second_with_a_domain.project, out, standin_stack.state(),
                    standin_stack.requests())


@pytest.fixture(scope="module")
def closed(closing_refused: Deployed, standin_stack: Stack, cli_environ: dict[str, str]) -> Deployed:
    """The domain's A record pointed at the load balancer's address; the same settings deployed again."""
    address = edge_of(closing_refused.state, closing_refused.project)["addresses/telemetry-ingest-ip"]["address"]
    point_dns(standin_stack, DOMAINS[1], address)
    return deployed(closing_refused.repo, standin_stack, cli_environ)


def test_closing_the_function_url_before_the_certificate_is_active_is_refused_and_changes_nothing(
        closing_refused):
    out, project = closing_refused.output, closing_refused.project
    assert out.returncode != 0, output(out)
    assert "certificate" in out.stderr and "is PROVISIONING" in out.stderr and "Nothing was changed" in out.stderr
    assert [f"{r['method']} {r['path']}" for r in closing_refused.requests if mutating(r)] == []
    assert ingest_of(closing_refused.state, project)["serviceConfig"]["ingressSettings"] == "ALLOW_ALL"


def test_the_function_url_closes_once_the_certificate_is_active(closed):
    from tools.edge import Edge

    certificate = Edge.from_env({**settings_of(closed.repo), "INGEST_DOMAIN": DOMAINS[1]}).name("certificate")
    managed = edge_of(closed.state, closed.project)[f"sslCertificates/{certificate}"]["managed"]
    assert managed["status"] == "ACTIVE"
    assert f"certificate {certificate} is ACTIVE" in closed.output.stdout
    assert ingest_of(closed.state, closed.project)["serviceConfig"]["ingressSettings"] == "ALLOW_INTERNAL_AND_GCLB"


def test_ingest_is_told_the_edge_s_address_so_it_finds_the_client_before_it(first_with_a_domain):
    """The address is reserved before ingest is deployed, and ingest gets its IP as EDGE_ADDRESS (the X-Forwarded-For
    entry before it is the client's address: docs/configuration.md)."""
    state, project = first_with_a_domain.state, first_with_a_domain.project
    address = edge_of(state, project)["addresses/telemetry-ingest-ip"]["address"]
    assert ingest_of(state, project)["serviceConfig"]["environmentVariables"]["EDGE_ADDRESS"] == address
    assert f"EDGE_ADDRESS={address}" in first_with_a_domain.output.stdout


def test_analysts_read_the_aggregates_through_an_authorized_dataset_and_are_never_granted_the_source(
        first_with_a_domain, standin_stack):
    """BigQuery needs the base table to read a materialized view, so analysts are granted a dataset of views
    authorized on the source dataset, never the source dataset (docs/analysts.md "Who may read what")."""
    from shared.sink.warehouse import analysts

    project = first_with_a_domain.project
    source, mine = f"{project}.telemetry", f"{project}.telemetry_analysts"
    state = first_with_a_domain.state["bigquery"]
    created = [s.text for s in statements(first_with_a_domain.requests, project)
               if s.text.startswith("CREATE OR REPLACE VIEW")]
    for name in analysts.OBJECTS:  # one logical view per aggregate, reading it in the source dataset
        view = bq_resource(standin_stack, f"{project}/datasets/telemetry_analysts/tables/{name}")
        assert view["type"] == "VIEW", view
        assert [t for t in created if t.startswith(f"CREATE OR REPLACE VIEW `{mine}.{name}`")
                and t.endswith(f"SELECT * FROM `{source}.{name}`")], name
    assert not [t for t in created if t.startswith(f"CREATE OR REPLACE VIEW `{mine}.") and ".events" in t]
    entry = analysts.authorized_dataset_entry(mine)
    assert entry == {"dataset": {"dataset": {"projectId": project, "datasetId": "telemetry_analysts"},
                                 "targetTypes": ["VIEWS"]}}
    source_access = state["access"][source]
    assert source_access.count(entry) == 1
    # The patch replaced the whole list: the dataset's default entries were read and kept.
    assert {"role": "OWNER", "specialGroup": "projectOwners"} in source_access
    shown = bq_resource(standin_stack, f"{project}/datasets/telemetry")
    assert shown["access"] == source_access  # what bq show reads back
    analyst = {"role": "roles/bigquery.dataViewer", "groupByEmail": "analysts@example.com"}
    assert state["grants"][mine] == [analyst]
    assert not [e for e in source_access if "analysts@example.com" in json.dumps(e)]  # never on the source
    assert {g["userByEmail"].split("@")[0] for g in state["grants"][source]} == {"telemetry-sink",
                                                                                  "telemetry-aggregates"}
    assert state["access_updates"] == {**state["access_updates"], source: 1}


def test_a_redeploy_finds_the_analysts_authorized_and_changes_no_access_list(first_with_a_domain,
                                                                             second_with_a_domain):
    project = first_with_a_domain.project
    source, mine = f"{project}.telemetry", f"{project}.telemetry_analysts"
    before, again = first_with_a_domain.state["bigquery"], second_with_a_domain.state["bigquery"]
    assert again["access"][source] == before["access"][source] and again["access_updates"][source] == 1
    assert again["grants"][mine] == [{"role": "roles/bigquery.dataViewer", "groupByEmail": "analysts@example.com"}]
    assert f"authorized: {mine}'s views on {source}" in second_with_a_domain.output.stdout


def edge_of(state: dict, project: str) -> dict[str, dict]:
    """The project's Compute resources by kind/name (e.g. 'addresses/telemetry-ingest-ip')."""
    return {"/".join(path.split("/")[-2:]): r for path, r in state["compute"]["resources"].items()
            if path.startswith(f"projects/{project}/")}


def changes_of(state: dict, project: str) -> dict[str, list[str]]:
    """What each of the project's Compute resources went through (insert, patch, addRule 2000, ...)."""
    return {"/".join(path.split("/")[-2:]): c for path, c in state["compute"]["changes"].items()
            if path.startswith(f"projects/{project}/")}


def ingest_of(state: dict, project: str) -> dict:
    """The project's ingest function as Cloud Functions answers it."""
    return state["cloudfunctions"]["functions"][f"projects/{project}/locations/us-central1/functions/telemetry-ingest"]


def settings_of(repo: Path) -> dict[str, str]:
    """NAME=value lines of a repository's dev.env."""
    return settings_file("dev", repo / "deploy")


def test_a_domain_puts_the_load_balancer_and_cloud_armor_in_front_and_a_redeploy_updates_them_in_place(
        first_with_a_domain, second_with_a_domain, standin_stack):
    """Created once; the second deploy (another domain, another license threshold) patches that rule and adds the
    domain's certificate to the HTTPS proxy, and touches nothing else; the address is never recreated; the function
    URL stays open (INGEST_FUNCTION_URL's default) while the certificates provision and instances move."""
    from tools import armor
    from tools.edge import Edge

    project, first, second = first_with_a_domain.project, first_with_a_domain.state, second_with_a_domain.state
    env = {**settings_of(first_with_a_domain.repo), "INGEST_DOMAIN": DOMAINS[0],
           "EDGE_LICENSE_REQUESTS_PER_MINUTE": "120"}
    edges = [Edge.from_env(env), Edge.from_env({**env, "INGEST_DOMAIN": DOMAINS[1]})]
    built = edge_of(first, project)
    assert set(built) == {"addresses/telemetry-ingest-ip", "securityPolicies/telemetry-ingest-armor",
                          "networkEndpointGroups/telemetry-ingest-neg", "backendServices/telemetry-ingest-backend",
                          "urlMaps/telemetry-ingest-lb", f"sslCertificates/{edges[0].name('certificate')}",
                          "targetHttpsProxies/telemetry-ingest-https-proxy", "forwardingRules/telemetry-ingest-https",
                          "urlMaps/telemetry-ingest-http-redirect", "targetHttpProxies/telemetry-ingest-http-proxy",
                          "forwardingRules/telemetry-ingest-http"}
    assert all(c.count("insert") == 1 and c[0] == "insert" for c in changes_of(first, project).values())

    assert ingest_of(first, project)["serviceConfig"]["ingressSettings"] == "ALLOW_ALL"
    assert "compute.googleapis.com" in first["identities"]["enabled"][project]  # enabled with the domain
    neg = built["networkEndpointGroups/telemetry-ingest-neg"]
    backend = built["backendServices/telemetry-ingest-backend"]
    assert neg["networkEndpointType"] == "SERVERLESS" and neg["cloudRun"] == {"service": "telemetry-ingest"}
    assert [b["group"] for b in backend["backends"]] == [neg["selfLink"]]
    assert backend["loadBalancingScheme"] == "EXTERNAL_MANAGED" and backend["logConfig"]["enable"] is True
    policy = built["securityPolicies/telemetry-ingest-armor"]
    assert backend["securityPolicy"] == policy["selfLink"]  # the policy is on the backend service
    wanted = armor.rules(env)
    assert [r["priority"] for r in policy["rules"]] == [r.priority for r in wanted] + [2147483647]
    assert [{k: r.get(k) for k in w.resource()} for r, w in zip(policy["rules"], wanted, strict=False)] == [
        w.resource() for w in wanted]
    assert built["urlMaps/telemetry-ingest-lb"]["defaultService"] == backend["selfLink"]
    certificate = built[f"sslCertificates/{edges[0].name('certificate')}"]
    assert certificate["managed"]["domains"] == [DOMAINS[0]] and certificate["type"] == "MANAGED"
    https = built["targetHttpsProxies/telemetry-ingest-https-proxy"]
    assert https["sslCertificates"] == [certificate["selfLink"]]
    address = built["addresses/telemetry-ingest-ip"]
    rules = {port: built[f"forwardingRules/telemetry-ingest-{name}"] for port, name in ((443, "https"), (80, "http"))}
    assert {p: (r["IPAddress"], r["portRange"], r["loadBalancingScheme"]) for p, r in rules.items()} == {
        443: (address["address"], "443", "EXTERNAL_MANAGED"), 80: (address["address"], "80", "EXTERNAL_MANAGED")}
    assert rules[443]["target"] == https["selfLink"]
    redirect = built["urlMaps/telemetry-ingest-http-redirect"]
    assert redirect["defaultUrlRedirect"]["httpsRedirect"] is True
    assert rules[80]["target"] == built["targetHttpProxies/telemetry-ingest-http-proxy"]["selfLink"]
    said = first_with_a_domain.output.stdout
    assert f"DNS: an A record {DOMAINS[0]} -> {address['address']}" in said
    assert f"ingest URL: https://{DOMAINS[0]}/v1/events" in said

    # The second deploy: the changed rule patched, the new certificate added and served first, nothing else.
    again = edge_of(second, project)
    before, after = changes_of(first, project), changes_of(second, project)
    new_certificate = f"sslCertificates/{edges[1].name('certificate')}"
    assert after == {**before, "securityPolicies/telemetry-ingest-armor": [
        *before["securityPolicies/telemetry-ingest-armor"], "patchRule 2000"],
        new_certificate: ["insert"], "targetHttpsProxies/telemetry-ingest-https-proxy": ["insert", "patch"]}
    assert again["addresses/telemetry-ingest-ip"] == address  # the same address: instances resolve the same IP
    (license_rule,) = [r for r in again["securityPolicies/telemetry-ingest-armor"]["rules"] if r["priority"] == 2000]
    assert license_rule["rateLimitOptions"]["rateLimitThreshold"] == {"count": 240, "intervalSec": 60}
    assert again["targetHttpsProxies/telemetry-ingest-https-proxy"]["sslCertificates"] == [
        again[new_certificate]["selfLink"], certificate["selfLink"]]
    assert ingest_of(second, project)["serviceConfig"]["ingressSettings"] == "ALLOW_ALL"
    (board,) = owned(second["monitoring"]["dashboards"], standin_stack, project)
    titles = [t["widget"]["title"] for t in board["mosaicLayout"]["tiles"]]
    assert [t for t in titles if t.startswith("Cloud Armor: requests")] == [
        "Cloud Armor: requests allowed per minute, by rule",
        "Cloud Armor: requests throttled (429) per minute, by rule", "Cloud Armor: requests banned per minute, by rule"]
    metric = second["logging"]["metrics"][f"projects/{project}/metrics/telemetry_edge_requests"]
    assert 'jsonPayload.enforcedSecurityPolicy.name="telemetry-ingest-armor"' in metric["filter"]


def test_every_answer_the_standin_made_decodes_into_google_s_generated_message(trigger_allowed, closed,
                                                                              standin_stack):
    """After both projects' lives (last in the module; run alone, it deploys them): every 2xx answer of the
    stand-in's own matched a method of gcloud's generated clients and decoded into its response message with no
    unknown field, enum value or wrong type (tests/deploy/standin/schemas.py)."""
    seen = standin_stack.state()["schemas"]
    assert seen["violations"] == []
    assert seen["unmatched"] == {}
    for method in ("compute.sslCertificates.get", "iam.projects.serviceAccounts.list",
                   "cloudfunctions.projects.locations.functions.get", "serviceusage.services.list",
                   "bigquerydatatransfer.projects.locations.transferConfigs.patch"):
        assert seen["checked"].get(method), method

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
    """PATH with fake gcloud and bq first; returns the environment and a reader of the recorded calls."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("gcloud", "bq"):
        target = bin_dir / tool
        shutil.copy(Path(__file__).with_name("fake_gcloud.py"), target)
        target.chmod(0o755)
    log = tmp_path / "calls.jsonl"
    log.touch()
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_LOG": str(log), "PYTHON": sys.executable}
    return {"env": env, "calls": lambda: [json.loads(x) for x in log.read_text().splitlines()]}


def deploy(repo: Path, fake: dict, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(repo / "deploy.sh"), *args], cwd=repo, env={**fake["env"], **env},
                          capture_output=True, text=True, timeout=300)


def has(calls: list, *words: str) -> list:
    return [c for c in calls if all(w in c for w in words)]


def test_fresh_deploy_creates_everything(repo, fake):
    out = deploy(repo, fake, "dev", FAKE_STATE="missing")
    assert out.returncode == 0, out.stderr
    calls = fake["calls"]()
    assert len(has(calls, "topics", "create")) == 2
    assert has(calls, "subscriptions", "create", "telemetry-events-dead-letter-pull")
    assert has(calls, "bq", "mk", "--dataset")
    tables = has(calls, "bq", "mk", "--table")
    assert {c[-2].rsplit(".", 1)[-1] for c in tables} == {"events", "rejected_events"}
    assert "--time_partitioning_field=timestamp" in tables[0] and "--time_partitioning_type=DAY" in tables[0]
    assert "--clustering_fields=feature,action,instance_id" in tables[0]
    schema = json.loads(Path(tables[0][-1]).read_text())
    assert [c["name"] for c in schema][:4] == ["event_id", "timestamp", "feature", "action"]
    assert len(has(calls, "bq", "query")) == 3  # the three views
    assert len(has(calls, "iam", "service-accounts", "create")) == 2
    (ingest,) = [c for c in has(calls, "functions", "deploy") if "telemetry-ingest" in c]
    (sink,) = [c for c in has(calls, "functions", "deploy") if "telemetry-sink" in c]
    assert "--trigger-http" in ingest and "--gen2" in ingest and "--runtime=python311" in ingest
    env_arg = next(a for a in ingest if a.startswith("--set-env-vars="))
    assert "TELEMETRY_ENV=dev" in env_arg and "TRUSTED_LICENSE_KEYS_FILE=config/trusted-license-keys.pub" in env_arg
    assert "--retry" in sink and "--trigger-topic=telemetry-events" in sink
    source = Path(next(a for a in ingest if a.startswith("--source=")).split("=", 1)[1])
    assert (source / "main.py").exists() and (source / "shared" / "ingest" / "licenses" / "keys.py").exists()
    assert not (source / "shared" / "sink").exists() and not (source / "shared" / "tools").exists()
    assert (source / "config" / "trusted-license-keys.pub").exists()
    assert (source / "shared" / "VERSION").read_text().strip() in out.stdout
    (dlq,) = has(calls, "subscriptions", "update")
    assert "--dead-letter-topic=telemetry-events-dead-letter" in dlq and "--max-delivery-attempts=10" in dlq
    assert "projects/p/subscriptions/eventarc-us-central1-telemetry-sink-123-sub-456" in dlq
    trigger = "projects/p/locations/us-central1/triggers/telemetry-sink-123"
    assert has(calls, "eventarc", "triggers", "describe", trigger)
    publisher = [c for c in has(calls, "add-iam-policy-binding", "--role=roles/pubsub.publisher")
                 if "telemetry-events" in c]
    assert any("serviceAccount:telemetry-ingest@" in a for c in publisher for a in c)
    assert has(calls, "bq", "add-iam-policy-binding", "--role=roles/bigquery.dataEditor")
    assert len(has(calls, "logging", "metrics", "create")) == 5
    assert has(calls, "monitoring", "policies", "create")
    assert "ingest URL: https://ingest.example.run.app/v1/events" in out.stdout


def test_redeploy_creates_nothing(repo, fake):
    out = deploy(repo, fake, "dev", FAKE_STATE="exists")
    assert out.returncode == 0, out.stderr
    calls = fake["calls"]()
    assert not [c for c in calls if "create" in c or "mk" in c]
    assert len(has(calls, "bq", "update")) == 2  # additive schema update
    assert len(has(calls, "functions", "deploy")) == 2
    assert len(has(calls, "logging", "metrics", "update")) == 5


def test_plan_runs_nothing_and_prints_everything(repo, fake):
    out = deploy(repo, fake, "dev", "--plan")
    assert out.returncode == 0, out.stderr
    assert fake["calls"]() == []
    for expected in ("gcloud pubsub topics create telemetry-events", "bq --project_id=", "mk --table",
                     "gcloud functions deploy telemetry-ingest", "gcloud functions deploy telemetry-sink",
                     "--dead-letter-topic=telemetry-events-dead-letter", "gcloud logging metrics create",
                     "CREATE OR REPLACE VIEW"):
        assert expected in out.stdout, expected


def test_plan_needs_no_gcloud_at_all(repo, fake, tmp_path):
    env = {**fake["env"], "PATH": "/usr/local/bin:/usr/bin:/bin"}
    out = subprocess.run(["bash", str(repo / "deploy.sh"), "prod", "--plan"], cwd=repo, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "sourcegraph-telemetry-gateway-prod" in out.stdout


def test_failing_step_stops_with_message(repo, fake):
    out = deploy(repo, fake, "dev", FAKE_STATE="exists", FAKE_FAIL="functions deploy telemetry-sink")
    assert out.returncode != 0
    assert "fake failure of: gcloud functions deploy telemetry-sink" in out.stderr
    assert not has(fake["calls"](), "subscriptions", "update")


def test_prod_refuses_dirty_tree(repo, fake):
    readme = repo / "README.md"
    original = readme.read_text()
    readme.write_text(original + "\nuncommitted\n")
    try:
        out = deploy(repo, fake, "prod", FAKE_STATE="exists")
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
    out = deploy(repo, fake, "dev", "--verify", FAKE_STATE="exists", FAKE_URL=dev_server.url,
                 DEV_VERIFY_LICENSE_KEY=keys["dev"].issue(tags=("dev",)))
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "passed" in out.stdout and "skipped" not in out.stdout


def test_verify_fails_deploy_when_contract_fails(repo, fake, dev_server):
    out = deploy(repo, fake, "dev", "--verify", FAKE_STATE="exists", FAKE_URL=dev_server.url,
                 DEV_VERIFY_LICENSE_KEY="not-a-valid-license")
    assert out.returncode != 0 and "contract tests failed" in out.stderr


def test_shellcheck_clean():
    if shutil.which("shellcheck") is None:
        if os.environ.get("CI"):
            pytest.fail("shellcheck is not installed (.ci/run installs it from Debian's packages)")
        pytest.skip("shellcheck not installed")
    out = subprocess.run(["shellcheck", str(ROOT / "deploy.sh"), str(ROOT / ".ci" / "run")],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout

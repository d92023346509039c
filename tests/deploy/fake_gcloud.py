#!/usr/bin/env python3
"""A stateful stand-in for `gcloud` and `bq` (no emulator exists for them), modelling what deploy.sh relies on.

State lives in FAKE_STATE_FILE (JSON), so a second deploy sees the first one's resources. Modelled
behaviours of the real tools (docs/operations.md cites each):
- describe/show of a missing resource fails (NOT_FOUND); service accounts are listed (a describe of a missing
  one is a 403, never used); create of an existing one fails (ALREADY_EXISTS);
- `functions deploy` of an existing event function with trigger flags recreates its Eventarc trigger and
  push subscription (a new subscription name; the old backlog is gone); without them the trigger is kept;
- a new service account is eventually consistent: the first IAM binding naming it fails once;
- `bq add-iam-policy-binding` does not support datasets (it fails, as documented);
- a dashboard update must carry the dashboard's current etag;
- `bq update` is not how this project migrates (ALTER TABLE ADD COLUMN); a call fails loudly, except
  `bq update --etag=E --source FILE DATASET`, whose `access` replaces the dataset's whole access list (refused if
  the dataset changed since its etag E was read);
- `bq query` DDL: CREATE TABLE IF NOT EXISTS / CREATE MATERIALIZED VIEW / DROP ... IF EXISTS change what
  exists (a materialized view remembers its labels and how often it was computed: creating one computes it
  over the whole base table); CREATE [OR REPLACE] of an existing materialized view fails; `--dry_run`
  changes nothing; `bq show --format=json` prints what is remembered;
- scheduled queries (`bq mk|update|ls --transfer_config`): display names are not unique (a second `mk`
  makes a second schedule that also runs); `mk` needs the Data Transfer API enabled and an existing service
  account; on `update`, `--service_account_name` takes effect only with `--update_credentials`.

FAKE_LOG: one JSON line per call. FAKE_FAIL: a substring; a call containing it fails. FAKE_LOGGED_OUT:
no active account. FAKE_URL: the ingest URL. FAKE_NO_IAM_LAG: bindings never fail.
"""

import json
import os
import re
import sys
from pathlib import Path

tool = os.path.basename(sys.argv[0])
args = sys.argv[1:]
line = " ".join([tool, *args])
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps([tool, *args]) + "\n")
STATE_FILE = os.environ["FAKE_STATE_FILE"]
state = json.loads(open(STATE_FILE).read()) if os.path.exists(STATE_FILE) else {}  # noqa: SIM115
words = [a for a in args if not a.startswith("-")]
flags = dict(a[2:].split("=", 1) if "=" in a else (a[2:], "") for a in args if a.startswith("--"))


def save() -> None:
    with open(STATE_FILE, "w") as out:
        json.dump(state, out, indent=1, sort_keys=True)


def fail(message: str) -> None:
    """gcloud: `ERROR: (gcloud.x) ...` on stderr, exit 1. bq: `BigQuery error in OP operation: ...` on stdout,
    exit 2, stderr empty (platform/bq/utils/bq_error_utils.py; seen with the real bq on the emulator)."""
    if tool == "bq":
        operation = next((w for w in words if w in ("show", "mk", "query", "update", "ls")), "bq")
        print(f"BigQuery error in {operation} operation: {message}")
        sys.exit(2)
    print(f"ERROR: ({tool}) {message}", file=sys.stderr)
    sys.exit(1)


def kind(name: str) -> dict:
    return state.setdefault(name, {})


if os.environ.get("FAKE_FAIL") and os.environ["FAKE_FAIL"] in line:
    fail(f"fake failure of: {line}")


def gcloud() -> None:
    if words[:2] == ["auth", "list"]:
        if not os.environ.get("FAKE_LOGGED_OUT"):
            print("ops@example.com")
    elif words[:2] == ["projects", "describe"]:
        print("123456789")
    elif words[:2] == ["services", "enable"]:
        kind("services").update({s: True for s in words[2:]})
    elif "add-iam-policy-binding" in words or words[:2] == ["functions", "add-invoker-policy-binding"]:
        member = flags.get("member", "")
        lagging = kind("new_accounts")
        if member in lagging and not os.environ.get("FAKE_NO_IAM_LAG"):
            lagging.pop(member)
            save()
            fail(f"INVALID_ARGUMENT: Service account {member.split(':', 1)[1]} does not exist.")
        target = " ".join(words[:words.index("add-iam-policy-binding")] if "add-iam-policy-binding" in words
                          else words) + " " + (words[-1] if words else "")
        kind("bindings").setdefault(target, [])
        if [member, flags.get("role", "run.invoker")] not in kind("bindings")[target]:
            kind("bindings")[target].append([member, flags.get("role", "run.invoker")])
    elif words[:3] == ["iam", "service-accounts", "create"]:
        email = f"{words[3]}@{flags['project']}.iam.gserviceaccount.com"
        if email in kind("accounts"):
            fail("ALREADY_EXISTS: service account exists")
        kind("accounts")[email] = True
        kind("new_accounts")[f"serviceAccount:{email}"] = True
    elif words[:3] == ["iam", "service-accounts", "list"]:
        print("\n".join(kind("accounts")))
    elif words[:2] == ["services", "list"]:
        wanted = flags.get("filter", "").removeprefix("config.name=")
        print("\n".join(s for s in kind("services") if not wanted or s == wanted))
    elif words[:2] == ["pubsub", "topics"] and words[2] in ("create", "describe"):
        exists = words[3] in kind("topics")
        if words[2] == "describe" and not exists:
            fail("NOT_FOUND: topic")
        if words[2] == "create":
            if exists:
                fail("ALREADY_EXISTS: topic")
            kind("topics")[words[3]] = True
    elif words[:2] == ["pubsub", "subscriptions"]:
        verb, name = words[2], words[3].rsplit("/", 1)[-1]
        subs = kind("subscriptions")
        if verb == "describe" and name not in subs:
            fail("NOT_FOUND: subscription")
        elif verb == "create":
            if name in subs:
                fail("ALREADY_EXISTS: subscription")
            subs[name] = {"topic": flags.get("topic")}
        elif verb == "update":
            if name not in subs:
                fail("NOT_FOUND: subscription")
            subs[name].update({k: v for k, v in flags.items() if k != "project"})
    elif words[:2] == ["functions", "deploy"]:
        deploy_function(words[2])
    elif words[:2] == ["functions", "describe"]:
        function = kind("functions").get(words[2])
        if function is None:
            fail("NOT_FOUND: function")
        fmt = flags.get("format", "")
        if "serviceConfig.uri" in fmt:
            print(os.environ.get("FAKE_URL", "https://ingest.example.run.app"))
        elif "eventTrigger.trigger" in fmt and "pubsubTopic" not in fmt:
            print(function["trigger"]["name"] if function.get("trigger") else "")
        elif "eventTrigger" in fmt and function.get("trigger"):
            t = function["trigger"]
            print(f"{t['name']}\t{t['topic']}\t{t['retry']}\t{t['identity']}")
    elif words[:3] == ["eventarc", "triggers", "describe"]:
        for function in kind("functions").values():
            if function.get("trigger", {}).get("name") == words[3]:
                print(function["trigger"]["subscription"])
                return
        fail("NOT_FOUND: trigger")
    elif words[:3] == ["logging", "metrics", "describe"]:
        if words[3] not in kind("metrics"):
            fail("NOT_FOUND: metric")
    elif words[:3] == ["logging", "metrics", "create"]:
        if words[3] in kind("metrics"):
            fail("ALREADY_EXISTS: metric")
        kind("metrics")[words[3]] = 1
    elif words[:3] == ["logging", "metrics", "update"]:
        kind("metrics")[words[3]] += 1
    elif "monitoring" in words:
        monitoring()


def deploy_function(name: str) -> None:
    functions = kind("functions")
    function = functions.setdefault(name, {"deploys": 0})
    function["deploys"] += 1
    function["flags"] = flags
    if "trigger-topic" in flags:
        count = kind("counters").setdefault("triggers", 0) + 1
        kind("counters")["triggers"] = count
        subscription = f"projects/p/subscriptions/eventarc-us-central1-{name}-{count}-sub-{count}"
        kind("subscriptions")[subscription.rsplit("/", 1)[-1]] = {"topic": flags["trigger-topic"], "eventarc": True}
        function["trigger"] = {
            "name": f"projects/p/locations/us-central1/triggers/{name}-{count}",
            "topic": f"projects/{flags['project']}/topics/{flags['trigger-topic']}",
            "retry": "RETRY_POLICY_RETRY" if "retry" in flags else "RETRY_POLICY_DO_NOT_RETRY",
            "identity": flags.get("trigger-service-account", ""), "subscription": subscription,
        }


def monitoring() -> None:
    group = "policies" if "policies" in words else "dashboards"
    items = kind(group)
    verb = words[words.index(group) + 1]
    source = flags.get("policy-from-file") or flags.get("config-from-file")
    if verb == "list":
        wanted = re.search(r'displayName="([^"]*)"', flags.get("filter", ""))
        for name, item in items.items():
            if not wanted or item["displayName"] == wanted.group(1):
                print(name)
    elif verb == "describe":
        print(items[words[words.index(group) + 2]]["etag"])
    elif verb == "create":
        doc = json.loads(Path(source).read_text())
        name = f"projects/p/{group}/{len(items) + 1}"
        items[name] = {"displayName": doc["displayName"], "doc": doc, "updates": 0, "etag": "e0"}
    elif verb == "update":
        name = words[words.index(group) + 2]
        if name not in items:
            fail(f"NOT_FOUND: {name}")
        doc = json.loads(Path(source).read_text())
        if group == "dashboards" and doc.get("etag") != items[name]["etag"]:
            fail("ABORTED: the dashboard's etag does not match its current version")
        updates = items[name]["updates"] + 1
        items[name].update({"doc": doc, "updates": updates, "etag": f"e{updates}"})


def ddl(sql: str) -> None:
    """What a script's DDL statements create and drop, in order."""
    for statement in re.split(r";\s*(?:\n|$)", sql):
        ref = re.search(r"`([^`]*)`", statement)
        target = ":".join(ref.group(1).split(".", 1)) if ref else ""
        if re.match(r"\s*CREATE TABLE IF NOT EXISTS", statement):
            columns = re.findall(r"^\s*`(\w+)` [A-Z<>0-9]+", statement.split("(", 1)[1], re.M)
            days = re.search(r"partition_expiration_days = (\d+)", statement)
            kind("bq").setdefault(target, {"args": ["ddl"], "schema": {"fields": [{"name": c} for c in columns]},
                                           **({"timePartitioning": {"expirationMs": str(int(days.group(1)) * 86400000)}}
                                              if days else {})})
        elif re.match(r"\s*DROP (MATERIALIZED )?VIEW IF EXISTS", statement):
            kind("bq").pop(target, None)
        elif re.match(r"\s*CREATE (OR REPLACE )?MATERIALIZED VIEW", statement):
            if target in kind("bq"):  # "You cannot replace an existing materialized view" (materialized-views-intro)
                fail(f"Already Exists: Table {ref.group(1)}")
            labels = dict(re.findall(r"\('(\w+)', '([^']*)'\)", statement))
            kind("computations")[target] = kind("computations").get(target, 0) + 1  # over the whole base table
            kind("bq")[target] = {"args": ["ddl"], "labels": labels, "materialized": True}
        elif re.match(r"\s*ALTER TABLE", statement):
            parts = ref.group(1).split(".") if ref else []  # BigQuery resolves project.dataset.table
            if len(parts) != 3 or f"{parts[0]}:{parts[1]}.{parts[2]}" not in kind("bq"):
                fail(f"Not found: Table {ref.group(1) if ref else ''} was not found")
            table = kind("bq")[f"{parts[0]}:{parts[1]}.{parts[2]}"]
            table.setdefault("schema", {"fields": []})["fields"] += [
                {"name": c} for c in re.findall(r"ADD COLUMN IF NOT EXISTS `(\w+)`", statement)]
            days = re.search(r"partition_expiration_days = (\d+)", statement)
            if days:
                table["timePartitioning"] = {"expirationMs": str(int(days.group(1)) * 86400000)}


def transfer_configs() -> None:
    configs = kind("transfer_configs")
    if "ls" in words:
        print(json.dumps(list(configs.values())) if configs else "")
    elif "mk" in words:
        if "bigquerydatatransfer.googleapis.com" not in kind("services"):
            fail("BigQuery Data Transfer API has not been used in project or it is disabled")
        if flags.get("service_account_name") not in kind("accounts"):
            fail("Service account does not exist")
        name = f"projects/123456789/locations/{flags.get('location', 'US').lower()}/transferConfigs/{len(configs) + 1}"
        configs[name] = {"name": name, "displayName": flags["display_name"], "schedule": flags.get("schedule"),
                         "params": json.loads(flags["params"]), "serviceAccount": flags["service_account_name"],
                         "dataSourceId": flags["data_source"], "updates": 0}
    elif "update" in words:
        config = configs.get(words[-1])
        if config is None:
            fail(f"Not found: transfer config {words[-1]}")
        config.update({"schedule": flags.get("schedule", config["schedule"]), "updates": config["updates"] + 1,
                       "params": json.loads(flags.get("params", json.dumps(config["params"])))})
        if "update_credentials" in flags and "service_account_name" in flags:
            config["serviceAccount"] = flags["service_account_name"]


def bq() -> None:
    if "add-iam-policy-binding" in words:
        fail("bq add-iam-policy-binding does not support datasets; use GRANT DCL or the dataset's access list")
    if "transfer_config" in flags:
        transfer_configs()
    elif "show" in words:
        if words[-1] not in kind("bq"):
            fail(f"Not found: Table {words[-1]}")
        if flags.get("format") == "json":
            shown = {k: v for k, v in kind("bq")[words[-1]].items() if k != "args"}
            print(json.dumps({"id": words[-1], "etag": "e0", **shown}))
    elif "mk" in words:
        target = words[-1] if "--dataset" in args else words[-2]
        if target in kind("bq"):
            fail(f"Already exists: {target}")
        kind("bq")[target] = {"args": args}
    elif "query" in words:
        sql = words[-1]
        if "dry_run" in flags:
            kind("queries").setdefault("dry_run", []).append(sql)
            return
        ddl(sql)
        kind("queries").setdefault("all", []).append(sql)
    elif "update" in words and "source" in flags and words[-1] in kind("bq"):
        # A dataset's access list: the file's replaces the whole list (Dataset.access, on a patch), only if the
        # dataset is still the version read (`--etag`: "Precondition check failed" otherwise, 412).
        dataset = kind("bq")[words[-1]]
        if "etag" in flags and flags["etag"] != dataset.get("etag", "e0"):
            fail("Precondition check failed.")
        dataset["etag"] = f"e{int(dataset.get('etag', 'e0')[1:]) + 1}"
        kind("bq")[words[-1]]["access"] = json.loads(Path(flags["source"]).read_text())["access"]
        kind("access_updates")[words[-1]] = kind("access_updates").get(words[-1], 0) + 1
    elif "update" in words:
        fail("bq update with a schema file is not how this project migrates (ALTER TABLE ADD COLUMN)")


if tool == "gcloud":
    gcloud()
else:
    bq()
save()
sys.exit(0)

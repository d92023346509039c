#!/usr/bin/env bash
# Redeploy the Telemetry Gateway (prod or dev) with gcloud and bq. Every step is idempotent:
# it describes first, creates only what is missing, updates what may change, and never deletes data.
#
#   ./deploy.sh prod|dev [--plan] [--version REF] [--verify] [--allow-trigger-change]
#
#   --plan         print every command it would run; run none of them (needs no credentials)
#   --version REF  deploy exactly this git ref (default: HEAD); prod refuses a dirty work tree
#   --verify       after deploying, run the contract tests against the ingest URL
#                  (dev: with the license in $DEV_VERIFY_LICENSE_KEY; prod: unauthenticated cases only)
#   --allow-trigger-change  let a changed sink trigger (topic, retry, push identity) be recreated:
#                  its push subscription and backlog go with it, so drain first
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHON="${PYTHON:-python3}"
[ -x "$ROOT/.venv/bin/python" ] && PYTHON="${PYTHON_OVERRIDE:-$ROOT/.venv/bin/python}"

die() { echo "deploy.sh: error: $*" >&2; exit 1; }
say() { echo "==> $*"; }
usage() { sed -n '4,13p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }

ENVIRONMENT=""
PLAN=0
VERIFY=0
ALLOW_TRIGGER_CHANGE=0
REF="HEAD"
while [ $# -gt 0 ]; do
  case "$1" in
    prod|dev) ENVIRONMENT="$1" ;;
    --plan) PLAN=1 ;;
    --verify) VERIFY=1 ;;
    --allow-trigger-change) ALLOW_TRIGGER_CHANGE=1 ;;
    --version) [ $# -ge 2 ] || die "--version needs a git ref"; REF="$2"; shift ;;
    --version=*) REF="${1#--version=}" ;;
    -h|--help) usage ;;
    *) die "unknown argument '$1' (expected prod|dev [--plan] [--version REF] [--verify] [--allow-trigger-change])" ;;
  esac
  shift
done
[ -n "$ENVIRONMENT" ] || die "name the environment: ./deploy.sh prod|dev"

SETTINGS="$ROOT/deploy/$ENVIRONMENT.env"
[ -f "$SETTINGS" ] || die "missing settings file $SETTINGS"
# shellcheck source=/dev/null
. "$SETTINGS"
for name in PROJECT REGION BQ_LOCATION DATASET TOPIC DEAD_LETTER_TOPIC INGEST_FUNCTION SINK_FUNCTION \
            INGEST_SA SINK_SA PUSH_SA BUILD_SA AGGREGATES_SA AGGREGATES_SCHEDULE INGEST_MAX_INSTANCES INGEST_MEMORY INGEST_CPU INGEST_WORKERS \
            INGEST_THREADS SINK_MAX_INSTANCES SINK_MEMORY SINK_TIMEOUT ACK_DEADLINE_SECONDS MAX_DELIVERY_ATTEMPTS; do
  [ -n "${!name:-}" ] || die "setting $name is missing in $SETTINGS"
done
if [ "$ENVIRONMENT" = dev ] && [ -z "${TRUSTED_LICENSE_KEYS:-}" ]; then
  die "dev needs TRUSTED_LICENSE_KEYS (the dev license generation public key) in $SETTINGS"
fi

# ---- commands: in plan mode printed, otherwise printed and run -------------------------------
run() {
  echo "+ $(printf '%q ' "$@")"
  [ "$PLAN" = 1 ] || "$@"
}
# retried CMD...: IAM bindings right after an account is created can fail while it propagates.
retried() {
  echo "+ $(printf '%q ' "$@")"
  [ "$PLAN" = 1 ] && return 0
  local attempt=1
  until "$@"; do
    [ "$attempt" -lt 5 ] || die "still failing after $attempt attempts: $*"
    echo "  retrying in $((attempt * ${DEPLOY_RETRY_SECONDS:-5}))s (new service accounts take a moment to propagate)"
    sleep "$((attempt * ${DEPLOY_RETRY_SECONDS:-5}))"
    attempt=$((attempt + 1))
  done
}
# exists CMD...: a read-only describe. In plan mode nothing is asked and everything counts as missing.
exists() {
  if [ "$PLAN" = 1 ]; then
    echo "? $* (checked at deploy time; the plan shows the create)"
    return 1
  fi
  "$@" >/dev/null 2>&1
}
ensure() {  # ensure "<describe command>" <create command...>
  local check="$1"; shift
  # shellcheck disable=SC2086  # the describe command is a word list on purpose
  if exists $check; then echo "  exists: ${check}"; else run "$@"; fi
}

# ---- preflight -------------------------------------------------------------------------------
git -C "$ROOT" rev-parse --verify --quiet "$REF^{commit}" >/dev/null || die "unknown git ref '$REF'"
VERSION="$(git -C "$ROOT" describe --tags --always --abbrev=12 --match 'v*' "$REF")"
if [ "$ENVIRONMENT" = prod ] && [ -n "$(git -C "$ROOT" status --porcelain)" ]; then
  die "the work tree has uncommitted changes; prod deploys only a clean, committed version"
fi
if [ "$PLAN" = 0 ]; then
  command -v gcloud >/dev/null || die "gcloud not found on PATH (install the Google Cloud CLI)"
  command -v bq >/dev/null || die "bq not found on PATH (it ships with the Google Cloud CLI)"
  account="$(gcloud auth list --filter=status:ACTIVE --format='value(account)' 2>/dev/null || true)"
  [ -n "$account" ] || die "gcloud is not logged in: run 'gcloud auth login'"
  say "deploying $ENVIRONMENT version $VERSION to project $PROJECT as $account"
else
  say "PLAN for $ENVIRONMENT version $VERSION in project $PROJECT (nothing is run)"
fi

G=(--project="$PROJECT")
INGEST_SA_EMAIL="$INGEST_SA@$PROJECT.iam.gserviceaccount.com"
SINK_SA_EMAIL="$SINK_SA@$PROJECT.iam.gserviceaccount.com"
PUSH_SA_EMAIL="$PUSH_SA@$PROJECT.iam.gserviceaccount.com"
BUILD_SA_EMAIL="$BUILD_SA@$PROJECT.iam.gserviceaccount.com"
AGGREGATES_SA_EMAIL="$AGGREGATES_SA@$PROJECT.iam.gserviceaccount.com"
DLQ_PULL="$DEAD_LETTER_TOPIC-pull"

# ---- stage the exact version: each function gets its main.py, its requirements, and the part of ----
# ---- the shared package it runs (the top-level modules and its own subpackage; never tools) --------
BUILD="$ROOT/build/$ENVIRONMENT"
stage() {
  for fn in ingest sink; do
    mkdir -p "$BUILD/$fn/config" "$BUILD/$fn/shared"
    cp "$BUILD/src/functions/$fn/main.py" "$BUILD/src/functions/$fn/requirements.txt" "$BUILD/$fn/"
    cp "$BUILD/src/shared/"*.py "$BUILD/$fn/shared/"
    cp -r "$BUILD/src/shared/$fn" "$BUILD/$fn/shared/$fn"
    echo "$VERSION" > "$BUILD/$fn/shared/VERSION"
  done
  # Files the settings name (keys, revocations, policies) go to the ingest function's config/.
  local entry name
  for entry in TRUSTED_LICENSE_KEYS:trusted-license-keys.pub OTHER_ENV_LICENSE_KEYS:other-env-license-keys.pub \
      REVOKED_LICENSES:revoked-licenses.txt PRIVATE_METADATA_ALLOWLIST:private-metadata-allowlist.txt \
      MANAGED_SERVICES:managed-services.txt MARKETING_TRACKING_INSTANCES:marketing-tracking-instances.txt; do
    name="${entry%%:*}"
    [ -z "${!name:-}" ] || cp "$BUILD/src/${!name}" "$BUILD/ingest/config/${entry#*:}"
  done
  for table in $TABLES; do
    tables schema "$table" > "$BUILD/$table.schema.json"
  done
}
# Table and view names, schemas, migrations and aggregates come from the staged version (run from its
# folder: `python -m` puts the working directory first on the import path).
tables() { (cd "$BUILD/src" && "$PYTHON" -m tools.tables "$@"); }
aggregates() { (cd "$BUILD/src" && "$PYTHON" -m tools.aggregates "$@"); }
say "staging $REF ($VERSION) into $BUILD"
rm -rf "$BUILD" && mkdir -p "$BUILD/src" && git -C "$ROOT" archive "$REF" | tar -x -C "$BUILD/src"
TABLES="$(tables list tables)"
VIEWS="$(tables list views)"
# Releases before the aggregates (a rollback) have no retired views and no aggregates to deploy.
RETIRED_VIEWS="$(tables list retired-views 2>/dev/null || true)"
HAVE_AGGREGATES=0
[ -f "$BUILD/src/tools/aggregates.py" ] && HAVE_AGGREGATES=1
stage

# ---- APIs, topics --------------------------------------------------------------------------------
say "APIs"
run gcloud services enable cloudfunctions.googleapis.com run.googleapis.com cloudbuild.googleapis.com \
  artifactregistry.googleapis.com eventarc.googleapis.com pubsub.googleapis.com bigquery.googleapis.com \
  bigquerystorage.googleapis.com bigquerydatatransfer.googleapis.com iam.googleapis.com logging.googleapis.com \
  monitoring.googleapis.com "${G[@]}"

say "Pub/Sub topics"
ensure "gcloud pubsub topics describe $TOPIC --project=$PROJECT" gcloud pubsub topics create "$TOPIC" "${G[@]}"
ensure "gcloud pubsub topics describe $DEAD_LETTER_TOPIC --project=$PROJECT" \
  gcloud pubsub topics create "$DEAD_LETTER_TOPIC" "${G[@]}"
ensure "gcloud pubsub subscriptions describe $DLQ_PULL --project=$PROJECT" \
  gcloud pubsub subscriptions create "$DLQ_PULL" --topic="$DEAD_LETTER_TOPIC" --message-retention-duration=7d \
  --expiration-period=never "${G[@]}"

# ---- BigQuery: dataset, tables (from shared/tables.py), views -------------------------------------
say "BigQuery dataset $PROJECT:$DATASET"
ensure "bq --project_id=$PROJECT show --format=none $PROJECT:$DATASET" \
  bq --project_id="$PROJECT" --location="$BQ_LOCATION" mk --dataset \
  --description="Telemetry Gateway ($ENVIRONMENT)" "$PROJECT:$DATASET"
for table in $TABLES; do
  read -r partition clustering expiry_setting < <(tables table "$table")
  days="${!expiry_setting:-}"
  [[ "$days" =~ ^[1-9][0-9]*$ ]] || die "setting $expiry_setting (days a $table partition is kept) is missing in $SETTINGS"
  if exists bq --project_id="$PROJECT" show --format=none "$PROJECT:$DATASET.$table"; then
    # Additive only, NULLABLE columns, IF NOT EXISTS: the same statements the sink would run; then the
    # partition expiration, so a changed setting applies on redeploy.
    run bq --project_id="$PROJECT" query --use_legacy_sql=false --nouse_cache \
      "$(tables migrate "$table" "$PROJECT.$DATASET.$table") $(tables expire "$PROJECT.$DATASET.$table" "$days");"
  else
    run bq --project_id="$PROJECT" mk --table --time_partitioning_field="$partition" \
      --time_partitioning_type=DAY --time_partitioning_expiration="$((days * 86400))" \
      --clustering_fields="$clustering" "$PROJECT:$DATASET.$table" "$BUILD/$table.schema.json"
  fi
done
for view in $VIEWS; do
  run bq --project_id="$PROJECT" query --use_legacy_sql=false --nouse_cache \
    "CREATE OR REPLACE VIEW \`$PROJECT.$DATASET.$view\` AS $(tables view "$view" "$PROJECT.$DATASET")"
done
for view in $RETIRED_VIEWS; do
  run bq --project_id="$PROJECT" query --use_legacy_sql=false --nouse_cache \
    "DROP VIEW IF EXISTS \`$PROJECT.$DATASET.$view\`"
done

# ---- BigQuery: the analysts' aggregates (tools/aggregates.py, docs/analysts.md) ---------------
# The refresh looks back over the events ingest may still accept late.
EVENT_MAX_AGE_DAYS="${EVENT_MAX_AGE_DAYS:-365}"
if [ "$HAVE_AGGREGATES" = 1 ]; then
  say "aggregates"
  # The materialized view is recreated only when its definition label changed: a new one is computed over
  # the whole events table. Only "not found" counts as missing; any other failure of `bq show` stops here.
  MV="$(aggregates mv-name)"
  MV_CURRENT=0
  if [ "$PLAN" = 0 ]; then
    if MV_SHOWN="$(bq --project_id="$PROJECT" show --format=json "$PROJECT:$DATASET.$MV" 2>"$BUILD/mv-show.err")"; then
      printf '%s' "$MV_SHOWN" | aggregates mv-current "$PROJECT.$DATASET" && MV_CURRENT=1
    elif ! grep -qi "not found" "$BUILD/mv-show.err"; then
      die "bq show $PROJECT:$DATASET.$MV failed: $(cat "$BUILD/mv-show.err")"
    fi
  fi
  if [ "$MV_CURRENT" = 0 ]; then
    run bq --project_id="$PROJECT" query --use_legacy_sql=false --nouse_cache "$(aggregates mv "$PROJECT.$DATASET");"
  else
    say "materialized view $MV is current"
  fi
  run bq --project_id="$PROJECT" query --use_legacy_sql=false --nouse_cache \
    "$(aggregates tables "$PROJECT.$DATASET" "$EVENTS_PARTITION_EXPIRATION_DAYS")"
  # BigQuery checks the refresh script before the schedule runs it (a dry run executes nothing).
  run bq --project_id="$PROJECT" query --use_legacy_sql=false --dry_run \
    "$(aggregates script "$PROJECT.$DATASET" --event-max-age-days="$EVENT_MAX_AGE_DAYS")"
fi

# ---- service accounts with least privilege ----------------------------------------------------------
say "service accounts"
ensure "gcloud iam service-accounts describe $INGEST_SA_EMAIL --project=$PROJECT" \
  gcloud iam service-accounts create "$INGEST_SA" --display-name="Telemetry ingest ($ENVIRONMENT)" "${G[@]}"
ensure "gcloud iam service-accounts describe $SINK_SA_EMAIL --project=$PROJECT" \
  gcloud iam service-accounts create "$SINK_SA" --display-name="Telemetry sink ($ENVIRONMENT)" "${G[@]}"
ensure "gcloud iam service-accounts describe $PUSH_SA_EMAIL --project=$PROJECT" \
  gcloud iam service-accounts create "$PUSH_SA" --display-name="Telemetry sink push identity ($ENVIRONMENT)" "${G[@]}"
ensure "gcloud iam service-accounts describe $BUILD_SA_EMAIL --project=$PROJECT" \
  gcloud iam service-accounts create "$BUILD_SA" --display-name="Telemetry function builds ($ENVIRONMENT)" "${G[@]}"
ensure "gcloud iam service-accounts describe $AGGREGATES_SA_EMAIL --project=$PROJECT" \
  gcloud iam service-accounts create "$AGGREGATES_SA" --display-name="Telemetry aggregates refresh ($ENVIRONMENT)" \
  "${G[@]}"
# ingest: publish to its topic (and read the topic for /__heartbeat__), nothing else.
retried gcloud pubsub topics add-iam-policy-binding "$TOPIC" --member="serviceAccount:$INGEST_SA_EMAIL" \
  --role=roles/pubsub.publisher "${G[@]}"
retried gcloud pubsub topics add-iam-policy-binding "$TOPIC" --member="serviceAccount:$INGEST_SA_EMAIL" \
  --role=roles/pubsub.viewer "${G[@]}"
# sink: write its dataset (a dataset-level grant: bq add-iam-policy-binding does not support datasets)
# and run query jobs (migrations); nothing else.
# aggregates: the scheduled query runs as this account; it reads events and rewrites the aggregates.
for sa in "$SINK_SA_EMAIL" "$AGGREGATES_SA_EMAIL"; do
  retried bq --project_id="$PROJECT" query --use_legacy_sql=false --nouse_cache \
    "GRANT \`roles/bigquery.dataEditor\` ON SCHEMA \`$PROJECT.$DATASET\` TO \"serviceAccount:$sa\""
  retried gcloud projects add-iam-policy-binding "$PROJECT" --member="serviceAccount:$sa" \
    --role=roles/bigquery.jobUser --condition=None
done
# builds: the functions' images are built as this account, not the project's default build account.
for role in roles/cloudbuild.builds.builder roles/logging.logWriter roles/artifactregistry.writer; do
  retried gcloud projects add-iam-policy-binding "$PROJECT" --member="serviceAccount:$BUILD_SA_EMAIL" \
    --role="$role" --condition=None
done
# Pub/Sub's service agent forwards failed messages to the dead-letter topic.
if [ "$PLAN" = 1 ]; then PROJECT_NUMBER="PROJECT_NUMBER"; else
  PROJECT_NUMBER="$(gcloud projects describe "$PROJECT" --format='value(projectNumber)')"
fi
PUBSUB_AGENT="serviceAccount:service-$PROJECT_NUMBER@gcp-sa-pubsub.iam.gserviceaccount.com"
retried gcloud pubsub topics add-iam-policy-binding "$DEAD_LETTER_TOPIC" --member="$PUBSUB_AGENT" \
  --role=roles/pubsub.publisher "${G[@]}"

# ---- the aggregates' scheduled query (BigQuery Data Transfer Service) ----------------------------------
# Display names are not unique: the existing config is found by name and updated, never created twice.
if [ "$HAVE_AGGREGATES" = 1 ]; then
  say "scheduled query as $AGGREGATES_SA ($AGGREGATES_SCHEDULE)"
  SCHEDULE_NAME="telemetry-aggregates-$ENVIRONMENT"
  SCHEDULE_PARAMS="$(aggregates params "$PROJECT.$DATASET" --event-max-age-days="$EVENT_MAX_AGE_DAYS")"
  SCHEDULE_CONFIG=""
  if [ "$PLAN" = 0 ]; then
    CONFIGS="$(bq --project_id="$PROJECT" ls --transfer_config --transfer_location="$BQ_LOCATION" \
      --max_results=1000 --format=json)" || die "could not list the scheduled queries"
    SCHEDULE_CONFIG="$(printf '%s' "$CONFIGS" | aggregates find-config "$SCHEDULE_NAME")" \
      || die "could not read the scheduled queries"
  fi
  if [ -n "$SCHEDULE_CONFIG" ]; then
    run bq --project_id="$PROJECT" update --transfer_config --params="$SCHEDULE_PARAMS" \
      --schedule="$AGGREGATES_SCHEDULE" --update_credentials --service_account_name="$AGGREGATES_SA_EMAIL" \
      "$SCHEDULE_CONFIG"
  else
    run bq --project_id="$PROJECT" --location="$BQ_LOCATION" mk --transfer_config --data_source=scheduled_query \
      --display_name="$SCHEDULE_NAME" --schedule="$AGGREGATES_SCHEDULE" --params="$SCHEDULE_PARAMS" \
      --service_account_name="$AGGREGATES_SA_EMAIL"
  fi
fi

# ---- functions ----------------------------------------------------------------------------------------
say "functions"
INGEST_ENV="TELEMETRY_ENV=$ENVIRONMENT@GOOGLE_CLOUD_PROJECT=$PROJECT@PUBSUB_TOPIC=$TOPIC@GATEWAY_VERSION=$VERSION"
INGEST_ENV="$INGEST_ENV@LICENSE_EXPIRY_GRACE_DAYS=${LICENSE_EXPIRY_GRACE_DAYS:-30}"
INGEST_ENV="$INGEST_ENV@EVENT_MAX_AGE_DAYS=$EVENT_MAX_AGE_DAYS"
INGEST_ENV="$INGEST_ENV@MAX_EVENTS_PER_REQUEST=${MAX_EVENTS_PER_REQUEST:-1000}"
INGEST_ENV="$INGEST_ENV@MAX_REQUEST_BYTES=${MAX_REQUEST_BYTES:-5242880}"
INGEST_ENV="$INGEST_ENV@QUOTA_EVENTS_PER_SECOND=${QUOTA_EVENTS_PER_SECOND:-2000}"
INGEST_ENV="$INGEST_ENV@MAX_PARSE_MEMORY_BYTES=${MAX_PARSE_MEMORY_BYTES:-134217728}"
[ -z "${TRUSTED_LICENSE_KEYS:-}" ] || INGEST_ENV="$INGEST_ENV@TRUSTED_LICENSE_KEYS_FILE=config/trusted-license-keys.pub"
[ -z "${OTHER_ENV_LICENSE_KEYS:-}" ] || \
  INGEST_ENV="$INGEST_ENV@OTHER_ENV_LICENSE_KEYS_FILE=config/other-env-license-keys.pub"
[ -z "${REVOKED_LICENSES:-}" ] || INGEST_ENV="$INGEST_ENV@REVOKED_LICENSES_FILE=config/revoked-licenses.txt"
[ -z "${PRIVATE_METADATA_ALLOWLIST:-}" ] || \
  INGEST_ENV="$INGEST_ENV@PRIVATE_METADATA_ALLOWLIST_FILE=config/private-metadata-allowlist.txt"
if [ -n "${MANAGED_SERVICES:-}" ]; then
  # Managed services mint their ID tokens for the function's URL (the cloudfunctions.net one is known
  # before the first deploy).
  audience="${ID_TOKEN_AUDIENCE:-https://$REGION-$PROJECT.cloudfunctions.net/$INGEST_FUNCTION}"
  INGEST_ENV="$INGEST_ENV@MANAGED_SERVICES_FILE=config/managed-services.txt@ID_TOKEN_AUDIENCE=$audience"
fi
[ -z "${MARKETING_TRACKING_INSTANCES:-}" ] || \
  INGEST_ENV="$INGEST_ENV@MARKETING_TRACKING_INSTANCES_FILE=config/marketing-tracking-instances.txt"
INGEST_ENV="$INGEST_ENV@WORKERS=$INGEST_WORKERS@THREADS=$INGEST_THREADS"
# functions-framework's gunicorn serves WORKERS x THREADS requests at once whatever --concurrency says:
# the two agree, so Cloud Run never sends more than the server can take.
INGEST_CONCURRENCY=$((INGEST_WORKERS * INGEST_THREADS))
BUILD_IDENTITY="projects/$PROJECT/serviceAccounts/$BUILD_SA_EMAIL"
run gcloud functions deploy "$INGEST_FUNCTION" --gen2 --runtime=python311 --region="$REGION" \
  --source="$BUILD/ingest" --entry-point=ingest --trigger-http --allow-unauthenticated \
  --service-account="$INGEST_SA_EMAIL" --build-service-account="$BUILD_IDENTITY" \
  --set-env-vars="^@^$INGEST_ENV" --max-instances="$INGEST_MAX_INSTANCES" \
  --memory="$INGEST_MEMORY" --cpu="$INGEST_CPU" --concurrency="$INGEST_CONCURRENCY" --timeout=60s "${G[@]}"

# The sink's trigger: passing trigger flags to an existing function can recreate its Eventarc trigger and
# push subscription, and the backlog with it. They are passed only when the trigger is new, or changed
# on purpose (--allow-trigger-change, after draining: see README "Changing the sink's trigger").
WANT_TRIGGER="projects/$PROJECT/topics/$TOPIC	RETRY_POLICY_RETRY	$PUSH_SA_EMAIL"
TRIGGER_FLAGS=(--trigger-topic="$TOPIC" --retry --trigger-service-account="$PUSH_SA_EMAIL")
HAVE_TRIGGER=""
if [ "$PLAN" = 0 ] && ! HAVE_TRIGGER="$(gcloud functions describe "$SINK_FUNCTION" --gen2 --region="$REGION" \
    "${G[@]}" --format='value(eventTrigger.pubsubTopic,eventTrigger.retryPolicy,eventTrigger.serviceAccountEmail)' \
    2>"$BUILD/describe-sink.err")"; then
  # Only "no such function" means a new trigger; any other failure must not pass trigger flags by mistake.
  grep -qiE 'NOT_FOUND|404|does not exist|not found' "$BUILD/describe-sink.err" \
    || die "cannot describe $SINK_FUNCTION: $(cat "$BUILD/describe-sink.err")"
  HAVE_TRIGGER=""
fi
if [ -z "$HAVE_TRIGGER" ]; then
  echo "  the sink's trigger is new: creating it"
elif [ "$HAVE_TRIGGER" = "$WANT_TRIGGER" ]; then
  echo "  the sink's trigger is unchanged: kept (same push subscription, backlog intact)"
  TRIGGER_FLAGS=()
elif [ "$ALLOW_TRIGGER_CHANGE" = 1 ]; then
  echo "  WARNING: the sink's trigger changes ($HAVE_TRIGGER -> $WANT_TRIGGER); its push subscription is recreated"
else
  die "the sink's trigger would change ($HAVE_TRIGGER -> $WANT_TRIGGER), which recreates its push subscription and \
drops its backlog. Drain it first (README 'Changing the sink's trigger'), then rerun with --allow-trigger-change"
fi
SINK_ENV="TELEMETRY_ENV=$ENVIRONMENT@GOOGLE_CLOUD_PROJECT=$PROJECT@BQ_DATASET=$DATASET@GATEWAY_VERSION=$VERSION"
SINK_ENV="$SINK_ENV@EVENTS_PARTITION_EXPIRATION_DAYS=$EVENTS_PARTITION_EXPIRATION_DAYS"
SINK_ENV="$SINK_ENV@REJECTED_PARTITION_EXPIRATION_DAYS=$REJECTED_PARTITION_EXPIRATION_DAYS"
run gcloud functions deploy "$SINK_FUNCTION" --gen2 --runtime=python311 --region="$REGION" \
  --source="$BUILD/sink" --entry-point=sink ${TRIGGER_FLAGS[@]+"${TRIGGER_FLAGS[@]}"} --ingress-settings=internal-only \
  --service-account="$SINK_SA_EMAIL" --build-service-account="$BUILD_IDENTITY" \
  --set-env-vars="^@^$SINK_ENV" --max-instances="$SINK_MAX_INSTANCES" --memory="$SINK_MEMORY" \
  --timeout="$SINK_TIMEOUT" "${G[@]}"
# Eventarc pushes as its own account, which may invoke the sink and nothing else.
retried gcloud functions add-invoker-policy-binding "$SINK_FUNCTION" --region="$REGION" \
  --member="serviceAccount:$PUSH_SA_EMAIL" "${G[@]}"

# The push subscription Eventarc made for the trigger: dead-letter policy, attempts, ack deadline.
if [ "$PLAN" = 1 ]; then SINK_SUBSCRIPTION="EVENTARC_SUBSCRIPTION_OF_$SINK_FUNCTION"; else
  # Exactly the subscription of this function's trigger, never another consumer of the topic.
  TRIGGER="$(gcloud functions describe "$SINK_FUNCTION" --gen2 --region="$REGION" \
    --format='value(eventTrigger.trigger)' "${G[@]}")"
  [ -n "$TRIGGER" ] || die "$SINK_FUNCTION has no Eventarc trigger after deploying"
  SINK_SUBSCRIPTION="$(gcloud eventarc triggers describe "$TRIGGER" --location="$REGION" \
    --format='value(transport.pubsub.subscription)' "${G[@]}")"
  [ -n "$SINK_SUBSCRIPTION" ] || die "trigger $TRIGGER has no Pub/Sub subscription"
fi
echo "  sink subscription: $SINK_SUBSCRIPTION"
run gcloud pubsub subscriptions update "$SINK_SUBSCRIPTION" --dead-letter-topic="$DEAD_LETTER_TOPIC" \
  --max-delivery-attempts="$MAX_DELIVERY_ATTEMPTS" --ack-deadline="$ACK_DEADLINE_SECONDS" \
  --min-retry-delay=5s --max-retry-delay=600s "${G[@]}"
retried gcloud pubsub subscriptions add-iam-policy-binding "$SINK_SUBSCRIPTION" --member="$PUBSUB_AGENT" \
  --role=roles/pubsub.subscriber "${G[@]}"

# ---- what operators watch (files from the deployed version) ---------------------------------------------
say "log-based metrics, the dead-letter alert and the dashboard"
for file in "$BUILD"/src/deploy/metrics/*.yaml; do
  metric="$(basename "$file" .yaml)"
  if exists gcloud logging metrics describe "$metric" "${G[@]}"; then
    run gcloud logging metrics update "$metric" --config-from-file="$file" "${G[@]}"
  else
    run gcloud logging metrics create "$metric" --config-from-file="$file" "${G[@]}"
  fi
done
# monitored NAME GROUP FILE: create the alert policy / dashboard, or update the one with its display name.
monitored() {
  local display="$1" group="$2" file="$3" flag existing="" etag
  flag=--policy-from-file; [ "$group" = dashboards ] && flag=--config-from-file
  local cmd=(gcloud alpha monitoring policies); [ "$group" = dashboards ] && cmd=(gcloud monitoring dashboards)
  if [ "$PLAN" = 0 ]; then
    existing="$("${cmd[@]}" list "${G[@]}" --filter="displayName=\"$display\"" --format='value(name)' | head -n 1)"
  fi
  if [ -n "$existing" ] && [ "$group" = dashboards ]; then
    # A dashboard update must carry the current etag (it guards against concurrent edits).
    etag="$("${cmd[@]}" describe "$existing" "${G[@]}" --format='value(etag)')"
    "$PYTHON" -c 'import json, sys; d = json.load(open(sys.argv[1])); d["etag"] = sys.argv[2]
json.dump(d, open(sys.argv[1], "w"))' "$file" "$etag"
    run "${cmd[@]}" update "$existing" "$flag=$file" "${G[@]}"
  elif [ -n "$existing" ]; then
    run "${cmd[@]}" update "$existing" "$flag=$file" "${G[@]}"
  else
    run "${cmd[@]}" create "$flag=$file" "${G[@]}"
  fi
}
policy="$BUILD/alert-dead-letter.json"
sed "s/__SUBSCRIPTION__/$DLQ_PULL/g" "$BUILD/src/deploy/alert-dead-letter.json" > "$policy"
if [ -n "${NOTIFICATION_CHANNEL:-}" ]; then
  sed -i "s|\"notificationChannels\": \[\]|\"notificationChannels\": [\"$NOTIFICATION_CHANNEL\"]|" "$policy"
elif [ "$ENVIRONMENT" = prod ]; then
  echo "  WARNING: NOTIFICATION_CHANNEL is empty: the prod dead-letter alert will notify nobody" >&2
fi
monitored "Telemetry gateway: dead-letter backlog ($DLQ_PULL)" policies "$policy"
dashboard="$BUILD/dashboard.json"
sed -e "s/__ENV__/$ENVIRONMENT/g" -e "s/__INGEST__/$INGEST_FUNCTION/g" -e "s/__SINK__/$SINK_FUNCTION/g" \
  -e "s/__DLQ_PULL__/$DLQ_PULL/g" -e "s/__TOPIC__/$TOPIC/g" "$BUILD/src/deploy/dashboard.json" > "$dashboard"
monitored "Telemetry gateway ($ENVIRONMENT)" dashboards "$dashboard"

# ---- result --------------------------------------------------------------------------------------------
if [ "$PLAN" = 1 ]; then
  URL="https://$REGION-$PROJECT.cloudfunctions.net/$INGEST_FUNCTION"
  echo "+ gcloud functions describe $INGEST_FUNCTION --gen2 --region=$REGION --format=value(serviceConfig.uri)"
else
  URL="$(gcloud functions describe "$INGEST_FUNCTION" --gen2 --region="$REGION" \
    --format='value(serviceConfig.uri)' "${G[@]}")"
fi
say "ingest URL: $URL/v1/events   (version $VERSION)"

if [ "$VERIFY" = 1 ]; then
  say "contract tests against $URL"
  args=(-m pytest "$ROOT/tests/contract" -p no:cacheprovider -q --url "$URL")
  if [ "$ENVIRONMENT" = dev ]; then
    [ -n "${DEV_VERIFY_LICENSE_KEY:-}" ] || die "--verify on dev needs DEV_VERIFY_LICENSE_KEY (a dev-private license)"
  fi
  # The license travels in the environment, never on a command line or in the printed command.
  TELEMETRY_LICENSE_KEY="${DEV_VERIFY_LICENSE_KEY:-}" run env PYTHONPATH="$ROOT" "$PYTHON" "${args[@]}" \
    || die "contract tests failed against $URL"
fi
say "done"

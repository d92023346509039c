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
# With INGEST_DOMAIN set in deploy/ENV.env, ingest is also served at https://INGEST_DOMAIN through a load balancer
# with a Cloud Armor policy (the edge step); without it, at its function URL only.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHON="${PYTHON:-python3}"
[ -x "$ROOT/.venv/bin/python" ] && PYTHON="${PYTHON_OVERRIDE:-$ROOT/.venv/bin/python}"
# shellcheck source=deploy/lib.sh
. "$ROOT/deploy/lib.sh"

usage() { sed -n '4,14p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }

parse_args() {
  ENVIRONMENT="" PLAN=0 VERIFY=0 ALLOW_TRIGGER_CHANGE=0 REF="HEAD"
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
}

# The settings file names the deployment; the functions' own settings in it are exported, so that
# `tools.settings` (the one place that defines and checks them) builds each function's environment.
load_settings() {
  SETTINGS="$ROOT/deploy/$ENVIRONMENT.env"
  [ -f "$SETTINGS" ] || die "missing settings file $SETTINGS"
  set -a
  # shellcheck source=/dev/null
  . "$SETTINGS"
  set +a
  local name
  for name in PROJECT REGION BQ_LOCATION DATASET TOPIC DEAD_LETTER_TOPIC INGEST_FUNCTION SINK_FUNCTION \
              INGEST_SA SINK_SA PUSH_SA BUILD_SA AGGREGATES_SA AGGREGATES_SCHEDULE INGEST_MAX_INSTANCES INGEST_MEMORY \
              INGEST_CPU INGEST_WORKERS INGEST_THREADS SINK_MAX_INSTANCES SINK_MEMORY SINK_CPU SINK_CONCURRENCY SINK_TIMEOUT ACK_DEADLINE_SECONDS \
              MAX_DELIVERY_ATTEMPTS SUBSCRIPTION_RETENTION; do
    [ -n "${!name:-}" ] || die "setting $name is missing in $SETTINGS"
  done
  if [ "$ENVIRONMENT" = dev ] && [ -z "${TRUSTED_LICENSE_KEYS:-}" ]; then
    die "dev needs TRUSTED_LICENSE_KEYS (the dev license generation public key) in $SETTINGS"
  fi
  export TELEMETRY_ENV="$ENVIRONMENT" GOOGLE_CLOUD_PROJECT="$PROJECT" PUBSUB_TOPIC="$TOPIC" BQ_DATASET="$DATASET" \
    WORKERS="$INGEST_WORKERS" THREADS="$INGEST_THREADS"
  G=(--project="$PROJECT")
  INGEST_SA_EMAIL="$INGEST_SA@$PROJECT.iam.gserviceaccount.com"
  SINK_SA_EMAIL="$SINK_SA@$PROJECT.iam.gserviceaccount.com"
  PUSH_SA_EMAIL="$PUSH_SA@$PROJECT.iam.gserviceaccount.com"
  BUILD_SA_EMAIL="$BUILD_SA@$PROJECT.iam.gserviceaccount.com"
  BUILD_IDENTITY="projects/$PROJECT/serviceAccounts/$BUILD_SA_EMAIL"
  AGGREGATES_SA_EMAIL="$AGGREGATES_SA@$PROJECT.iam.gserviceaccount.com"
  DLQ_PULL="$DEAD_LETTER_TOPIC-pull"
  DS="$PROJECT.$DATASET"
  # The function URL stays open (ingress all) unless INGEST_FUNCTION_URL=closed: then only the load balancer reaches
  # ingest (internal-and-gclb), which closing_check allows only once the domain serves (docs/operations.md "Day one").
  INGEST_INGRESS=all
  case "${INGEST_FUNCTION_URL:-open}" in
    open) ;;
    closed) [ -n "${INGEST_DOMAIN:-}" ] || die "INGEST_FUNCTION_URL=closed needs INGEST_DOMAIN in $SETTINGS: without a \
domain the function URL is the only way in"
            INGEST_INGRESS=internal-and-gclb ;;
    *) die "INGEST_FUNCTION_URL must be open or closed in $SETTINGS" ;;
  esac
}

preflight() {
  git -C "$ROOT" rev-parse --verify --quiet "$REF^{commit}" >/dev/null || die "unknown git ref '$REF'"
  VERSION="$(git -C "$ROOT" describe --tags --always --abbrev=12 --match 'v*' "$REF")"
  export GATEWAY_VERSION="$VERSION"
  if [ "$ENVIRONMENT" = prod ] && [ -n "$(git -C "$ROOT" status --porcelain)" ]; then
    die "the work tree has uncommitted changes; prod deploys only a clean, committed version"
  fi
  if [ "$PLAN" = 0 ]; then
    command -v gcloud >/dev/null || die "gcloud not found on PATH (install the Google Cloud CLI)"
    command -v bq >/dev/null || die "bq not found on PATH (it ships with the Google Cloud CLI)"
    local account
    account="$(gcloud auth list --filter=status:ACTIVE --format='value(account)' 2>/dev/null || true)"
    [ -n "$account" ] || die "gcloud is not logged in: run 'gcloud auth login'"
    say "deploying $ENVIRONMENT version $VERSION to project $PROJECT as $account"
  else
    say "PLAN for $ENVIRONMENT version $VERSION in project $PROJECT (nothing is run)"
  fi
}

# The exact version: each function gets its main.py, its requirements, the top level of the shared package
# and its own subpackage (never tools), and config/ with the files its settings name.
stage() {
  BUILD="$ROOT/build/$ENVIRONMENT"
  say "staging $REF ($VERSION) into $BUILD"
  rm -rf "$BUILD" && mkdir -p "$BUILD/src" && git -C "$ROOT" archive "$REF" | tar -x -C "$BUILD/src"
  [ -f "$BUILD/src/tools/warehouse.py" ] || die "$REF predates tools/warehouse.py: deploy it with its own deploy.sh"
  local fn repo_path config_path shipped
  for fn in ingest sink; do
    shipped="$(settings files "$fn")" || die "could not read the $fn function's settings"
    mkdir -p "$BUILD/$fn/config" "$BUILD/$fn/shared"
    cp "$BUILD/src/functions/$fn/main.py" "$BUILD/src/functions/$fn/requirements.txt" "$BUILD/$fn/"
    cp "$BUILD/src/shared/"*.py "$BUILD/$fn/shared/"
    cp -r "$BUILD/src/shared/$fn" "$BUILD/$fn/shared/$fn"
    echo "$VERSION" > "$BUILD/$fn/shared/VERSION"
    while read -r repo_path config_path; do
      [ -z "$repo_path" ] || cp "$BUILD/src/$repo_path" "$BUILD/$fn/$config_path"
    done <<<"$shipped"
  done
  if [ -n "${INGEST_DOMAIN:-}" ]; then  # the edge's settings, checked before anything is deployed
    [ -f "$BUILD/src/tools/edge.py" ] || die "$REF predates tools/edge.py: deploy it without INGEST_DOMAIN"
    edge resources >/dev/null || die "the edge's settings are invalid (above)"
  fi
}

# A new project has only Google's default services on (docs/operations.md "A brand-new project"): every API a
# step calls is enabled here, Compute Engine (every resource of the edge) only with a domain.
# INGEST_FUNCTION_URL=closed closes the function URL: only once instances can reach ingest at the domain, that is
# once the HTTPS proxy serves the domain's managed certificate and the certificate is ACTIVE (it provisions after the
# A record points at the load balancer, up to 60 minutes later). Otherwise stop here, before anything changes.
closing_check() {
  [ "$INGEST_INGRESS" = internal-and-gclb ] || return 0
  local certificate proxy status="" attached=""
  certificate="$(edge name certificate)" || die "the edge's settings are invalid (above)"
  proxy="$(edge name https-proxy)"
  if [ "$PLAN" = 1 ]; then
    echo "? certificate $certificate ACTIVE on $proxy before the function URL closes (checked at deploy time)"
    return 0
  fi
  DESCRIBING="listing the enabled services of $PROJECT" answer gcloud services list --enabled "${G[@]}" \
    --filter=config.name=compute.googleapis.com --format='value(config.name)'
  if [ -n "$ANSWER" ]; then  # no Compute Engine API: no edge yet
    if answer gcloud compute ssl-certificates describe "$certificate" --global --format='value(managed.status)' \
        "${G[@]}"; then status="$ANSWER"; fi
    if answer gcloud compute target-https-proxies describe "$proxy" --global --format='value(sslCertificates)' \
        "${G[@]}"; then attached="$ANSWER"; fi
  fi
  local served="not served by $proxy" link
  # value(sslCertificates) lists the proxy's certificates as URLs joined by ";": the name must be one's last part.
  for link in ${attached//;/ }; do [ "${link##*/}" != "$certificate" ] || served="served by $proxy"; done
  if [ "$status" = ACTIVE ] && [ "$served" = "served by $proxy" ]; then
    say "certificate $certificate is ACTIVE, $served: the function URL closes (ingress internal-and-gclb)"
    return 0
  fi
  die "INGEST_FUNCTION_URL=closed would close the function URL before https://$INGEST_DOMAIN serves: certificate \
$certificate is ${status:-not created}, $served. Nothing was changed. \
Deploy with INGEST_FUNCTION_URL=open, point the domain's A record at the address the edge step prints, wait until \
the certificate is ACTIVE (docs/operations.md \"Day one\"), move the instances, then deploy with closed"
}

apis() {
  say "APIs"
  local services=(cloudfunctions.googleapis.com run.googleapis.com cloudbuild.googleapis.com
    artifactregistry.googleapis.com eventarc.googleapis.com pubsub.googleapis.com bigquery.googleapis.com
    bigquerystorage.googleapis.com bigquerydatatransfer.googleapis.com iam.googleapis.com logging.googleapis.com
    monitoring.googleapis.com cloudresourcemanager.googleapis.com)
  [ -z "${INGEST_DOMAIN:-}" ] || services+=(compute.googleapis.com)
  run gcloud services enable "${services[@]}" "${G[@]}"
}

pubsub() {
  say "Pub/Sub topics"
  ensure "gcloud pubsub topics describe $TOPIC --project=$PROJECT" gcloud pubsub topics create "$TOPIC" "${G[@]}"
  ensure "gcloud pubsub topics describe $DEAD_LETTER_TOPIC --project=$PROJECT" \
    gcloud pubsub topics create "$DEAD_LETTER_TOPIC" "${G[@]}"
  ensure "gcloud pubsub subscriptions describe $DLQ_PULL --project=$PROJECT" \
    gcloud pubsub subscriptions create "$DLQ_PULL" --topic="$DEAD_LETTER_TOPIC" \
    --message-retention-duration="$SUBSCRIPTION_RETENTION" --expiration-period=never "${G[@]}"
}

# Tables, views: definitions, DDL and migrations come from shared/sink/warehouse (tools.warehouse). A live
# table is compared with its definition: at most one ALTER adds its missing columns and one sets its
# partition expiration when it differs (BigQuery allows 5 metadata updates per table per 10 s).
tables_step() {
  local table sql
  for table in $(warehouse tables); do
    if [ "$PLAN" = 0 ] && bq_show "$PROJECT:$DATASET.$table"; then
      sql="$(printf '%s' "$ANSWER" | warehouse migrate "$table" "$DS")"
      if [ -n "$sql" ]; then bq_sql "$sql"; else echo "  current: $DS.$table"; fi
    else
      bq_sql "$(warehouse create "$table" "$DS")"
    fi
  done
}

warehouse_step() {
  say "BigQuery dataset $PROJECT:$DATASET"
  ensure "bq --project_id=$PROJECT show --format=none $PROJECT:$DATASET" \
    bq --project_id="$PROJECT" --location="$BQ_LOCATION" mk --dataset \
    --description="Telemetry Gateway ($ENVIRONMENT)" "$PROJECT:$DATASET"
  tables_step
  bq_sql "$(warehouse views "$DS")"
}

# The analysts' aggregates (docs/analysts.md). The materialized view is recreated only when its definition
# label changed: a new one is computed over the whole events table.
aggregates_step() {
  say "aggregates"
  local mv current=0
  mv="$(warehouse mv-name)"
  if [ "$PLAN" = 0 ] && bq_show "$PROJECT:$DATASET.$mv"; then
    printf '%s' "$ANSWER" | warehouse mv-current "$DS" && current=1
  fi
  if [ "$current" = 0 ]; then bq_sql "$(warehouse mv "$DS")"; else say "materialized view $mv is current"; fi
  # BigQuery checks the refresh script before the schedule runs it (a dry run executes nothing).
  run bq --project_id="$PROJECT" query --use_legacy_sql=false --dry_run "$(warehouse refresh-script "$DS")"
}

# The analysts' dataset (docs/analysts.md "Who may read what"): a materialized view needs read access to its
# base table, so analysts are never granted the aggregates in $DATASET (that would take `events` too). They get
# ANALYSTS_DATASET: views over the aggregates, authorized on $DATASET as an authorized dataset (its views, not
# its readers, read the source). A patch replaces a dataset's whole access list: the live list is read and
# kept, and the source dataset is updated only when the authorization is missing.
analysts_step() {
  if [ -z "${ANALYSTS_DATASET:-}" ] || [ "$ANALYSTS_DATASET" = "$DATASET" ]; then
    die "ANALYSTS_DATASET must name a dataset other than $DATASET in $SETTINGS"
  fi
  say "analysts' dataset $PROJECT:$ANALYSTS_DATASET"
  local analysts="$PROJECT.$ANALYSTS_DATASET" access="$BUILD/$DATASET-access.json"
  ensure "bq --project_id=$PROJECT show --format=none $PROJECT:$ANALYSTS_DATASET" \
    bq --project_id="$PROJECT" --location="$BQ_LOCATION" mk --dataset \
    --description="Telemetry Gateway: what analysts read ($ENVIRONMENT)" "$PROJECT:$ANALYSTS_DATASET"
  bq_sql "$(warehouse analyst-views "$DS" "$analysts")"
  local etag=ETAG
  if [ "$PLAN" = 1 ]; then
    echo '{}' | warehouse authorize "$analysts" > "$access"
  elif bq_show "$PROJECT:$DATASET"; then
    printf '%s' "$ANSWER" | warehouse authorize "$analysts" > "$access" || die "could not read $DS's access list"
    etag="$(printf '%s' "$ANSWER" | warehouse etag)" || die "could not read $DS's etag"
  else
    die "dataset $PROJECT:$DATASET not found"
  fi
  if [ -s "$access" ]; then
    # --etag: the list replaces the whole one read above; a change since then refuses the update (412).
    run bq --project_id="$PROJECT" update --etag="$etag" --source="$access" "$PROJECT:$DATASET"
  else
    echo "  authorized: $analysts's views on $DS"
  fi
  if [ -n "${ANALYSTS_GROUP:-}" ]; then
    bq_sql "$(warehouse grant "$(warehouse analyst-role)" "$analysts" "$ANALYSTS_GROUP")"
  else
    echo "  ANALYSTS_GROUP is empty: nobody is granted $analysts"
  fi
}

# The project's accounts are listed, not described one by one: a describe of an account that does not exist is a
# 403 PERMISSION_DENIED, the same answer as a caller without the permission (IAM reference, serviceAccounts.get);
# a list answers what exists (docs/operations.md "A brand-new project").
service_accounts() {
  say "service accounts"
  local sa display existing=""
  if [ "$PLAN" = 0 ]; then
    DESCRIBING="listing the service accounts of $PROJECT" answer gcloud iam service-accounts list "${G[@]}" \
      --format='value(email)' && existing="$ANSWER"
  fi
  for sa in "$INGEST_SA:ingest" "$SINK_SA:sink" "$PUSH_SA:sink push identity" "$BUILD_SA:function builds" \
      "$AGGREGATES_SA:aggregates refresh"; do
    display="Telemetry ${sa#*:} ($ENVIRONMENT)"
    if grep -qxF "${sa%%:*}@$PROJECT.iam.gserviceaccount.com" <<<"$existing"; then
      echo "  exists: ${sa%%:*}@$PROJECT.iam.gserviceaccount.com"
    else
      run gcloud iam service-accounts create "${sa%%:*}" --display-name="$display" "${G[@]}"
    fi
  done
  # ingest: publish to its topic (and read the topic for /__heartbeat__), nothing else.
  retried gcloud pubsub topics add-iam-policy-binding "$TOPIC" --member="serviceAccount:$INGEST_SA_EMAIL" \
    --role=roles/pubsub.publisher "${G[@]}"
  retried gcloud pubsub topics add-iam-policy-binding "$TOPIC" --member="serviceAccount:$INGEST_SA_EMAIL" \
    --role=roles/pubsub.viewer "${G[@]}"
  # sink: write its dataset (a dataset-level grant: bq add-iam-policy-binding does not support datasets)
  # and run query jobs (migrations). aggregates: the scheduled query runs as this account.
  for sa in "$SINK_SA_EMAIL" "$AGGREGATES_SA_EMAIL"; do
    retried bq --project_id="$PROJECT" query --use_legacy_sql=false --nouse_cache \
      "$(warehouse grant roles/bigquery.dataEditor "$DS" "serviceAccount:$sa")"
    retried gcloud projects add-iam-policy-binding "$PROJECT" --member="serviceAccount:$sa" \
      --role=roles/bigquery.jobUser --condition=None
  done
  # builds: the functions' images are built as this account, not the project's default build account.
  local role
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
}

# The aggregates' scheduled query (BigQuery Data Transfer Service). Display names are not unique: the
# existing config is found by name and updated, never created twice.
schedule_step() {
  say "scheduled query as $AGGREGATES_SA ($AGGREGATES_SCHEDULE)"
  local name="telemetry-aggregates-$ENVIRONMENT" params config="" configs
  params="$(warehouse refresh-params "$DS")"
  if [ "$PLAN" = 0 ]; then
    configs="$(bq --project_id="$PROJECT" ls --transfer_config --transfer_location="$BQ_LOCATION" \
      --max_results=1000 --format=json)" || die "could not list the scheduled queries: $configs"
    config="$(printf '%s' "$configs" | warehouse find-config "$name")" || die "could not read the scheduled queries"
  fi
  if [ -n "$config" ]; then
    run bq --project_id="$PROJECT" update --transfer_config --params="$params" \
      --schedule="$AGGREGATES_SCHEDULE" --update_credentials --service_account_name="$AGGREGATES_SA_EMAIL" "$config"
  else
    run bq --project_id="$PROJECT" --location="$BQ_LOCATION" mk --transfer_config --data_source=scheduled_query \
      --display_name="$name" --schedule="$AGGREGATES_SCHEDULE" --params="$params" \
      --service_account_name="$AGGREGATES_SA_EMAIL"
  fi
}

functions_step() {
  say "functions"
  if [ -n "${MANAGED_SERVICES:-}" ]; then
    # Managed services mint their ID tokens for the function's URL (the cloudfunctions.net one is known
    # before the first deploy).
    export ID_TOKEN_AUDIENCE="${ID_TOKEN_AUDIENCE:-https://$REGION-$PROJECT.cloudfunctions.net/$INGEST_FUNCTION}"
  fi
  local ingest_env
  ingest_env="$(settings env ingest)" || die "the ingest function's settings are invalid (above)"
  # functions-framework's gunicorn serves WORKERS x THREADS requests at once whatever --concurrency says:
  # the two agree, so Cloud Run never sends more than the server can take.
  deploy_function "$INGEST_FUNCTION" --gen2 --runtime=python311 --region="$REGION" \
    --source="$BUILD/ingest" --entry-point=ingest --trigger-http --allow-unauthenticated \
    --ingress-settings="$INGEST_INGRESS" --service-account="$INGEST_SA_EMAIL" \
    --build-service-account="$BUILD_IDENTITY" --set-env-vars="$ingest_env" --max-instances="$INGEST_MAX_INSTANCES" \
    --memory="$INGEST_MEMORY" --cpu="$INGEST_CPU" --concurrency="$((INGEST_WORKERS * INGEST_THREADS))" \
    --timeout=60s "${G[@]}"
}

# The sink's trigger: passing trigger flags to an existing function recreates its Eventarc trigger and push
# subscription, and the backlog with it. They are passed only when the trigger is new, or changed on
# purpose (--allow-trigger-change, after draining: docs/operations.md "Changing the sink's trigger").
trigger_step() {
  local want="projects/$PROJECT/topics/$TOPIC	RETRY_POLICY_RETRY	$PUSH_SA_EMAIL" have="" sink_env
  local flags=(--trigger-topic="$TOPIC" --retry --trigger-service-account="$PUSH_SA_EMAIL")
  # Only "no such function", or a function whose trigger was never made (a first deploy that failed before its
  # trigger stage), means a new trigger; any other failure stops (never trigger flags by mistake).
  if [ "$PLAN" = 0 ] && answer gcloud functions describe "$SINK_FUNCTION" --gen2 --region="$REGION" "${G[@]}" \
      --format='value(eventTrigger.trigger,eventTrigger.pubsubTopic,eventTrigger.retryPolicy,eventTrigger.serviceAccountEmail)'
  then
    [ -z "$(cut -f1 <<<"$ANSWER")" ] || have="$(cut -f2- <<<"$ANSWER")"
  fi
  if [ -z "$have" ]; then
    echo "  the sink's trigger is new: creating it"
  elif [ "$have" = "$want" ]; then
    echo "  the sink's trigger is unchanged: kept (same push subscription, backlog intact)"
    flags=()
  elif [ "$ALLOW_TRIGGER_CHANGE" = 1 ]; then
    echo "  WARNING: the sink's trigger changes ($have -> $want); its push subscription is recreated"
  else
    die "the sink's trigger would change ($have -> $want), which recreates its push subscription and drops its \
backlog. Drain it first (docs/operations.md 'Changing the sink's trigger'), then rerun with --allow-trigger-change"
  fi
  # The sink's gunicorn serves one worker x SINK_CONCURRENCY threads, the same number as --concurrency.
  sink_env="$(WORKERS=1 THREADS="$SINK_CONCURRENCY" settings env sink)" || die "the sink's settings are invalid (above)"
  deploy_function "$SINK_FUNCTION" --gen2 --runtime=python311 --region="$REGION" \
    --source="$BUILD/sink" --entry-point=sink ${flags[@]+"${flags[@]}"} --ingress-settings=internal-only \
    --service-account="$SINK_SA_EMAIL" --build-service-account="$BUILD_IDENTITY" \
    --set-env-vars="$sink_env" --max-instances="$SINK_MAX_INSTANCES" --memory="$SINK_MEMORY" \
    --cpu="$SINK_CPU" --concurrency="$SINK_CONCURRENCY" --timeout="$SINK_TIMEOUT" "${G[@]}"
  # Eventarc pushes as its own account, which may invoke the sink and nothing else.
  retried gcloud functions add-invoker-policy-binding "$SINK_FUNCTION" --region="$REGION" \
    --member="serviceAccount:$PUSH_SA_EMAIL" "${G[@]}"
  subscription_step
}

# The push subscription Eventarc made for the trigger: Eventarc creates it with 24 h retention, so every
# deploy sets the retention (7 days), no expiry, the dead-letter policy, attempts, ack deadline and backoff.
subscription_step() {
  local trigger subscription
  if [ "$PLAN" = 1 ]; then subscription="EVENTARC_SUBSCRIPTION_OF_$SINK_FUNCTION"; else
    # Exactly the subscription of this function's trigger, never another consumer of the topic.
    trigger="$(gcloud functions describe "$SINK_FUNCTION" --gen2 --region="$REGION" \
      --format='value(eventTrigger.trigger)' "${G[@]}")"
    [ -n "$trigger" ] || die "$SINK_FUNCTION has no Eventarc trigger after deploying"
    subscription="$(gcloud eventarc triggers describe "$trigger" --location="$REGION" \
      --format='value(transport.pubsub.subscription)' "${G[@]}")"
    [ -n "$subscription" ] || die "trigger $trigger has no Pub/Sub subscription"
  fi
  echo "  sink subscription: $subscription"
  SINK_SUBSCRIPTION="${subscription##*/}"  # its id, for the dashboard's lag chart
  run gcloud pubsub subscriptions update "$subscription" --dead-letter-topic="$DEAD_LETTER_TOPIC" \
    --max-delivery-attempts="$MAX_DELIVERY_ATTEMPTS" --ack-deadline="$ACK_DEADLINE_SECONDS" \
    --message-retention-duration="$SUBSCRIPTION_RETENTION" --expiration-period=never \
    --min-retry-delay=10s --max-retry-delay=600s "${G[@]}"
  retried gcloud pubsub subscriptions add-iam-policy-binding "$subscription" --member="$PUBSUB_AGENT" \
    --role=roles/pubsub.subscriber "${G[@]}"
}

# The edge's address, reserved before ingest is deployed (the edge step finds it there): ingest gets its IP as
# EDGE_ADDRESS, and behind the load balancer takes the X-Forwarded-For entry before it as the client's address
# (docs/configuration.md). In plan mode the IP is not known yet.
edge_address_step() {
  [ -n "${INGEST_DOMAIN:-}" ] || return 0
  say "edge address"
  local commands
  local -a describe words
  IFS=$'\t' read -r -a describe <<<"$(edge resources | sed -n 's/^address\t//p')"
  [ "${#describe[@]}" -gt 0 ] || die "tools.edge names no address (above)"
  if ! exists gcloud "${describe[@]}" --format='value(address)' "${G[@]}"; then
    commands="$(edge plan-address)" || die "tools.edge cannot plan the address (above)"
    while IFS=$'\t' read -r -u 3 -a words; do run gcloud "${words[@]}" "${G[@]}"; done 3<<<"$commands"
    [ "$PLAN" = 1 ] && { echo "  EDGE_ADDRESS: the new address's IP, passed to ingest"; return 0; }
    answer gcloud "${describe[@]}" --format='value(address)' "${G[@]}" || die "the address just created is not there"
  fi
  export EDGE_ADDRESS="$ANSWER"
  echo "  EDGE_ADDRESS=$EDGE_ADDRESS (ingest: the X-Forwarded-For entry before it is the client)"
}

# The edge (opt-in, INGEST_DOMAIN; docs/operations.md "The domain"): a global external Application Load Balancer
# serving https://INGEST_DOMAIN (HTTP redirected to HTTPS) in front of ingest, with the Cloud Armor policy of
# docs/security.md "Limits at the edge" on its backend. tools.edge names each resource and says, from its
# description, what to run: what is right is left alone, the rest is created or updated in place. The address is
# never recreated, so instances keep resolving the same IP.
edge_step() {
  if [ -z "${INGEST_DOMAIN:-}" ]; then
    echo "  INGEST_DOMAIN is empty: no load balancer; instances send to the function URL"
    return 0
  fi
  say "edge: https://$INGEST_DOMAIN -> load balancer -> Cloud Armor -> $INGEST_FUNCTION (ingress $INGEST_INGRESS)"
  local live="$BUILD/edge" resources resource describe plan ip="" status=""
  local -a words
  rm -rf "$live" && mkdir -p "$live"
  resources="$(edge resources)"
  while IFS=$'\t' read -r -u 3 resource describe; do  # every description first (empty: missing)
    IFS=$'\t' read -r -a words <<<"$describe"
    EDGE_NAMES[$resource]="${words[3]}"
    : > "$live/$resource.json"
    if exists gcloud "${words[@]}" --format=json "${G[@]}"; then printf '%s' "$ANSWER" > "$live/$resource.json"
    elif [ "$resource" = address ]; then  # planning: the edge address step above reserves it
      printf '{"name": "%s"}' "${words[3]}" > "$live/$resource.json"
    fi
  done 3<<<"$resources"
  plan="$(edge plan --live="$live" --files="$BUILD")" || die "the edge cannot be kept as it is (above)"
  while IFS=$'\t' read -r -u 3 -a words; do
    case "${words[0]}" in
      '#') echo "  ${words[1]}" ;;
      dns) ip="${words[1]}" status="${words[2]}" ;;
      *) run gcloud "${words[@]}" "${G[@]}" ;;
    esac
  done 3<<<"$plan"
  if [ "$ip" = - ] && [ "$PLAN" = 0 ]; then  # the address was created just now
    ip="$(gcloud compute addresses describe "${EDGE_NAMES[address]}" --global --format='value(address)' "${G[@]}")"
  fi
  [ "$ip" != - ] || ip=ADDRESS
  echo "  DNS: an A record $INGEST_DOMAIN -> $ip (certificate $status: it provisions once the record points"
  echo "  at the address, up to 60 minutes after; docs/operations.md \"The domain\")"
}

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

# log_metric FILE: create or update the log-based metric named by the file.
log_metric() {
  local metric
  metric="$(basename "$1" .yaml)"
  if exists gcloud logging metrics describe "$metric" "${G[@]}"; then
    run gcloud logging metrics update "$metric" --config-from-file="$1" "${G[@]}"
  else
    run gcloud logging metrics create "$metric" --config-from-file="$1" "${G[@]}"
  fi
}

# What operators watch (files from the deployed version). With a domain, also what Cloud Armor did, by rule (a
# log-based metric over the load balancer's request logs), and the requests that come through the load balancer.
monitoring() {
  say "log-based metrics, the dead-letter alert and the dashboard"
  local file
  for file in "$BUILD"/src/deploy/metrics/*.yaml; do
    log_metric "$file"
  done
  local policy="$BUILD/alert-dead-letter.json" dashboard="$BUILD/dashboard.json"
  sed "s/__SUBSCRIPTION__/$DLQ_PULL/g" "$BUILD/src/deploy/alert-dead-letter.json" > "$policy"
  if [ -n "${NOTIFICATION_CHANNEL:-}" ]; then
    sed -i "s|\"notificationChannels\": \[\]|\"notificationChannels\": [\"$NOTIFICATION_CHANNEL\"]|" "$policy"
  elif [ "$ENVIRONMENT" = prod ]; then
    echo "  WARNING: NOTIFICATION_CHANNEL is empty: the prod dead-letter alert will notify nobody" >&2
  fi
  monitored "Telemetry gateway: dead-letter backlog ($DLQ_PULL)" policies "$policy"
  local names=(-e "s/__ENV__/$ENVIRONMENT/g" -e "s/__INGEST__/$INGEST_FUNCTION/g" -e "s/__SINK__/$SINK_FUNCTION/g"
    -e "s/__DLQ_PULL__/$DLQ_PULL/g" -e "s/__TOPIC__/$TOPIC/g" -e "s/__SINK_SUBSCRIPTION__/$SINK_SUBSCRIPTION/g")
  sed "${names[@]}" "$BUILD/src/deploy/dashboard.json" > "$dashboard"
  if [ -n "${INGEST_DOMAIN:-}" ]; then
    names+=(-e "s/__EDGE_POLICY__/${EDGE_NAMES[policy]}/g" -e "s/__EDGE_URL_MAP__/${EDGE_NAMES[url-map]}/g")
    mkdir -p "$BUILD/metrics-edge"
    for file in "$BUILD"/src/deploy/metrics/edge/*.yaml; do
      sed "${names[@]}" "$file" > "$BUILD/metrics-edge/$(basename "$file")"
      log_metric "$BUILD/metrics-edge/$(basename "$file")"
    done
    sed "${names[@]}" "$BUILD/src/deploy/dashboard-edge.json" > "$BUILD/dashboard-edge.json"
    edge dashboard "$dashboard" "$BUILD/dashboard-edge.json"
  fi
  monitored "Telemetry gateway ($ENVIRONMENT)" dashboards "$dashboard"
}

verify() {
  local url
  if [ "$PLAN" = 1 ]; then
    url="https://$REGION-$PROJECT.cloudfunctions.net/$INGEST_FUNCTION"
    echo "+ gcloud functions describe $INGEST_FUNCTION --gen2 --region=$REGION --format=value(serviceConfig.uri)"
  else
    url="$(gcloud functions describe "$INGEST_FUNCTION" --gen2 --region="$REGION" \
      --format='value(serviceConfig.uri)' "${G[@]}")"
  fi
  if [ -n "${INGEST_DOMAIN:-}" ]; then
    say "ingest URL: https://$INGEST_DOMAIN/v1/events   (version $VERSION; the function URL $url is $INGEST_INGRESS)"
    url="https://$INGEST_DOMAIN"
  else
    say "ingest URL: $url/v1/events   (version $VERSION)"
  fi
  [ "$VERIFY" = 1 ] || return 0
  say "contract tests against $url"
  if [ "$ENVIRONMENT" = dev ]; then
    [ -n "${DEV_VERIFY_LICENSE_KEY:-}" ] || die "--verify on dev needs DEV_VERIFY_LICENSE_KEY (a dev-private license)"
  fi
  # The license travels in the environment, never on a command line or in the printed command.
  TELEMETRY_LICENSE_KEY="${DEV_VERIFY_LICENSE_KEY:-}" run env PYTHONPATH="$ROOT" "$PYTHON" -m pytest \
    "$ROOT/tests/contract" -p no:cacheprovider -q --url "$url" || die "contract tests failed against $url"
}

declare -A EDGE_NAMES=()  # the edge's resources by kind (edge_step), for the dashboard

main() {
  parse_args "$@"
  load_settings
  preflight
  stage
  closing_check   # before anything changes: INGEST_FUNCTION_URL=closed only once the domain serves
  apis
  pubsub
  warehouse_step
  aggregates_step
  analysts_step
  service_accounts
  schedule_step
  trigger_step    # the sink first: it reads every message kind a new ingest may publish (docs/api.md)
  edge_address_step
  functions_step
  edge_step
  monitoring
  verify
  say "done"
}

main "$@"

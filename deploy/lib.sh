# shellcheck shell=bash
# Helpers for deploy.sh (sourced): printing, running or planning commands, and reading gcloud/bq answers.
# How each tool answers is documented in docs/operations.md ("How deploy.sh reads gcloud and bq").

die() { echo "deploy.sh: error: $*" >&2; exit 1; }
say() { echo "==> $*"; }

# run CMD...: printed; run unless planning.
run() {
  echo "+ $(printf '%q ' "$@")"
  [ "$PLAN" = 1 ] || "$@"
}

# What Google answers while a new project's accounts, service agents and grants propagate (docs/operations.md "A
# brand-new project" cites each): an extended regular expression (matched ignoring case: Eventarc writes "permission
# denied", Cloud Functions "Permission denied"), then what the deploy is waiting for.
PROPAGATING=(
  "Service account [^ ]+ does not exist|a new service account or service agent"
  "missing permission on the build service account|the build account's grants"
  "does not have permission to write logs to Cloud Logging|the build account's Logs Writer grant"
  "Access to bucket gcf-(v2-)?sources-[^ ]+ denied|the build account's access to the function's source bucket"
  "Permission denied while using the Eventarc Service Agent|Eventarc's service agent"
  "There were concurrent policy changes|a concurrent change to the same IAM policy"
  "If you enabled this API recently, wait a few minutes|a service enabled moments ago"
  "is not found and cannot be used for API calls|a service enabled moments ago"
)

# unwrapped FILE...: the files' text as one line. bq wraps its error messages at 80 columns, on spaces and after
# hyphens ("Service account\ntelemetry-sink@… does not exist"): a wrap after a hyphen is joined, any other is a space.
unwrapped() {
  cat "$@" | tr '\n' '\r' | sed -e 's/-\r/-/g' -e 's/\r/ /g'
}

# waiting_for FILE...: what the failure text in FILE shows is still propagating (status 1: none of PROPAGATING's).
waiting_for() {
  local entry text
  text="$(unwrapped "$@")"
  for entry in "${PROPAGATING[@]}"; do
    if grep -qiE -- "${entry%%|*}" <<<"$text"; then echo "${entry#*|}"; return 0; fi
  done
  return 1
}

# propagating WAIT CMD...: CMD (printed; planned in plan mode). While it fails with one of PROPAGATING's texts, say
# which one, wait WAIT x the attempt's number seconds and run it again, PROPAGATION_ATTEMPTS (8) times at most: IAM
# changes take up to 7 minutes or more to apply. Any other failure stops the deploy with the tool's own words (bq
# prints its errors on stdout, gcloud on stderr: both are read, and shown).
propagating() {
  local wait="$1" attempt=1 rc what out="$BUILD/propagating.out" err="$BUILD/propagating.err"
  shift
  echo "+ $(printf '%q ' "$@")"
  [ "$PLAN" = 1 ] && return 0
  while true; do
    rc=0
    "$@" >"$out" 2>"$err" || rc=$?
    cat "$out"; cat "$err" >&2
    [ "$rc" = 0 ] && return 0
    what="$(waiting_for "$out" "$err")" || die "$1 $2 $3 failed (exit $rc): the answer above"
    [ "$attempt" -lt "${PROPAGATION_ATTEMPTS:-8}" ] || die "still waiting for $what after $attempt attempts: $*"
    echo "  waiting for $what to propagate: retrying in $((attempt * wait))s (attempt $attempt of ${PROPAGATION_ATTEMPTS:-8})"
    sleep "$((attempt * wait))"
    attempt=$((attempt + 1))
  done
}

# retried CMD...: an IAM binding or grant, retried while the accounts it names propagate.
retried() { propagating "${DEPLOY_RETRY_SECONDS:-5}" "$@"; }

# answer CMD...: a read-only describe/show. ANSWER is what it printed on stdout (return 0), or return 1 when
# the resource is not there. gcloud says so on stderr (`NOT_FOUND`, exit 1), bq on stdout ("BigQuery error in
# show operation: Not found: …", exit 2, stderr empty): both streams are read, but only stdout is the answer.
# Any other failure stops the deploy with the tool's own words (and DESCRIBING, if set). Call it directly (not in a command
# substitution), so that stopping stops the deploy.
answer() {
  local rc err="$BUILD/answer.err" out="$BUILD/answer.out" attempt=1 what
  while true; do
    rc=0
    ANSWER="$("$@" 2>"$err")" || rc=$?
    [ "$rc" = 0 ] && return 0
    # A service enabled moments ago (Compute's first describe on a new project) is waited for, as `propagating`
    # waits; no other propagation text is (a describe's "does not exist" is an answer).
    printf '%s\n' "$ANSWER" >"$out"
    what="$(waiting_for "$out" "$err")" || break
    if [ "$what" != "a service enabled moments ago" ] || [ "$attempt" -ge "${PROPAGATION_ATTEMPTS:-8}" ]; then break; fi
    echo "  waiting for $what to propagate: retrying in $((attempt * ${DEPLOY_RETRY_SECONDS:-5}))s (attempt $attempt of ${PROPAGATION_ATTEMPTS:-8})"
    sleep "$((attempt * ${DEPLOY_RETRY_SECONDS:-5}))"
    attempt=$((attempt + 1))
  done
  # bq says "Not found: Project P" when the project itself is missing (or invisible to you), and Compute says a
  # brand-new project "is not found and cannot be used for API calls" until its API is on: not a missing resource.
  local said
  said="$(unwrapped "$out" "$err")"
  if ! grep -qiE 'Not found: Project|cannot be used for API calls' <<<"$said" &&
    grep -qiE 'NOT_FOUND|not found|does not exist' <<<"$said"; then return 1; fi
  die "${DESCRIBING:-$*} failed (exit $rc): $ANSWER $(cat "$err")"
}

# exists CMD...: whether the resource is there (answer's rule). In plan mode nothing is asked: missing.
exists() {
  if [ "$PLAN" = 1 ]; then
    echo "? $* (checked at deploy time; the plan shows the create)"
    return 1
  fi
  answer "$@"
}

ensure() {  # ensure "<describe command>" <create command...>
  local check="$1"; shift
  # shellcheck disable=SC2086  # the describe command is a word list on purpose
  if exists $check; then echo "  exists: ${check}"; else run "$@"; fi
}

# bq_show REF: ANSWER is the resource as JSON (return 0), or return 1 when BigQuery answers "Not found".
bq_show() { DESCRIBING="bq show $1" answer bq --project_id="$PROJECT" --format=json show "$1"; }

# bq_sql SQL: run a GoogleSQL statement or script (printed; planned in plan mode).
bq_sql() { run bq --project_id="$PROJECT" query --use_legacy_sql=false --nouse_cache "$1"; }

# The project's own CLIs, run from the staged version (`python -m` puts its folder first on the path).
warehouse() { (cd "$BUILD/src" && "$PYTHON" -m tools.warehouse "$@"); }
settings() { (cd "$BUILD/src" && "$PYTHON" -m tools.settings "$@"); }
edge() { (cd "$BUILD/src" && "$PYTHON" -m tools.edge "$@"); }

# deploy_function NAME ARGS...: `gcloud functions deploy`, retried while a new project's build account and service
# agents propagate (its build fails with one of PROPAGATING's texts; so does its first Eventarc trigger).
deploy_function() { propagating "${BUILD_RETRY_SECONDS:-30}" gcloud functions deploy "$@"; }

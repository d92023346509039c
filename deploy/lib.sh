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

# answer CMD...: a read-only describe/show. ANSWER is what it printed on stdout (return 0), or return 1 when
# the resource is not there. gcloud says so on stderr (`NOT_FOUND`, exit 1), bq on stdout ("BigQuery error in
# show operation: Not found: …", exit 2, stderr empty): both streams are read, but only stdout is the answer.
# Any other failure stops the deploy with the tool's own words (and DESCRIBING, if set). Call it directly (not in a command
# substitution), so that stopping stops the deploy.
answer() {
  local rc=0 err="$BUILD/answer.err"
  ANSWER="$("$@" 2>"$err")" || rc=$?
  [ "$rc" = 0 ] && return 0
  if grep -qiE 'NOT_FOUND|not found|does not exist' <<<"$ANSWER $(cat "$err")"; then return 1; fi
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

# deploy_function NAME ARGS...: `gcloud functions deploy`, retried while a new build account's grants
# propagate. Cloud Functions fails such a build with "missing permission on the build service account"
# (docs/operations.md); IAM changes take up to 7 minutes to apply.
deploy_function() {
  local attempt=1 rc err="$BUILD/deploy-$1.err"
  echo "+ $(printf '%q ' gcloud functions deploy "$@")"
  [ "$PLAN" = 1 ] && return 0
  while true; do
    rc=0
    gcloud functions deploy "$@" 2>"$err" || rc=$?
    cat "$err" >&2
    [ "$rc" = 0 ] && return 0
    grep -q "missing permission on the build service account" "$err" || die "deploying $1 failed (exit $rc)"
    [ "$attempt" -lt "${BUILD_RETRIES:-6}" ] || die "the build of $1 still lacks permissions after $attempt attempts"
    echo "  the build account's grants are not applied yet; retrying in ${BUILD_RETRY_SECONDS:-60}s"
    sleep "${BUILD_RETRY_SECONDS:-60}"
    attempt=$((attempt + 1))
  done
}

# Telemetry Gateway — developer entry points. `make test` and `make run` set everything up themselves.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup test test-unit lint run bench fuzz faults soak clean

$(STAMP): requirements.txt requirements-dev.txt functions/ingest/requirements.txt functions/sink/requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	$(BIN)/python -m devtools.emulators
	touch $(STAMP)

setup: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .

# The real-CLI deploy tests (`-m deploy`, tests/deploy/test_real_cli.py: about 12 minutes, mostly gcloud starting
# up) run beside the rest in a second pytest process; their output follows; either failing fails the target.
test: $(STAMP) lint
	@mkdir -p .local
	@$(BIN)/python -m pytest -m deploy -p no:cacheprovider --basetemp=.local/pytest-deploy \
		> .local/test-deploy.log 2>&1 & deploy=$$!; \
	$(BIN)/python -m pytest -m "not deploy"; rest=$$?; \
	wait $$deploy; deployed=$$?; \
	echo "== the real-CLI deploy tests (pytest -m deploy), run beside the above:"; cat .local/test-deploy.log; \
	exit $$(( rest || deployed ))

test-unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit

run: $(STAMP)
	$(BIN)/python -m devtools.run

bench: $(STAMP)
	$(BIN)/python -m bench

fuzz: $(STAMP)
	FUZZ_EXAMPLES=100000 FUZZ_HTTP_EXAMPLES=5000 SCHEMATHESIS_EXAMPLES=1000 $(BIN)/python -m pytest \
		tests/integration/test_fuzz.py tests/integration/test_fuzz_protobuf.py tests/integration/test_openapi.py

# The fault tests FAULTS_RUNS times, each run a fresh pytest process, with 2 CPU burners (stopped by pid):
# one line per run (sent, rows, deduped, lost, seconds); exits non-zero if any run loses anything.
FAULTS_RUNS ?= 10
faults: $(STAMP)
	$(BIN)/python -m devtools.faults --runs $(FAULTS_RUNS) --burners 2

# The whole local pipeline under load at half of `make bench`'s throughput for SOAK_MINUTES (default 30), a fault
# every SOAK_INTERVAL_SECONDS (300) in turn; one line per interval, then the totals (devtools/soak.py).
# Not part of `make test`. Runs `make bench` first when bench/results.json is missing.
soak: $(STAMP)
	test -f bench/results.json || $(BIN)/python -m bench
	$(BIN)/python -m devtools.soak

clean:
	rm -rf $(VENV) .local .pytest_cache .ruff_cache .hypothesis

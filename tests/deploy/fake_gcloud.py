#!/usr/bin/env python3
"""A stand-in for `gcloud` and `bq` (no emulator exists for them): records each call, answers per scenario.

FAKE_LOG: file that gets one JSON line per call. FAKE_STATE: "exists" or "missing" (what describe/show say).
FAKE_FAIL: a substring; a call whose command line contains it fails. FAKE_LOGGED_OUT: no active account.
FAKE_URL: what `functions describe` prints.
"""

import json
import os
import sys

tool = os.path.basename(sys.argv[0])
args = sys.argv[1:]
line = " ".join([tool, *args])
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps([tool, *args]) + "\n")
if os.environ.get("FAKE_FAIL") and os.environ["FAKE_FAIL"] in line:
    print(f"ERROR: ({tool}) fake failure of: {line}", file=sys.stderr)
    sys.exit(1)
exists = os.environ.get("FAKE_STATE") == "exists"
words = [a for a in args if not a.startswith("-")]
if tool == "gcloud" and words[:2] == ["auth", "list"]:
    if not os.environ.get("FAKE_LOGGED_OUT"):
        print("ops@example.com")
elif tool == "gcloud" and words[:2] == ["projects", "describe"]:
    print("123456789")
elif tool == "gcloud" and words[:2] == ["functions", "describe"] and "--format=value(eventTrigger.trigger)" in args:
    print("projects/p/locations/us-central1/triggers/telemetry-sink-123")
elif tool == "gcloud" and words[:2] == ["functions", "describe"]:
    print(os.environ.get("FAKE_URL", "https://ingest.example.run.app"))
elif tool == "gcloud" and words[:3] == ["eventarc", "triggers", "describe"]:
    print("projects/p/subscriptions/eventarc-us-central1-telemetry-sink-123-sub-456")
elif "policies" in words and "list" in words:
    print("projects/p/alertPolicies/1" if exists else "")
elif ("describe" in words or (tool == "bq" and "show" in words)) and not exists:
    print("ERROR: NOT_FOUND", file=sys.stderr)
    sys.exit(1)
sys.exit(0)

"""A realistic benchmark corpus: events as varied as real instances send, so compression is not flattered.

Random UUIDs, per-feature metadata with varied values, private metadata on a third of events, several
feature flags, marketing tracking from web clients, trace ids, millisecond timestamps.
"""

from __future__ import annotations

import gzip
import random
import uuid
from datetime import UTC, datetime, timedelta

import orjson

FEATURES = {
    "cody.completion": (("suggested", "accepted", "noResponse", "partiallyAccepted"),
                        ("durationMs", "charCount", "lineCount", "otherCompletionProviderEnabled", "multiline")),
    "cody.chat-question": (("submitted", "executed"), ("promptLength", "contextFiles", "responseMs", "tokens")),
    "cody.command": (("executed", "failed"), ("durationMs", "contextItems")),
    "blob.codeintel": (("hover", "references", "definition"), ("latencyMs", "resultCount", "precise")),
    "search.results": (("viewed", "submitted"), ("resultCount", "latencyMs", "patternType", "repoCount")),
    "repo.settings": (("viewed",), ("tab",)),
    "batchChanges.changeset": (("created", "merged"), ("changesetCount", "campaignAgeDays")),
}
CLIENTS = (("VSCODE_CODY_EXTENSION", "1.40.2"), ("JETBRAINS_CODY_PLUGIN", "7.1.0"), ("WEB", None),
           ("NEOVIM_CODY", "0.3.1"))
LANGUAGES = ("go", "python", "typescript", "rust", "java", "kotlin", "ruby", "cpp")
FLAGS = ("cody-autocomplete-v2", "search-ranking", "code-insights", "batch-changes-ui", "new-nav", "chat-context")


def _metadata(rng: random.Random, keys: tuple[str, ...]) -> dict:
    return {k: rng.choice((rng.randint(0, 5000), round(rng.uniform(0, 2000), 3), rng.randint(0, 1))) for k in keys}


def event(rng: random.Random, now: datetime, instance: int) -> dict:
    """One event of a realistic mix."""
    feature = rng.choice(list(FEATURES))
    actions, keys = FEATURES[feature]
    client, client_version = rng.choice(CLIENTS)
    when = now - timedelta(milliseconds=rng.randint(1_000, 3 * 86_400_000))
    ev: dict = {
        "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "timestamp": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "feature": feature,
        "action": rng.choice(actions),
        "source": {"server": {"version": f"5.{rng.randint(2, 9)}.{rng.randint(0, 3000)}"},
                   "client": {"name": client, **({"version": client_version} if client_version else {})}},
        "parameters": {"version": rng.randint(0, 3), "metadata": _metadata(rng, keys),
                       "billingMetadata": {"product": "CODY" if feature.startswith("cody") else "CODE_SEARCH",
                                           "category": rng.choice(("CORE", "BILLABLE"))}},
        "user": {"userId": rng.randint(1, 200_000), "anonymousUserId": str(uuid.UUID(int=rng.getrandbits(128)))},
        "featureFlags": {"flags": {f: rng.choice(("true", "false")) for f in rng.sample(FLAGS, rng.randint(2, 5))}},
        "interaction": {"traceId": uuid.UUID(int=rng.getrandbits(128)).hex,
                        "interactionId": str(uuid.UUID(int=rng.getrandbits(128))),
                        "geolocation": {"countryCode": rng.choice(("US", "DE", "IN", "BR", "JP", "GB"))}},
    }
    if rng.random() < 0.33:
        repo = f"github.com/org-{rng.randint(1, 900)}/repo-{rng.randint(1, 99)}"
        ev["parameters"]["privateMetadata"] = {"languageId": rng.choice(LANGUAGES), "repoName": repo,
                                               "model": rng.choice(("fast", "smart", "balanced"))}
    if client == "WEB" and rng.random() < 0.5:
        ev["marketingTracking"] = {"url": f"https://sourcegraph.example.com/search?q={rng.getrandbits(40):x}",
                                   "cohortId": f"2026-{rng.randint(1, 12):02d}",
                                   "deviceSessionId": str(uuid.UUID(int=rng.getrandbits(128)))}
    return ev


def events(count: int, seed: int = 1, instances: int = 5) -> list[dict]:
    """count events from a few instances."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    return [event(rng, now, rng.randrange(instances)) for _ in range(count)]


def describe(sample: list[dict]) -> dict:
    """JSON bytes per event and how well a batch of them compresses (gzip level 5, as the client sends)."""
    raw = orjson.dumps(sample)
    return {"json_bytes_per_event": len(raw) / len(sample),
            "gzip_ratio": len(raw) / len(gzip.compress(raw, 5))}

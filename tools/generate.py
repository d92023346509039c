"""Synthetic, realistic telemetry events for demos, load tests and benchmarks."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

FEATURES = {
    "cody.completion": ("suggested", "accepted", "noResponse"),
    "cody.chat-question": ("submitted", "executed"),
    "cody.command": ("executed", "failed"),
    "blob.codeintel": ("hover", "references", "definition"),
    "search.results": ("viewed", "submitted"),
    "repo.settings": ("viewed",),
    "batchChanges.changeset": ("created", "merged"),
}
CLIENTS = (("VSCODE_CODY_EXTENSION", "1.40.2"), ("JETBRAINS_CODY_PLUGIN", "7.1.0"), ("WEB", None))
VERSIONS = ("5.2.7", "5.3.0", "5.4.1", "5.5.2")


def event(rng: random.Random, now: datetime, days: int, instance: int, skew_s: float = 0.0) -> dict:
    """One event from `instance`, somewhere in the last `days` days, its clock skewed by skew_s."""
    feature = rng.choice(list(FEATURES))
    client_name, client_version = rng.choice(CLIENTS)
    when = now - timedelta(seconds=rng.uniform(60, days * 86400)) + timedelta(seconds=skew_s)
    ev: dict = {
        "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "timestamp": when.isoformat().replace("+00:00", "Z"),
        "feature": feature,
        "action": rng.choice(FEATURES[feature]),
        "source": {"server": {"version": VERSIONS[instance % len(VERSIONS)]},
                   "client": {"name": client_name, **({"version": client_version} if client_version else {})}},
        "parameters": {
            "version": 1,
            "metadata": {"durationMs": round(rng.uniform(5, 900), 1), "charCount": rng.randint(0, 4000),
                         "isStreaming": rng.randint(0, 1)},
            "billingMetadata": {"product": "CODY" if feature.startswith("cody") else "CODE_SEARCH",
                                "category": "CORE"},
        },
        "user": {"userId": rng.randint(1, 5000), "anonymousUserId": f"anon-{rng.randint(1, 9999)}"},
        "featureFlags": {"flags": {"cody-autocomplete-v2": rng.choice(("true", "false"))}},
        "interaction": {"traceId": uuid.UUID(int=rng.getrandbits(128)).hex, "geolocation": {"countryCode": "US"}},
    }
    if rng.random() < 0.1:
        ev["parameters"]["privateMetadata"] = {"languageId": rng.choice(("go", "python", "typescript"))}
    return ev


def generate(count: int, instances: int = 3, days: int = 3, seed: int | None = None) -> Iterator[tuple[str, dict]]:
    """(instance id, event) pairs; a few instances have skewed clocks (minutes ahead or behind)."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    skews = [rng.choice((0.0, 0.0, -600.0, 300.0)) for _ in range(instances)]
    for _ in range(count):
        instance = rng.randrange(instances)
        yield f"instance-{instance + 1:03d}", event(rng, now, days, instance, skews[instance])

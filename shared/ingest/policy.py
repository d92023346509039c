"""The privacy policy ingest enforces before anything is published: who keeps private metadata and tracking.

Sourcegraph keeps `parameters.privateMetadata` only for allowlisted events and marketing tracking only
from Sourcegraph.com; instances apply that rule themselves, and the gateway applies it again (defence in
depth), so one misconfigured or old instance cannot put sensitive data in BigQuery. What is removed is
named in the event's `redacted_fields`, so "removed by policy" differs from "never sent".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path

from shared.errors import ConfigError
from shared.ingest.config import IngestConfig
from shared.settings import setting_lines

PRIVATE_METADATA = "parameters.privateMetadata"
MARKETING_TRACKING = "marketingTracking"
_CACHE_LIMIT = 10_000  # distinct (feature, action) verdicts remembered


def read_allowlist(path: Path | None) -> tuple[tuple[str, str], ...]:
    """`feature:action` patterns, `*` a wildcard in either part; unset: nothing is allowlisted."""
    if path is None:
        return ()
    patterns = []
    for line in setting_lines(path, "PRIVATE_METADATA_ALLOWLIST_FILE"):
        feature, sep, action = line.partition(":")
        if not sep or not feature or not action:
            raise ConfigError(f"PRIVATE_METADATA_ALLOWLIST_FILE={path}: {line!r} is not feature:action")
        patterns.append((feature.strip(), action.strip()))
    return tuple(patterns)


def read_instances(path: Path) -> dict[str, str | None]:
    """`INSTANCE_ID [LICENSE_FINGERPRINT]` lines: an instance id is chosen by the caller, so a line may pin
    the license that must send it (recommended: without it, any licensed caller claiming the id qualifies)."""
    instances: dict[str, str | None] = {}
    for line in setting_lines(path, "MARKETING_TRACKING_INSTANCES_FILE"):
        words = line.split()
        if len(words) > 2:
            raise ConfigError(f"MARKETING_TRACKING_INSTANCES_FILE={path}: {line!r} is not 'INSTANCE_ID [FINGERPRINT]'")
        instances[words[0]] = words[1].lower() if len(words) == 2 else None
    return instances


@dataclass
class PrivacyPolicy:
    """Which events keep private metadata (allowlist) and marketing tracking (listed instances)."""

    private_metadata: tuple[tuple[str, str], ...] = ()
    marketing_instances: dict[str, str | None] = field(default_factory=dict)  # instance id -> license, if pinned
    _verdicts: dict[tuple[str, str], bool] = field(default_factory=dict, repr=False)

    @classmethod
    def from_config(cls, config: IngestConfig) -> PrivacyPolicy:
        """Read the two files (unset: nothing is kept); ConfigError when one cannot be read."""
        instances = config.marketing_tracking_instances_file
        return cls(read_allowlist(config.private_metadata_allowlist_file),
                   read_instances(instances) if instances else {})

    def keeps_private_metadata(self, feature: str, action: str) -> bool:
        """Whether an event of this feature and action may keep parameters.privateMetadata."""
        key = (feature, action)
        verdict = self._verdicts.get(key)
        if verdict is None:
            verdict = any(fnmatchcase(feature, f) and fnmatchcase(action, a) for f, a in self.private_metadata)
            if len(self._verdicts) < _CACHE_LIMIT:
                self._verdicts[key] = verdict
        return verdict

    def keeps_marketing(self, instance_id: str, license_fingerprint: str | None) -> bool:
        """Listed instances keep marketing tracking; a line that names a license also requires that license."""
        if instance_id not in self.marketing_instances:
            return False
        pinned = self.marketing_instances[instance_id]
        return pinned is None or pinned == (license_fingerprint or "").lower()

    def apply(self, event: dict, instance_id: str, license_fingerprint: str | None = None) -> tuple[dict, list[str]]:
        """The event as it may be published, and the fields removed (values that were actually sent)."""
        removed: list[str] = []
        params = event.get("parameters")
        drop_private = isinstance(params, dict) and "privateMetadata" in params and not self.keeps_private_metadata(
            event["feature"], event["action"])
        drop_marketing = "marketingTracking" in event and not self.keeps_marketing(instance_id, license_fingerprint)
        if not (drop_private or drop_marketing):
            return event, removed
        event = dict(event)
        if drop_private:
            if params["privateMetadata"]:
                removed.append(PRIVATE_METADATA)
            event["parameters"] = {k: v for k, v in params.items() if k != "privateMetadata"}
        if drop_marketing and event.pop("marketingTracking"):
            removed.append(MARKETING_TRACKING)
        return event, removed

    def apply_message(self, event: object, instance_id: str, license_fingerprint: str | None = None) -> list[str]:
        """apply() for a telemetrygateway.v1.Event message, cleared in place; the fields removed."""
        removed: list[str] = []
        if event.HasField("parameters"):
            params = event.parameters
            if params.HasField("private_metadata") and not self.keeps_private_metadata(event.feature, event.action):
                if params.private_metadata.fields:
                    removed.append(PRIVATE_METADATA)
                params.ClearField("private_metadata")
        if event.HasField("marketing_tracking") and not self.keeps_marketing(instance_id, license_fingerprint):
            if event.marketing_tracking.ListFields():
                removed.append(MARKETING_TRACKING)
            event.ClearField("marketing_tracking")
        return removed

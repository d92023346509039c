"""Service accounts, project numbers and IAM policies shared by the APIs (IAM is eventually consistent)."""

from __future__ import annotations

import base64
import copy
import hashlib
import threading
from dataclasses import dataclass, field

from tests.deploy.standin.clock import now
from tests.deploy.standin.settings import Settings
from tests.deploy.standin.web import ApiError, invalid


def etag(version: int) -> str:
    """An opaque etag (IAM policies carry base64 bytes)."""
    return base64.b64encode(version.to_bytes(8, "big")).decode()


@dataclass
class Identities:
    """Service accounts and when each last changed (created, or named in a new grant)."""

    settings: Settings
    accounts: dict[str, dict] = field(default_factory=dict)
    changed: dict[str, float] = field(default_factory=dict)
    policies: dict[str, dict] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)

    def project_number(self, project: str) -> str:
        """A stable project number for a project id."""
        digest = int(hashlib.sha256(project.encode()).hexdigest()[:8], 16)
        return str(self.settings.project_number_base + digest % 10**9)

    def touch(self, email: str) -> None:
        """Record that an account was created or granted a role just now."""
        self.changed[email] = now()

    def changed_within(self, email: str, seconds: float) -> bool:
        """Whether the account was created or granted less than `seconds` ago."""
        return seconds > 0 and now() - self.changed.get(email, float("-inf")) < seconds

    def get_policy(self, resource: str) -> dict:
        """The resource's IAM policy (an empty one with an etag at first)."""
        with self.lock:
            policy = self.policies.setdefault(resource, {"version": 1, "etag": etag(1), "_v": 1})
            return {k: copy.deepcopy(v) for k, v in policy.items() if k != "_v"}

    def set_policy(self, resource: str, policy: dict) -> dict:
        """Replace the policy; a stale etag is refused (ABORTED), new members are recorded as just granted."""
        with self.lock:
            current = self.policies.setdefault(resource, {"version": 1, "etag": etag(1), "_v": 1})
            if policy.get("etag") and policy["etag"] != current["etag"]:
                raise ApiError(409, "There were concurrent policy changes. Please retry the whole read-modify-write "
                               "with exponential backoff.", "ABORTED")
            old = {m for b in current.get("bindings", []) for m in b.get("members", [])}
            for binding in policy.get("bindings", []):
                for member in binding.get("members", []):
                    if member.startswith("serviceAccount:") and member not in old:
                        self.check_propagated(member.split(":", 1)[1])
            for binding in policy.get("bindings", []):
                for member in binding.get("members", []):
                    if member.startswith("serviceAccount:"):
                        self.touch(member.split(":", 1)[1])
            version = current["_v"] + 1
            stored = {**copy.deepcopy(policy), "etag": etag(version), "_v": version}
            stored.setdefault("version", 1)
            self.policies[resource] = stored
            return {k: v for k, v in copy.deepcopy(stored).items() if k != "_v"}

    def check_propagated(self, email: str) -> None:
        """A binding naming an account created too recently fails as on Google Cloud (eventual consistency)."""
        created = self.accounts.get(email, {}).get("_created")
        if created is not None and now() - created < self.settings.binding_iam_delay_seconds:
            raise invalid(f"Service account {email} does not exist.")

    def snapshot(self) -> dict:
        """Accounts and policies for tests."""
        with self.lock:
            return {"accounts": {k: {f: v for f, v in a.items() if not f.startswith("_")}
                                 for k, a in self.accounts.items()},
                    "policies": {r: {k: v for k, v in p.items() if k != "_v"} for r, p in self.policies.items()}}

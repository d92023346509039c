"""A project as the APIs share it: its number, its enabled services and their service agents, its service accounts
and IAM policies. A project starts as Google creates one: only the default services on, no agents, no accounts
(SOURCES.md "A brand-new project"); IAM is eventually consistent."""

from __future__ import annotations

import base64
import copy
import hashlib
import re
import threading
from dataclasses import dataclass, field

from tests.deploy.standin.clock import now
from tests.deploy.standin.settings import Settings
from tests.deploy.standin.web import ApiError, invalid

# "Services enabled by default" on every new project (https://cloud.google.com/service-usage/docs/enabled-service#default).
DEFAULT_SERVICES = frozenset({
    "analyticshub.googleapis.com", "bigquery.googleapis.com", "bigqueryconnection.googleapis.com",
    "bigquerydatapolicy.googleapis.com", "bigquerymigration.googleapis.com", "bigqueryreservation.googleapis.com",
    "bigquerystorage.googleapis.com", "cloudapis.googleapis.com", "cloudtrace.googleapis.com",
    "dataform.googleapis.com", "dataplex.googleapis.com", "datastore.googleapis.com", "logging.googleapis.com",
    "monitoring.googleapis.com", "servicemanagement.googleapis.com", "serviceusage.googleapis.com",
    "sql-component.googleapis.com", "storage-api.googleapis.com", "storage-component.googleapis.com",
    "storage.googleapis.com"})
# The service agent each service creates when it is enabled (https://cloud.google.com/iam/docs/service-agents).
AGENTS = {"pubsub.googleapis.com": "service-{number}@gcp-sa-pubsub.iam.gserviceaccount.com",
          "eventarc.googleapis.com": "service-{number}@gcp-sa-eventarc.iam.gserviceaccount.com",
          "cloudfunctions.googleapis.com": "service-{number}@gcf-admin-robot.iam.gserviceaccount.com",
          "run.googleapis.com": "service-{number}@serverless-robot-prod.iam.gserviceaccount.com",
          "cloudbuild.googleapis.com": "service-{number}@gcp-sa-cloudbuild.iam.gserviceaccount.com"}
# The role Google grants an agent on its project when it creates it ("When the service agent is created, Google
# grants this role automatically": https://cloud.google.com/iam/docs/service-agents). Eventarc's agent is created,
# and granted, only when first needed (https://cloud.google.com/eventarc/docs/access-control): not at enable.
AGENT_ROLES = {"pubsub.googleapis.com": "roles/pubsub.serviceAgent",
               "cloudfunctions.googleapis.com": "roles/cloudfunctions.serviceAgent",
               "run.googleapis.com": "roles/run.serviceAgent",
               "cloudbuild.googleapis.com": "roles/cloudbuild.serviceAgent"}
# Each service's title, as its SERVICE_DISABLED answer names it ("<title> has not been used in project N before…").
TITLES = {"iam.googleapis.com": "Identity and Access Management (IAM) API",
          "cloudresourcemanager.googleapis.com": "Cloud Resource Manager API",
          "cloudfunctions.googleapis.com": "Cloud Functions API", "run.googleapis.com": "Cloud Run Admin API",
          "eventarc.googleapis.com": "Eventarc API", "logging.googleapis.com": "Cloud Logging API",
          "monitoring.googleapis.com": "Cloud Monitoring API", "pubsub.googleapis.com": "Cloud Pub/Sub API",
          "compute.googleapis.com": "Compute Engine API", "bigquery.googleapis.com": "BigQuery API",
          "bigquerydatatransfer.googleapis.com": "BigQuery Data Transfer API",
          "cloudbuild.googleapis.com": "Cloud Build API", "artifactregistry.googleapis.com": "Artifact Registry API"}
# A project's user-managed accounts: ACCOUNT@PROJECT.iam.gserviceaccount.com (agents have domains of their own).
USER_MANAGED = re.compile(r"@[a-z][-a-z0-9]{4,28}[a-z0-9]\.iam\.gserviceaccount\.com$")
COMPUTE_DEFAULT = re.compile(r"([0-9]+)-compute@developer\.gserviceaccount\.com")


def etag(version: int) -> str:
    """An opaque etag (IAM policies carry base64 bytes)."""
    return base64.b64encode(version.to_bytes(8, "big")).decode()


def policy_service(resource: str) -> str:
    """The service whose IAM policy this is (for where a new account is not seen yet)."""
    if "/topics/" in resource or "/subscriptions/" in resource:
        return "pubsub"
    return "cloudresourcemanager" if resource.count("/") == 1 else "iam"


@dataclass
class Identities:
    """Service accounts and when each last changed (created, or named in a new grant)."""

    settings: Settings
    accounts: dict[str, dict] = field(default_factory=dict)
    changed: dict[str, float] = field(default_factory=dict)
    policies: dict[str, dict] = field(default_factory=dict)
    enabled: dict[str, set[str]] = field(default_factory=dict)  # project id -> services enabled beyond the defaults
    agents: dict[str, dict] = field(default_factory=dict)  # agent email -> {service, project, unready uses left}
    numbers: dict[str, str] = field(default_factory=dict)  # project number -> project id
    unseen: dict[tuple[str, str], int] = field(default_factory=dict)  # (service, new account) -> refusals so far
    lock: threading.RLock = field(default_factory=threading.RLock)

    def project_number(self, project: str) -> str:
        """A stable project number for a project id."""
        digest = int(hashlib.sha256(project.encode()).hexdigest()[:8], 16)
        number = str(self.settings.project_number_base + digest % 10**9)
        self.numbers[number] = project
        return number

    def project_id(self, project: str) -> str:
        """A project's id from its id or its number (a number never seen is returned as it is)."""
        return self.numbers.get(project, project)

    # --- services and their agents ------------------------------------------------------------------------------

    def is_enabled(self, project: str, service: str) -> bool:
        """Whether the service is on in the project (the defaults always are)."""
        return service in DEFAULT_SERVICES or service in self.enabled.get(self.project_id(project), set())

    def enable(self, project: str, service: str) -> None:
        """Turn a service on; its service agent is created now, usable after agent_unready_uses refused uses."""
        with self.lock:
            self.enabled.setdefault(project, set()).add(service)
            if service in AGENTS:
                self.agents.setdefault(self.agent(project, service), {"service": service, "project": project,
                                               "unready": self.settings.agent_unready_uses})
            if service in AGENT_ROLES:
                member = f"serviceAccount:{self.agent(project, service)}"
                self._bind(f"projects/{project}", AGENT_ROLES[service], member)

    def _bind(self, resource: str, role: str, member: str) -> None:
        """Add a member to a role of a policy as Google's own grants do (the etag moves on); lock held."""
        current = self.policies.setdefault(resource, {"version": 1, "etag": etag(1), "_v": 1})
        bindings = current.setdefault("bindings", [])
        binding = next((b for b in bindings if b["role"] == role and "condition" not in b), None)
        if binding is None:
            bindings.append({"role": role, "members": [member]})
        elif member not in binding["members"]:
            binding["members"].append(member)
        else:
            return
        current["_v"] += 1
        current["etag"] = etag(current["_v"])

    def agent(self, project: str, service: str) -> str:
        """The email of the project's service agent of a service (whether it exists or not)."""
        return AGENTS[service].format(number=self.project_number(project))

    def agent_ready(self, email: str) -> bool:
        """Whether an existing agent's grants have propagated: its first agent_unready_uses uses are refused
        (counted in calls, not seconds, so no machine is too slow for it)."""
        with self.lock:
            agent = self.agents.get(email)
            if agent is None:
                return False
            if agent["unready"] > 0:
                agent["unready"] -= 1
                return False
            return True

    def member_exists(self, email: str) -> bool:
        """Whether a service account exists: a project's own, an agent of an enabled service, the Compute default
        account of a project with Compute on. Accounts outside the domains modelled here are taken as real."""
        if email in self.accounts or email in self.agents:
            return True
        default = COMPUTE_DEFAULT.fullmatch(email)
        if default:
            return self.is_enabled(default.group(1), "compute.googleapis.com")
        agent = email.startswith("service-") and any(t.split("@")[1] == email.split("@")[1] for t in AGENTS.values())
        return not agent and not USER_MANAGED.search(email)

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
                        self.check_member(member.split(":", 1)[1], policy_service(resource))
            for binding in policy.get("bindings", []):
                for member in binding.get("members", []):
                    if member.startswith("serviceAccount:"):
                        self.touch(member.split(":", 1)[1])
            version = current["_v"] + 1
            stored = {**copy.deepcopy(policy), "etag": etag(version), "_v": version}
            stored.setdefault("version", 1)
            self.policies[resource] = stored
            return {k: v for k, v in copy.deepcopy(stored).items() if k != "_v"}

    def check_member(self, email: str, service: str = "iam") -> None:
        """A binding naming an account that does not exist, or not yet everywhere (created too recently; an agent
        whose grants still propagate; an account this stand-in created, in each service for its first
        new_account_refusals_per_service bindings there: IAM is eventually consistent, service by service), fails
        as on Google Cloud: 400 "Service account X does not exist."."""
        created = self.accounts.get(email, {}).get("_created")
        recent = created is not None and now() - created < self.settings.binding_iam_delay_seconds
        with self.lock:
            refused = self.unseen.get((service, email), 0)
            unseen = created is not None and refused < self.settings.new_account_refusals_per_service
            if unseen:
                self.unseen[(service, email)] = refused + 1
        if unseen or recent or not self.member_exists(email) or (email in self.agents and not self.agent_ready(email)):
            raise invalid(f"Service account {email} does not exist.")

    def snapshot(self) -> dict:
        """Accounts and policies for tests."""
        with self.lock:
            return {"accounts": {k: {f: v for f, v in a.items() if not f.startswith("_")}
                                 for k, a in self.accounts.items()},
                    "policies": {r: {k: v for k, v in p.items() if k != "_v"} for r, p in self.policies.items()},
                    "enabled": {p: sorted(s) for p, s in self.enabled.items()}, "agents": copy.deepcopy(self.agents)}

"""Compute Engine v1: what a global external Application Load Balancer in front of a function and its Cloud Armor
policy are made of (SOURCES.md): global addresses, regional serverless network endpoint groups, backend services,
URL maps, managed SSL certificates, target HTTP(S) proxies, global forwarding rules, security policies and their
rules; every change answers a long-running Operation that gcloud waits for (operations.wait), then reads the
resource again."""

from __future__ import annotations

import copy
import hashlib
import itertools
import re
import threading
import uuid

from tests.deploy.standin.apis.armor import check_policy_rule
from tests.deploy.standin.clock import now, rfc3339
from tests.deploy.standin.identity import Identities
from tests.deploy.standin.web import Api, ApiError, Handler, Request, Response, camel_mask, get_path, invalid, ok

NAME = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")  # RFC 1035, at most 63 characters
GLOBAL = ("addresses", "backendServices", "urlMaps", "sslCertificates", "targetHttpsProxies", "targetHttpProxies",
          "forwardingRules", "securityPolicies")
KINDS = {"addresses": "compute#address", "backendServices": "compute#backendService", "urlMaps": "compute#urlMap",
         "sslCertificates": "compute#sslCertificate", "targetHttpsProxies": "compute#targetHttpsProxy",
         "targetHttpProxies": "compute#targetHttpProxy", "forwardingRules": "compute#forwardingRule",
         "securityPolicies": "compute#securityPolicy", "networkEndpointGroups": "compute#networkEndpointGroup"}
# Collections whose fields change through setX methods (POST .../NAME/setX) and are read back by their name.
SETTERS = {"setSecurityPolicy": ("backendServices", "securityPolicy"), "setTarget": ("forwardingRules", "target"),
           "setSslCertificates": ("targetHttpsProxies", "sslCertificates"), "setUrlMap": (None, "urlMap")}
SCHEMES = ("EXTERNAL", "EXTERNAL_MANAGED", "INTERNAL_MANAGED", "INTERNAL_SELF_MANAGED")
DEFAULT_RULE = 2147483647
# The collections with an update (PUT) or a patch (PATCH) method (the SDK's compute_v1_client.py method list);
# addresses, certificates and network endpoint groups have neither.
UPDATABLE = {"update": ("backendServices", "urlMaps"),
             "patch": ("backendServices", "urlMaps", "securityPolicies", "forwardingRules", "targetHttpsProxies",
                       "targetHttpProxies")}
# Resources that carry a fingerprint for optimistic locking (the others carry none, or a labelFingerprint).
FINGERPRINTED = ("backendServices", "urlMaps", "securityPolicies", "forwardingRules", "targetHttpsProxies",
                 "targetHttpProxies")


def compute_error(code: int, reason: str, message: str) -> ApiError:
    """Compute's error body: google.rpc.Status plus the errors[] list (domain global, reason)."""
    return ApiError(code, message, reason=reason)


def not_found(path: str) -> ApiError:
    """404 notFound, as Compute words it."""
    return compute_error(404, "notFound", f"The resource '{path}' was not found")


def name_of(link: str) -> str:
    """A resource's name from its URL or path."""
    return link.rstrip("/").rsplit("/", 1)[-1]


def path_of(link: str) -> str:
    """projects/... of a resource URL (a selfLink) or a partial path."""
    return link[link.index("projects/"):] if "projects/" in link else link


class Compute(Api):
    """Resources by path (projects/P/global/COLLECTION/NAME or projects/P/regions/R/...); every change is recorded
    per resource (snapshot 'changes'), so a test sees what a redeploy touched."""

    name = "compute"

    def __init__(self, identities: Identities) -> None:
        self.identities = identities
        self.resources: dict[str, dict] = {}
        self.changes: dict[str, list[str]] = {}
        self.operations: dict[str, dict] = {}
        self.ids = itertools.count(4_000_000_000_000_000_001)
        self.ips = itertools.count(1)
        self.dns: dict[str, str] = {}  # domain -> the IPv4 address its A record names (tests set it)
        self.lock = threading.RLock()

    def routes(self) -> list[tuple[str, str, Handler]]:
        scope = r"projects/[^/]+/(?:global|regions/[^/]+)"
        collection = r"(?:" + "|".join(GLOBAL) + r"|networkEndpointGroups)"
        item = rf"({scope}/{collection}/[^/]+)"
        policy = r"(projects/[^/]+/global/securityPolicies/[^/]+)"
        return [("GET", rf"v1/({scope}/operations/[^/]+)", self.operation),
                ("POST", rf"v1/({scope}/operations/[^/]+)/wait", self.operation),
                ("POST", rf"v1/{policy}/addRule", self.add_rule),
                ("GET", rf"v1/{policy}/getRule", self.get_rule),
                ("POST", rf"v1/{policy}/patchRule", self.patch_rule),
                ("POST", rf"v1/{policy}/removeRule", self.remove_rule),
                ("POST", rf"v1/{item}/(set[A-Za-z]+)", self.set_field),
                ("POST", r"v1/projects/([^/]+)/(targetHttpsProxies|targetHttpProxies)/([^/]+)/(set[A-Za-z]+)",
                 self.set_proxy_field),
                ("GET", rf"v1/{item}", self.get),
                ("POST", rf"v1/({scope}/{collection})", self.insert),
                ("PUT", rf"v1/{item}", self.update),
                ("PATCH", rf"v1/{item}", self.patch)]

    # --- reading -------------------------------------------------------------------------------------------------

    def get(self, request: Request, path: str) -> Response:
        if "/sslCertificates/" in path:
            with self.lock:
                if path in self.resources:
                    self.provision(path)
        return ok(self.read(path))

    def provision(self, path: str) -> None:
        """A managed certificate's domains become ACTIVE once their A record names the address of a forwarding rule
        whose HTTPS proxy serves the certificate ("Google-managed certificates are provisioned … after the DNS
        records for the domains reference the load balancer's IP address", SOURCES.md "Managed certificates"); an
        ACTIVE certificate stays so."""
        certificate = self.resources[path]
        served_at = {rule.get("IPAddress") for rule in self.resources.values() if rule.get("kind") ==
                     "compute#forwardingRule" and path in map(path_of, self.resources.get(
                         path_of(rule.get("target", "")), {}).get("sslCertificates", []))}
        managed = certificate["managed"]
        managed["domainStatus"] = {d: "ACTIVE" if managed["domainStatus"].get(d) == "ACTIVE" or self.dns.get(d)
                                   in served_at else "PROVISIONING" for d in managed["domains"]}
        if managed["status"] != "ACTIVE" and all(v == "ACTIVE" for v in managed["domainStatus"].values()):
            managed["status"] = "ACTIVE"
            certificate.update({"subjectAlternativeNames": list(managed["domains"]),
                                "expireTime": rfc3339(now() + 90 * 86400)})

    def read(self, path: str) -> dict:
        with self.lock:
            if path not in self.resources:
                raise not_found(path)
            return copy.deepcopy(self.resources[path])

    def require(self, link: str, collection: str, field: str) -> str:
        """The path of a referenced resource of that collection; 404 when it does not exist (as Compute answers
        for a missing referenced resource); 400 when the reference names another kind of resource."""
        path = path_of(link)
        if f"/{collection}/" not in path:
            raise invalid(f"Invalid value for field '{field}': '{link}'. Expected a {collection} resource.")
        if path not in self.resources:
            raise not_found(path)
        return path

    # --- writing -------------------------------------------------------------------------------------------------

    def insert(self, request: Request, parent: str) -> Response:
        body = request.json()
        name = body.get("name", "")
        if not NAME.fullmatch(name):
            raise invalid(f"Invalid value for field 'resource.name': '{name}'. Must be a match of regex "
                          "'(?:[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?)'")
        path = f"{parent}/{name}"
        with self.lock:
            if path in self.resources:
                raise compute_error(409, "alreadyExists", f"The resource '{path}' already exists")
            collection = parent.rsplit("/", 1)[-1]
            resource = self.checked(collection, path, copy.deepcopy(body), None, request.base_url)
            resource.update({"kind": KINDS[collection], "id": str(next(self.ids)), "name": name,
                             "creationTimestamp": rfc3339(), "selfLink": self.link(request.base_url, path)})
            if "/regions/" in path:
                resource["region"] = self.link(request.base_url, path.split(f"/{collection}/")[0])
            self.store(path, resource, "insert")
            return self.operation_for(request, path, "insert")

    def update(self, request: Request, path: str) -> Response:
        """PUT: the body replaces the resource (output-only fields kept); a stale fingerprint is refused."""
        with self.lock:
            current, body, collection = self.change_of(request, path, "update")
            kept = {k: current[k] for k in ("kind", "id", "name", "creationTimestamp", "selfLink", "region")
                    if k in current}
            resource = self.checked(collection, path, {**body, **kept}, current, request.base_url)
            self.store(path, resource, "update")
            return self.operation_for(request, path, "update")

    def patch(self, request: Request, path: str) -> Response:
        """PATCH: the body's fields are merged into the resource (JSON merge patch); rules stay as they are."""
        with self.lock:
            current, body, collection = self.change_of(request, path, "patch")
            body.pop("rules", None)  # "This cannot be used to be update the rules in the policy"
            merged = merge_patch(current, {k: v for k, v in body.items() if k not in ("id", "selfLink", "kind")})
            resource = self.checked(collection, path, merged, current, request.base_url)
            self.store(path, resource, "patch")
            return self.operation_for(request, path, "patch")

    def change_of(self, request: Request, path: str, verb: str) -> tuple[dict, dict, str]:
        """(the resource, the request's body, its collection) of an update or a patch the collection has."""
        current, body, collection = self.read(path), request.json(), path.split("/")[-2]
        if collection not in UPDATABLE[verb]:
            raise compute_error(400, "badRequest", f"{collection} has no {verb} method")
        self.check_fingerprint(current, body)
        return current, body, collection

    def set_proxy_field(self, request: Request, project: str, collection: str, proxy: str, method: str) -> Response:
        """targetHttp(s)Proxies setUrlMap / setSslCertificates live at projects/P/COLLECTION/NAME/setX."""
        return self.set_field(request, f"projects/{project}/global/{collection}/{proxy}", method)

    def set_field(self, request: Request, path: str, method: str) -> Response:
        """POST .../NAME/setX: one field of the resource, checked like an update."""
        if method not in SETTERS:
            raise compute_error(400, "badRequest", f"The stand-in does not serve {method}")
        collection, field = SETTERS[method]
        with self.lock:
            current = self.read(path)
            if collection and f"/{collection}/" not in path:
                raise compute_error(400, "badRequest", f"{method} is not a method of {path}")
            body = request.json()
            value = body.get(field)
            if field == "sslCertificates":
                value = body.get("sslCertificates", [])
            resource = {**current, field: value} if value else {k: v for k, v in current.items() if k != field}
            resource = self.checked(path.split("/")[-2], path, resource, current, request.base_url)
            self.store(path, resource, method)
            return self.operation_for(request, path, method)

    def check_fingerprint(self, current: dict, body: dict) -> None:
        """Compute's optimistic locking on update and patch: "An up-to-date fingerprint must be provided in order to
        update the UrlMap, otherwise the request will fail with error 412 conditionNotMet" (UrlMap.fingerprint; the
        same for backend services, target proxies, forwarding rules and security policies). A missing fingerprint
        is refused like a stale one; the setX methods take none."""
        if current.get("fingerprint") and body.get("fingerprint") != current["fingerprint"]:
            said = "Supplied fingerprint does not match" if body.get("fingerprint") else "No fingerprint was supplied"
            raise compute_error(412, "conditionNotMet", f"{said}: an up-to-date fingerprint must be provided to update "
                                "this resource (read it again and retry).")

    def store(self, path: str, resource: dict, change: str) -> None:
        if path.split("/")[-2] in FINGERPRINTED:
            resource["fingerprint"] = hashlib.sha256(uuid.uuid4().bytes).hexdigest()[:12]
        self.resources[path] = resource
        self.changes.setdefault(path, []).append(change)

    @staticmethod
    def link(base_url: str, path: str) -> str:
        return f"{base_url}/compute/v1/{path}"

    # --- what each collection checks and fills in -----------------------------------------------------------------

    def checked(self, collection: str, path: str, resource: dict, current: dict | None, base: str) -> dict:
        """The resource with its output fields, or the error Compute answers for it."""
        checks = {"addresses": self.check_address, "networkEndpointGroups": self.check_endpoint_group,
                  "backendServices": self.check_backend_service, "urlMaps": self.check_url_map,
                  "sslCertificates": self.check_certificate, "targetHttpsProxies": self.check_https_proxy,
                  "targetHttpProxies": self.check_http_proxy, "forwardingRules": self.check_forwarding_rule,
                  "securityPolicies": self.check_security_policy}
        return checks[collection](path, resource, current, base)

    def check_address(self, path: str, resource: dict, current: dict | None, base: str) -> dict:
        if resource.get("addressType", "EXTERNAL") != "EXTERNAL" or resource.get("networkTier", "PREMIUM") != \
                "PREMIUM":
            raise invalid("A global address must be an EXTERNAL address in the PREMIUM network tier.")
        number = next(self.ips)
        resource.setdefault("address", f"34.117.{number // 250}.{number % 250 + 1}")
        resource.update({"addressType": "EXTERNAL", "networkTier": "PREMIUM", "status": "RESERVED"})
        resource.setdefault("ipVersion", "IPV4")
        return resource

    def check_endpoint_group(self, path: str, resource: dict, current: dict | None, base: str) -> dict:
        if resource.get("networkEndpointType") != "SERVERLESS":
            raise invalid("Only serverless network endpoint groups are served by the stand-in.")
        targets = [k for k in ("cloudRun", "cloudFunction", "appEngine") if resource.get(k)]
        if len(targets) != 1:
            raise invalid("A serverless network endpoint group names exactly one of cloudRun, cloudFunction, "
                          "appEngine.")
        resource.setdefault("size", 0)
        return resource

    def check_backend_service(self, path: str, resource: dict, current: dict | None, base: str) -> dict:
        if resource.get("loadBalancingScheme", "EXTERNAL") not in SCHEMES:
            raise invalid(f"Invalid value for field 'resource.loadBalancingScheme': "
                          f"'{resource.get('loadBalancingScheme')}'.")
        resource.setdefault("loadBalancingScheme", "EXTERNAL")
        resource.setdefault("protocol", "HTTP")
        resource.setdefault("timeoutSec", 30)
        for backend in resource.get("backends", []):
            group = self.require(backend.get("group", ""), "networkEndpointGroups", "resource.backends[].group")
            if self.resources[group].get("networkEndpointType") == "SERVERLESS" and resource.get("healthChecks"):
                raise invalid("A backend service with serverless network endpoint group backends cannot have "
                              "health checks.")
        groups = [path_of(b.get("group", "")) for b in resource.get("backends", [])]
        if len(set(groups)) != len(groups):
            raise invalid("Duplicate backend group in resource.backends.")
        if resource.get("securityPolicy"):
            policy = self.require(resource["securityPolicy"], "securityPolicies", "securityPolicy")
            if resource["loadBalancingScheme"] not in SCHEMES[:3]:
                raise invalid("A Cloud Armor security policy needs a backend service whose load balancing scheme "
                              "is EXTERNAL, EXTERNAL_MANAGED or INTERNAL_MANAGED.")
            resource["securityPolicy"] = self.link(base, policy)
        return resource

    def check_url_map(self, path: str, resource: dict, current: dict | None, base: str) -> dict:
        defaults = [k for k in ("defaultService", "defaultUrlRedirect") if resource.get(k)]
        if len(defaults) != 1:
            raise invalid("A URL map needs exactly one of defaultService or defaultUrlRedirect.")
        if resource.get("defaultService"):
            service = self.require(resource["defaultService"], "backendServices", "resource.defaultService")
            resource["defaultService"] = self.link(base, service)
        return resource

    def check_certificate(self, path: str, resource: dict, current: dict | None, base: str) -> dict:
        domains = resource.get("managed", {}).get("domains", [])
        if resource.get("type") != "MANAGED" or not domains or len(domains) > 100:
            raise invalid("A Google-managed certificate names 1 to 100 domains (type MANAGED).")
        # Provisioning needs the domain's DNS to point at a load balancer that serves the certificate: it never
        # completes here (SOURCES.md, "Managed certificates").
        resource["managed"] = {"domains": domains, "status": "PROVISIONING",
                               "domainStatus": {d: "PROVISIONING" for d in domains}}
        return resource

    def check_https_proxy(self, path: str, resource: dict, current: dict | None, base: str) -> dict:
        resource = self.check_http_proxy(path, resource, current, base)
        certificates = resource.get("sslCertificates", [])
        if not 1 <= len(certificates) <= 15:
            raise invalid("A target HTTPS proxy needs 1 to 15 SSL certificates.")
        resource["sslCertificates"] = [self.link(base, self.require(c, "sslCertificates", "sslCertificates"))
                                       for c in certificates]
        return resource

    def check_http_proxy(self, path: str, resource: dict, current: dict | None, base: str) -> dict:
        resource["urlMap"] = self.link(base, self.require(resource.get("urlMap", ""), "urlMaps", "urlMap"))
        return resource

    def check_forwarding_rule(self, path: str, resource: dict, current: dict | None, base: str) -> dict:
        target = path_of(resource.get("target", ""))
        if "/targetHttpsProxies/" not in target and "/targetHttpProxies/" not in target:
            raise invalid("A global forwarding rule of an Application Load Balancer targets a target HTTP(S) proxy.")
        kind = target.split("/")[-2]
        resource["target"] = self.link(base, self.require(target, kind, "resource.target"))
        scheme = resource.setdefault("loadBalancingScheme", "EXTERNAL")
        for service in self.services_behind(target):
            if self.resources[service]["loadBalancingScheme"] != scheme:
                raise invalid(f"The forwarding rule's load balancing scheme {scheme} does not match backend service "
                              f"{name_of(service)} ({self.resources[service]['loadBalancingScheme']}).")
        resource.setdefault("IPProtocol", "TCP")
        resource.setdefault("networkTier", "PREMIUM")
        address = resource.get("IPAddress", "")
        if current is not None:
            resource["IPAddress"] = current["IPAddress"]  # the address of a forwarding rule never changes
        elif "/" in address:
            reserved = self.require(address, "addresses", "resource.IPAddress")
            users = self.resources[reserved].setdefault("users", [])
            users.append(self.link(base, path))
            self.resources[reserved]["status"] = "IN_USE"
            # "When reading an IPAddress, the API always returns the IP address number."
            resource["IPAddress"] = self.resources[reserved]["address"]
        elif not address:
            raise invalid("The stand-in needs a reserved global address for a forwarding rule (IPAddress).")
        return resource

    def services_behind(self, proxy: str) -> list[str]:
        """The backend services a target proxy reaches through its URL map."""
        url_map = self.resources[proxy].get("urlMap")
        service = self.resources.get(path_of(url_map or ""), {}).get("defaultService")
        return [path_of(service)] if service else []

    def check_security_policy(self, path: str, resource: dict, current: dict | None, base: str) -> dict:
        if resource.get("type", "CLOUD_ARMOR") != "CLOUD_ARMOR":
            raise invalid("The stand-in serves security policies of type CLOUD_ARMOR.")
        resource["type"] = "CLOUD_ARMOR"
        if current is None:
            # "If no rules are provided when creating a security policy, a default rule with action allow will be
            # added"; "There must always be a default rule" (priority 2147483647, matching every source IP).
            rules = resource.get("rules") or [{"priority": DEFAULT_RULE, "action": "allow", "description":
                                               "default rule", "preview": False,
                                               "match": {"versionedExpr": "SRC_IPS_V1",
                                                         "config": {"srcIpRanges": ["*"]}}}]
            default = [r for r in rules if r.get("priority") == DEFAULT_RULE]
            if len(default) != 1 or default[0].get("match", {}).get("config", {}).get("srcIpRanges") != ["*"]:
                raise invalid("A security policy must have a default rule: priority 2147483647, matching '*'.")
            if len({r.get("priority") for r in rules}) != len(rules):
                raise invalid("Cannot have rules with the same priorities.")
            resource["rules"] = sorted((self.rule(r, None) for r in rules), key=lambda r: r["priority"])
        else:
            resource["rules"] = current["rules"]
        return resource

    # --- security policy rules ------------------------------------------------------------------------------------

    @staticmethod
    def rule(body: dict, current: dict | None) -> dict:
        """A checked rule, with the fields Compute fills in."""
        rule = {"kind": "compute#securityPolicyRule", "preview": False, **body}
        check_policy_rule(rule, current)
        return rule

    def priority(self, request: Request) -> int:
        raw = request.arg("priority", "0")
        if not str(raw).isdigit():
            raise invalid(f"Invalid value for field 'priority': '{raw}'.")
        return int(raw)

    def add_rule(self, request: Request, path: str) -> Response:
        with self.lock:
            policy = self.read(path)
            rule = self.rule(request.json(), None)
            if any(r["priority"] == rule["priority"] for r in policy["rules"]):
                raise invalid(f"Cannot have rules with the same priorities: {rule['priority']}.")
            policy["rules"] = sorted([*policy["rules"], rule], key=lambda r: r["priority"])
            self.store(path, policy, f"addRule {rule['priority']}")
            return self.operation_for(request, path, "addRule")

    def get_rule(self, request: Request, path: str) -> Response:
        policy, priority = self.read(path), self.priority(request)
        for rule in policy["rules"]:
            if rule["priority"] == priority:
                return ok(rule)
        raise invalid(f"Invalid value for field 'priority': '{priority}'. The rule does not exist.")

    def patch_rule(self, request: Request, path: str) -> Response:
        with self.lock:
            policy, priority = self.read(path), self.priority(request)
            index = next((i for i, r in enumerate(policy["rules"]) if r["priority"] == priority), None)
            if index is None:
                raise invalid(f"Invalid value for field 'priority': '{priority}'. The rule does not exist.")
            body = request.json()
            current = policy["rules"][index]
            merged = merge_patch(current, {**body, "priority": body.get("priority", priority)})
            for field in camel_mask(request.arg("updateMask")):  # masked fields absent from the body are cleared
                if get_path(body, field) is None:
                    clear(merged, field)
            policy["rules"][index] = self.rule(merged, current)
            policy["rules"].sort(key=lambda r: r["priority"])
            self.store(path, policy, f"patchRule {priority}")
            return self.operation_for(request, path, "patchRule")

    def remove_rule(self, request: Request, path: str) -> Response:
        with self.lock:
            policy, priority = self.read(path), self.priority(request)
            if priority == DEFAULT_RULE:
                raise invalid("The default rule cannot be removed.")
            kept = [r for r in policy["rules"] if r["priority"] != priority]
            if len(kept) == len(policy["rules"]):
                raise invalid(f"Invalid value for field 'priority': '{priority}'. The rule does not exist.")
            policy["rules"] = kept
            self.store(path, policy, f"removeRule {priority}")
            return self.operation_for(request, path, "removeRule")

    # --- operations ------------------------------------------------------------------------------------------------

    def operation_for(self, request: Request, path: str, verb: str) -> Response:
        """A RUNNING Operation; it is DONE when gcloud first waits for it or reads it."""
        scope = "/".join(path.split("/")[:3]) if "/global/" in path else "/".join(path.split("/")[:4])
        name = f"operation-{uuid.uuid4().int % 10**13}-{uuid.uuid4().hex[:12]}"
        operation = {"kind": "compute#operation", "id": str(next(self.ids)), "name": name, "operationType": verb,
                     "targetLink": self.link(request.base_url, path), "targetId": self.resources[path]["id"],
                     "status": "RUNNING", "user": "deployer@standin-tests.iam.gserviceaccount.com", "progress": 0,
                     "insertTime": rfc3339(), "startTime": rfc3339(),
                     "selfLink": self.link(request.base_url, f"{scope}/operations/{name}")}
        if "/regions/" in scope:
            operation["region"] = self.link(request.base_url, scope)
        self.operations[f"{scope}/operations/{name}"] = operation
        return ok(operation)

    def operation(self, request: Request, path: str) -> Response:
        operation = self.operations.get(path)
        if operation is None:
            raise not_found(path)
        operation.update({"status": "DONE", "progress": 100})
        operation.setdefault("endTime", rfc3339())
        return ok(operation)

    def snapshot(self) -> dict:
        with self.lock:
            return {"resources": copy.deepcopy(self.resources), "changes": copy.deepcopy(self.changes)}


def merge_patch(target: dict, patch: dict) -> dict:
    """JSON merge patch (RFC 7386), which Compute's PATCH methods follow: objects merge, null deletes."""
    merged = copy.deepcopy(target)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_patch(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def clear(obj: dict, dotted: str) -> None:
    """Remove the field at a dotted path, if there."""
    *parents, leaf = dotted.split(".")
    for part in parents:
        obj = obj.get(part) if isinstance(obj, dict) else None
        if obj is None:
            return
    if isinstance(obj, dict):
        obj.pop(leaf, None)

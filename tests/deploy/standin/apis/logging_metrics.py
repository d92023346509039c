"""Cloud Logging v2: projects.metrics get / create / update (log-based metrics).

"The metric_kind and value_type fields in the metric_descriptor cannot be updated once initially configured. New
labels can be added in the metric_descriptor, but existing labels cannot be modified except for their description"
(LogMetric.metric_descriptor, https://cloud.google.com/logging/docs/reference/v2/rest/v2/projects.metrics): such an
update is refused with 400 INVALID_ARGUMENT (the wording is the stand-in's)."""

from __future__ import annotations

from tests.deploy.standin.clock import rfc3339
from tests.deploy.standin.web import Api, Handler, Request, Response, already_exists, invalid, not_found, ok


class LoggingMetrics(Api):
    """Log-based metrics by project and name; each counts its updates."""

    name = "logging"

    def __init__(self) -> None:
        self.metrics: dict[str, dict] = {}
        self.updates: dict[str, int] = {}

    def routes(self) -> list[tuple[str, str, Handler]]:
        return [("GET", r"v2/(projects/[^/]+)/metrics/([^/:]+)", self.get),
                ("POST", r"v2/(projects/[^/]+)/metrics", self.create),
                ("PUT", r"v2/(projects/[^/]+)/metrics/([^/:]+)", self.update)]

    def get(self, request: Request, parent: str, metric: str) -> Response:
        key = f"{parent}/metrics/{metric}"
        if key not in self.metrics:
            raise not_found(f"Metric {metric} does not exist.")
        return ok(self.metrics[key])

    def stored(self, key: str, name: str, body: dict, created: str | None) -> dict:
        if not body.get("filter"):
            raise invalid("A log-based metric needs a filter.")
        stamp = rfc3339()
        metric = {**body, "name": name, "createTime": created or stamp, "updateTime": stamp}
        descriptor = metric.setdefault("metricDescriptor", {})
        descriptor.setdefault("metricKind", "DELTA")
        descriptor.setdefault("valueType", "INT64")
        descriptor["type"] = f"logging.googleapis.com/user/{name}"
        descriptor["name"] = f"{key.split('/metrics/')[0]}/metricDescriptors/logging.googleapis.com/user/{name}"
        self.metrics[key] = metric
        return metric

    def create(self, request: Request, parent: str) -> Response:
        body = request.json()
        name = body.get("name", "")
        key = f"{parent}/metrics/{name}"
        if key in self.metrics:
            raise already_exists(f"Metric {name} already exists.")
        self.updates[key] = 0
        return ok(self.stored(key, name, body, None))

    def update(self, request: Request, parent: str, metric: str) -> Response:
        """PUT "Creates or updates a logs-based metric" (projects.metrics.update; gcloud's generated
        logging_v2_client.py says the same): a missing one is created."""
        key = f"{parent}/metrics/{metric}"
        body = request.json()
        if body.get("name", metric) != metric:  # "The updated metric. Its name field must be the same as [METRIC_ID]"
            raise invalid(f"The metric's name {body.get('name')!r} is not the metric updated ({metric!r}).")
        if key not in self.metrics:
            self.updates[key] = 0
            return ok(self.stored(key, metric, body, None))
        check_immutable(self.metrics[key]["metricDescriptor"], body.get("metricDescriptor") or {})
        self.updates[key] += 1
        return ok(self.stored(key, metric, body, self.metrics[key]["createTime"]))

    def snapshot(self) -> dict:
        return {"metrics": self.metrics, "updates": self.updates}


def check_immutable(current: dict, wanted: dict) -> None:
    """400 when an update changes the descriptor's kind or value type, or an existing label (beyond its
    description), or drops one."""
    for field, default in (("metricKind", "DELTA"), ("valueType", "INT64")):
        if wanted.get(field, default) != current.get(field, default):
            raise invalid(f"The {field} of a log-based metric cannot be updated once set: it is "
                          f"{current.get(field, default)}, the update asks for {wanted.get(field, default)}.")
    labels = {label["key"]: label for label in wanted.get("labels", [])}
    for label in current.get("labels", []):
        new = labels.get(label["key"])
        if new is None or new.get("valueType", "STRING") != label.get("valueType", "STRING"):
            raise invalid(f"The existing label {label['key']!r} of a log-based metric cannot be modified or removed; "
                          "only its description can change.")

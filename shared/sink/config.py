"""The sink's settings (also what the tools that read BigQuery use), each declared once."""

from __future__ import annotations

from dataclasses import dataclass

from shared.settings import Settings, integer, positive, setting, text


@dataclass(frozen=True)
class SinkConfig(Settings):
    """Settings of the sink function of one deployment, and of the warehouse it writes."""

    bq_dataset: str = setting("BQ_DATASET", "telemetry", text, "Dataset of the tables, views and aggregates.")
    bq_timeout_s: float = setting(
        "BQ_TIMEOUT_SECONDS", 20.0, positive, "Bound on every BigQuery call (and on opening an AppendRows "
        "connection).")
    bq_retry_budget_s: float = setting(
        "BQ_RETRY_BUDGET_SECONDS", 30.0, positive, "How long one append is retried inside a delivery on transient "
        "errors (well inside the ack deadline) before the delivery fails and Pub/Sub redelivers.")
    events_partition_expiration_days: int = setting(
        "EVENTS_PARTITION_EXPIRATION_DAYS", 730, integer(minimum=1), "Days BigQuery keeps a partition of `events` "
        "and of the daily aggregates (deploy.sh sets it on every deploy).")
    rejected_partition_expiration_days: int = setting(
        "REJECTED_PARTITION_EXPIRATION_DAYS", 30, integer(minimum=1), "Days BigQuery keeps a partition of "
        "`rejected_events`.")
    requests_partition_expiration_days: int = setting(
        "REQUESTS_PARTITION_EXPIRATION_DAYS", 400, integer(minimum=1), "Days BigQuery keeps a partition of "
        "`requests` (the request log; the logs themselves are kept 30 days).")
    bigquery_emulator_host: str | None = setting(
        "BIGQUERY_EMULATOR_HOST", None, text, "Use the BigQuery emulator's REST port (anonymous credentials).",
        local=True)
    bigquery_emulator_grpc_host: str | None = setting(
        "BIGQUERY_EMULATOR_GRPC_HOST", None, text, "Use the BigQuery emulator's Storage Write gRPC port.", local=True)

    @property
    def dataset_ref(self) -> str:
        """project.dataset."""
        return f"{self.project}.{self.bq_dataset}"

    def expiration_days(self, setting_name: str) -> int:
        """A table's partition expiration, by the name of its setting (TableDef.expiration_setting)."""
        return getattr(self, self.setting_for(setting_name)[0])

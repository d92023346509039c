"""Cost per million events from measured bytes and request durations, billed the way Google bills them.

Public list prices (USD, us-central1 / tier 1) as named constants; sources in docs/performance.md
("Price sources"). Functions (2nd gen) are Cloud Run services billed per request: the allocated
vCPU and memory for the request's duration rounded up to 100 ms, plus a per-request fee. This is an upper
bound when an instance serves several requests at once (their time overlaps and is billed once).
"""

from __future__ import annotations

import math

TIB = 1024**4
GIB = 1024**3
PUBSUB_THROUGHPUT_PER_TIB = 40.0          # publish, and again for delivery
PUBSUB_MIN_BYTES = 1000                   # billed at least per publish / push request
BQ_STORAGE_WRITE_PER_GIB = 0.025          # Storage Write API ingestion (first 2 TiB/month free: not counted)
BQ_SUBSCRIPTION_PER_TIB = 50.0            # Pub/Sub -> BigQuery subscription write
BQ_ACTIVE_STORAGE_GIB_MONTH = 0.02        # logical storage, partitions modified in the last 90 days
BQ_LONG_TERM_STORAGE_GIB_MONTH = 0.01     # after 90 days unmodified
RUN_VCPU_SECOND = 0.000024                # request-based billing
RUN_GIB_SECOND = 0.0000025
RUN_PER_MILLION_REQUESTS = 0.40
BILLING_GRANULARITY_S = 0.1
INGEST = {"vcpu": 1.0, "gib": 0.5}        # --cpu=1 --memory=512Mi as deployed
SINK = {"vcpu": 1 / 3, "gib": 0.5}        # --memory=512Mi: 0.333 vCPU
BATCH = 500


def request_cost(seconds: float, size: dict) -> float:
    """One request: allocated vCPU and memory for its duration rounded up to 100 ms, plus the request fee."""
    billed = math.ceil(seconds / BILLING_GRANULARITY_S - 1e-9) * BILLING_GRANULARITY_S
    return billed * (size["vcpu"] * RUN_VCPU_SECOND + size["gib"] * RUN_GIB_SECOND) + RUN_PER_MILLION_REQUESTS / 1e6


def _pubsub(messages: float, bytes_each: float) -> float:
    """Publish + one push delivery, each billed at least 1,000 bytes."""
    return 2 * messages * max(PUBSUB_MIN_BYTES, bytes_each) / TIB * PUBSUB_THROUGHPUT_PER_TIB


def model(m: dict) -> dict:
    """$ per million events for three designs, from measured per-event bytes and per-request seconds in m.

    m: ingest_request_s (one 500-event request), sink_message_s (one 500-event message), row_bytes,
    pubsub_bytes_per_event, event_json_bytes.
    """
    n = 1e6
    requests = n / BATCH
    ingest = requests * request_cost(m["ingest_request_s"], INGEST)
    storage_write = n * m["row_bytes"] / GIB * BQ_STORAGE_WRITE_PER_GIB
    stored_gib = n * m["row_bytes"] / GIB
    batched = {
        "pubsub": _pubsub(requests, m["pubsub_bytes_per_event"] * BATCH),
        "functions": ingest + requests * request_cost(m["sink_message_s"], SINK),
        "bigquery": storage_write,
    }
    per_event = {  # Sourcegraph's gateway: one uncompressed message per event, a sink invocation per message
        "pubsub": _pubsub(n, m["event_json_bytes"]),
        "functions": ingest + n * request_cost(m["sink_message_s"] / BATCH, SINK),
        "bigquery": storage_write,
    }
    subscription = {  # one message per event straight into a BigQuery subscription: no sink function
        "pubsub": n * max(PUBSUB_MIN_BYTES, m["event_json_bytes"]) / TIB * PUBSUB_THROUGHPUT_PER_TIB,
        "functions": ingest,
        "bigquery": n * max(PUBSUB_MIN_BYTES, m["event_json_bytes"]) / TIB * BQ_SUBSCRIPTION_PER_TIB,
    }
    designs = {"a_batched_gzip_storage_write": batched, "b_message_per_event": per_event,
               "c_message_per_event_bq_subscription": subscription}
    result: dict = {name: {**parts, "total": sum(parts.values())} for name, parts in designs.items()}
    result["storage_per_million_events_month"] = {"gib": stored_gib,
                                                  "active": stored_gib * BQ_ACTIVE_STORAGE_GIB_MONTH,
                                                  "long_term": stored_gib * BQ_LONG_TERM_STORAGE_GIB_MONTH}
    return result


# The edge (opt-in with INGEST_DOMAIN): a global external Application Load Balancer and a Cloud Armor Standard
# policy (docs/security.md "Limits at the edge"). List prices, USD, from the pages named in docs/performance.md.
LB_FIRST_5_FORWARDING_RULES_HOUR = 0.025  # Cloud Load Balancing pricing: up to 5 global forwarding rules together
LB_EXTRA_FORWARDING_RULE_HOUR = 0.01      # each global forwarding rule after the 5th
LB_DATA_PROCESSED_PER_GIB = 0.008         # inbound and again outbound data processed (Iowa, us-central1)
ARMOR_POLICY_MONTH = 5.0                  # Cloud Armor Standard pricing: per security policy
ARMOR_RULE_MONTH = 1.0                    # per rule
ARMOR_PER_MILLION_REQUESTS = 0.75         # per million requests the policy evaluates
HOURS_PER_MONTH = 730
EDGE_FORWARDING_RULES = 2                 # HTTPS, and HTTP (redirected to HTTPS)
EDGE_ARMOR_RULES = 5                      # the four of tools/armor.py, and the default rule
RESPONSE_BYTES_PER_EVENT = 39             # the answer lists each succeeded event's id: a quoted UUID and a comma


def edge_monthly(forwarding_rules: int = EDGE_FORWARDING_RULES, armor_rules: int = EDGE_ARMOR_RULES) -> dict:
    """The edge's fixed monthly price, whatever the traffic: forwarding rules by the hour, the policy and its rules."""
    rules_hour = LB_FIRST_5_FORWARDING_RULES_HOUR + max(0, forwarding_rules - 5) * LB_EXTRA_FORWARDING_RULE_HOUR
    parts = {"load_balancer": rules_hour * HOURS_PER_MONTH,
             "cloud_armor": ARMOR_POLICY_MONTH + armor_rules * ARMOR_RULE_MONTH}
    return {**parts, "total": sum(parts.values())}


def edge_per_million_events(request_bytes_per_event: float, batch: int = BATCH) -> dict:
    """What the edge adds per million events: the data it processes both ways, and Cloud Armor's request fee.

    request_bytes_per_event: a request's body on the wire (gzip'd) per event it carries.
    """
    n = 1e6
    processed = n * (request_bytes_per_event + RESPONSE_BYTES_PER_EVENT) / GIB
    parts = {"load_balancer": processed * LB_DATA_PROCESSED_PER_GIB,
             "cloud_armor": n / batch * ARMOR_PER_MILLION_REQUESTS / 1e6}
    return {**parts, "total": sum(parts.values()), "per_request": sum(parts.values()) / (n / batch)}


def request_log_per_million_events(m: dict, rows_per_message: float, batch: int = BATCH) -> dict:
    """What the request log adds per million events sent in batches of `batch` (one row per request).

    m (bench/request_log.py): ingest_s_per_request and sink_s_per_request (CPU), row_bytes (a stored row),
    message_bytes_per_row and single_row_message_bytes (gzip'd messages). rows_per_message: 1 for an idle
    instance (every row its own message and sink invocation), more when requests come together. The ingest
    work falls inside requests already billed (not rounded up again); every sink invocation is billed.
    """
    rows = 1e6 / batch
    messages = rows / rows_per_message
    message_bytes = (m["single_row_message_bytes"] if rows_per_message == 1
                     else m["message_bytes_per_row"] * rows_per_message)
    sink_s = m["sink_s_per_request"] * rows_per_message / SINK["vcpu"]
    parts = {
        "pubsub": _pubsub(messages, message_bytes),
        "functions": rows * m["ingest_s_per_request"] * INGEST["vcpu"] * RUN_VCPU_SECOND
        + messages * request_cost(sink_s, SINK),
        "bigquery": rows * m["row_bytes"] / GIB * BQ_STORAGE_WRITE_PER_GIB,
    }
    return {**parts, "total": sum(parts.values()),
            "storage_month": rows * m["row_bytes"] / GIB * BQ_ACTIVE_STORAGE_GIB_MONTH}

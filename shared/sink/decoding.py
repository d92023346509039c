"""The one decoding step the sink and the dead-letter redrive share: a message's data and attributes -> what the
sink loads, or PoisonMessage with its reason code (nothing an event holds makes a message poison)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from shared.envelope import Batch, PoisonMessage, decode, decode_requests, is_requests
from shared.sink.rows import RowProblem, context_columns, micros, row_time


@dataclass(frozen=True)
class Decoded:
    """A loadable message: request-log rows, or an events batch and the columns all its rows share."""

    requests: list[dict] | None = None
    batch: Batch | None = None
    context: dict | None = None


def decode_message(data: bytes, attributes: Mapping[str, str], message_id: str,
                   publish_time: str | None = None) -> Decoded:
    """Decode a message as the sink loads it; PoisonMessage if no delivery ever could."""
    attributes = dict(attributes)
    if is_requests(attributes):
        return Decoded(requests=decode_requests(data, attributes))
    batch = decode(data, attributes)
    try:
        published = micros(row_time(publish_time)) if publish_time else None
        return Decoded(batch=batch, context=context_columns(batch, message_id, published))
    except RowProblem as exc:  # the envelope itself is unusable: no redelivery can fix it
        raise PoisonMessage("envelope_unusable", exc.detail) from None

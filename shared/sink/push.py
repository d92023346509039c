"""The Pub/Sub message inside a pushed 'message published' CloudEvent (Eventarc or emulator push)."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from shared.envelope import PoisonMessage


def _message(data: object) -> dict | None:
    message = data.get("message") if isinstance(data, dict) else None
    return message if isinstance(message, dict) else None


def message_id(data: object) -> str | None:
    """The message id of the CloudEvent data, in either spelling; None when absent."""
    message = _message(data) or {}
    found = message.get("messageId") or message.get("message_id")
    return str(found) if found else None


@dataclass(frozen=True)
class PushedMessage:
    """The Pub/Sub message inside a 'message published' CloudEvent."""

    message_id: str
    data: bytes
    attributes: dict
    publish_time: str | None


def pushed_message(data: object) -> PushedMessage:
    """Extract the message from the CloudEvent data (Eventarc or emulator push); PoisonMessage if absent."""
    message = _message(data)
    if message is None:
        raise PoisonMessage("no_pubsub_message", "CloudEvent carries no Pub/Sub message")
    found_id = message_id(data)
    try:
        payload = base64.b64decode(message.get("data") or "", validate=True)
    except (binascii.Error, TypeError, ValueError):
        raise PoisonMessage("data_not_base64", "message data is not base64") from None
    if not found_id:
        raise PoisonMessage("no_message_id", "message has no messageId")
    attributes = message.get("attributes") or {}
    return PushedMessage(found_id, payload, attributes if isinstance(attributes, dict) else {},
                         message.get("publishTime") or message.get("publish_time"))

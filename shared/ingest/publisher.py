"""Publishing batches to Pub/Sub: one lazily created, reused client with bounded retries."""

from __future__ import annotations

import threading
from concurrent import futures

from google.api_core import exceptions as gexc
from google.api_core.retry import Retry
from google.cloud import pubsub_v1

from shared.envelope import MAX_BATCH_BYTES
from shared.errors import Unavailable

TRANSIENT = (gexc.GoogleAPICallError, gexc.RetryError, futures.TimeoutError, TimeoutError, ConnectionError)


class Publisher:
    """Publishes to one topic; the client is created on first use (after env is set)."""

    def __init__(self, topic_path: str, timeout_s: float, retry_after_s: int) -> None:
        self.topic_path = topic_path
        self._timeout = timeout_s
        self._retry_after = retry_after_s
        self._retry = Retry(initial=0.1, maximum=1.0, multiplier=2.0, timeout=timeout_s)  # both ways of publishing
        self._client: pubsub_v1.PublisherClient | None = None
        self._lock = threading.Lock()

    @property
    def client(self) -> pubsub_v1.PublisherClient:
        """The shared client, created once."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = pubsub_v1.PublisherClient(
                        batch_settings=pubsub_v1.types.BatchSettings(
                            max_messages=100, max_bytes=MAX_BATCH_BYTES, max_latency=0.001
                        ),
                        publisher_options=pubsub_v1.types.PublisherOptions(retry=self._retry, timeout=self._timeout),
                    )
        return self._client

    def publish(self, data: bytes, attributes: dict) -> str:
        """Publish and wait for the server's confirmation; return the message id or raise Unavailable."""
        try:
            future = self.client.publish(self.topic_path, data, **attributes)
            return future.result(timeout=self._timeout + 2)
        except TRANSIENT as exc:
            raise self._unavailable(exc) from exc

    def publish_now(self, data: bytes, attributes: dict) -> str:
        """publish(), sent from this thread by the client's own API call (no batching, so no thread of the client's
        is woken or started: an instance may have no CPU once its request ends, and Python 3.12+ refuses a new
        thread at exit); the message id, or raise Unavailable."""
        try:
            answer = self.client.api.publish(topic=self.topic_path, messages=[{"data": data, "attributes": attributes}],
                                             retry=self._retry, timeout=self._timeout)
            return answer.message_ids[0]
        except TRANSIENT as exc:
            raise self._unavailable(exc) from exc

    def _unavailable(self, exc: Exception) -> Unavailable:
        return Unavailable("pubsub_unavailable", f"could not publish to Pub/Sub ({type(exc).__name__}); retry later",
                           retry_after=self._retry_after)

    def topic_exists(self) -> bool:
        """Heartbeat: the topic can be reached and exists."""
        try:
            self.client.get_topic(request={"topic": self.topic_path}, timeout=3.0, retry=None)
            return True
        except TRANSIENT:
            return False

"""The local Pub/Sub emulator redelivers failed pushes as real Pub/Sub does (devtools/pubsub_emulator_fix)."""

from __future__ import annotations

import pytest

from devtools.pubsub_redelivery_repro import run

pytestmark = pytest.mark.integration


def test_pushes_that_fail_together_are_redelivered_until_acked():
    """Two messages whose pushes fail 3 times at the same instants are each delivered a 4th time.

    The stock emulator 0.8.20 stops redelivering them after the third (its redelivery task dies).
    """
    assert run(patched=True) == 0

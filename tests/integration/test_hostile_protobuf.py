"""test_hostile.py's attacks with protobuf bodies (application/x-protobuf), measured over real HTTP against
functions-framework/gunicorn as deployed (1 worker, 8 threads).

Bombs that must be refused before they are parsed (empty events by the million, undeclared top-level fields,
a body whose parse could exceed the budget, gzip bombs); bombs within the limits, whose parse the ParseBudget
must bound (the worker's peak RSS measured; as deployed it is not, see ARENA_RETENTION); nesting below and
beyond upb's recursion limit; an event of exactly MAX_EVENT_BYTES. The trickled-body tests run for both
encodings in test_hostile.py.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from google.protobuf import json_format

from shared.ingest.protobody import PARSED_BYTES_PER_BYTE
from shared.telemetrygateway_pb2 import Event, EventParameters, RecordEventsRequestMetadata
from tests.integration.attacks import MIB, answer_of, concurrently, memory_mib, post, worker
from tests.integration.messages import base_event, field, licensed, varint
from tools import wire

pytestmark = pytest.mark.integration
METADATA = field(1, json_format.ParseDict(licensed("instance-1"), RecordEventsRequestMetadata()).SerializeToString())
THREADS = 8  # the server's, as deployed
MAX_EVENT_BYTES = 64 * 1024  # the default


def recent() -> datetime:
    return datetime.now(UTC) - timedelta(minutes=5)


def filled(unit: bytes, size: int) -> bytes:
    """A RecordEventsBody of about `size` bytes: the metadata, then `unit` (top-level fields) repeated."""
    return METADATA + unit * ((size - len(METADATA)) // len(unit))


def keyed(make: Callable[[bytes], bytes], room: int) -> bytes:
    """Map entries (or Struct fields) with distinct keys, about `room` bytes of them: make(key) each."""
    entries, size, n = [], 0, 0
    while size < room:
        entries.append(make(b"%06d" % n))
        size, n = size + len(entries[-1]), n + 1
    return b"".join(entries)


def with_parameters(params: bytes) -> bytes:
    """A valid event (its own id) whose EventParameters (field 6) are `params`, as wire bytes."""
    return base_event(recent()).SerializeToString() + field(6, params)


def empty_values(room: int) -> bytes:
    """EventParameters whose private metadata is {"k": [...]}, a list of about room / 2 empty values: the densest
    parse (~20 bytes per body byte)."""
    return field(3, field(1, field(1, b"k") + field(2, field(6, b"\x0a\x00" * (room // 2)))))


# EventParameters payloads of about an event's worth of bytes, each a way to make many objects of few bytes.
ROOM = MAX_EVENT_BYTES - 256
PARAMETER_BOMBS = {
    "a list of empty values": empty_values(ROOM),
    "a Struct of empty values": field(3, keyed(lambda key: field(1, field(1, key) + field(2, b"")), ROOM)),
    "a huge metadata map": keyed(lambda key: field(5, field(1, key)), ROOM),
    "a huge legacy_metadata map": keyed(lambda key: field(2, field(1, key)), ROOM),
}


def answers_of(server, bodies: list[bytes], key: str, count: int) -> tuple[list[tuple[int, str]], float]:
    """`count` requests at once, cycling through the gzip'd bodies, asking for protobuf answers: (status,
    reason code or 'ok'), and the seconds taken."""

    def attack(n: int) -> tuple[int, str]:
        resp = post(server, bodies[n % len(bodies)], key, gzipped=True, timeout=60, content_type=wire.CONTENT_TYPE,
                    accept=wire.CONTENT_TYPE)
        return resp.status_code, wire.error_reason(resp.content) if resp.status_code >= 400 else (
            "ok" if not answer_of(resp)["failedEvents"] else "refused events")

    return concurrently(attack, count)


def test_protobuf_bombs_are_refused_before_they_are_parsed(server_factory, keys):
    """At the default limits (5 MiB inflated, 1,000 events, a 128 MiB budget, so 4 MiB of protobuf parsed at
    most): every body is refused from its framing, its cost or its size, never parsed; 16 at once leave the
    worker's peak RSS within what 8 threads hold of 5 MiB bodies being read."""
    server = server_factory(TELEMETRY_ENV="dev", TRUSTED_LICENSE_KEYS_FILE=str(keys["dev"].public_path),
                            GATEWAY_VERSION="proto-bombs")
    key = keys["dev"].issue(tags=("dev",))
    parseable = 4 * MIB - 1024  # within the budget: 32 bytes reserved per body byte
    bombs = {  # name -> (body, the answer)
        "4 MiB of empty events": (filled(b"\x12\x00", parseable), (413, "too_many_events")),
        "4 MiB of undeclared top-level fields": (filled(b"\x18\x00", parseable), (413, "body_too_complex")),
        "an event of a 5 MiB list of empty values": (METADATA + field(2, with_parameters(empty_values(5 * MIB - 2048))),
                                                     (413, "body_too_complex")),
        "8 MiB of empty events": (filled(b"\x12\x00", 8 * MIB), (413, "body_too_large")),
    }
    bodies = [gzip.compress(body) for body, _ in bombs.values()]
    pid = worker(server)
    _, before = memory_mib(pid)
    answers, seconds = answers_of(server, bodies, key, 16)
    _, peak = memory_mib(pid)
    wired = ", ".join(f"{name}: {len(body) // 1024} KiB" for name, body in zip(bombs, bodies, strict=True))
    print(f"\n16 concurrent protobuf bombs (gzip'd {wired}): answers {sorted(set(answers))} in {seconds:.1f} s; "
          f"worker peak RSS {before:.0f} -> {peak:.0f} MiB")
    assert answers == [expected for _, expected in bombs.values()] * 4
    assert peak - before <= THREADS * 4 * 5  # each thread: the read buffers and the inflated body, 5 MiB each


def parse_attack(server, bodies: list[bytes], key: str, budget: int) -> float:
    """16 of the gzip'd bodies at once, after a small one (so that the publisher's client exists); all accepted
    or told to retry. The worker's peak RSS growth in MiB from its RSS after the small one (printed)."""
    pid = worker(server)
    assert answers_of(server, [gzip.compress(METADATA + field(2, with_parameters(b"")))], key, 1)[0] == [(200, "ok")]
    reset_peak(pid)
    rss, _ = memory_mib(pid)
    answers, seconds = answers_of(server, bodies, key, 16)
    _, peak = memory_mib(pid)
    size = len(gzip.decompress(bodies[0])) / MIB
    print(f"\n16 concurrent {size:.1f} MiB protobuf bodies on a {budget // MIB} MiB parse budget: answers "
          f"{sorted(set(answers))} ({answers.count((200, 'ok'))} accepted) in {seconds:.1f} s; worker RSS "
          f"{rss:.0f} MiB, peak {peak:.0f} MiB (+{peak - rss:.0f}); bound {bound(budget, size):.0f}")
    assert set(answers) <= {(200, "ok"), (503, "server_busy")} and (200, "ok") in answers
    return peak - rss


def bound(budget: int, body_mib: float) -> float:
    """MiB a worker may grow by: the budget, 8 bodies being read (the buffer and the bytes), 32 MiB of slack."""
    return budget / MIB + THREADS * 2 * body_mib + 32


def reset_peak(pid: int) -> None:
    """Start the process's peak RSS (VmHWM) again from its current RSS."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def bomb_bodies(events: int, kinds: list[str], budget: int) -> list[bytes]:
    """gzip'd bodies of `events` events each holding one of the PARAMETER_BOMBS, each reserving more than half
    the budget, so that it admits one parse at a time."""
    bodies = [METADATA + b"".join(field(2, with_parameters(PARAMETER_BOMBS[kind])) for _ in range(events))
              for kind in kinds]
    assert all(budget // 2 < len(body) * PARSED_BYTES_PER_BYTE <= budget for body in bodies)
    return [gzip.compress(body, 1) for body in bodies]


# glibc's malloc gives each thread an arena of its own (up to 8 per core): with one, RSS follows the memory in
# use at once, which is what the budget accounts for; as deployed, memory a parse freed in its thread's arena is
# not reused by the next parse on another thread, nor returned at once.
ARENA_RETENTION = ("the worker's RSS is not bounded by the parse budget: with glibc's malloc as deployed (an arena "
                   "per thread) the memory of parses that ran one at a time adds up across the 8 threads' arenas: "
                   "+113 to +115 MiB here (bound 80; +36 with MALLOC_ARENA_MAX=1); at the deployed 128 MiB budget, "
                   "16 concurrent 4 MiB bodies took the worker from 51 to 297-430 MiB (the instance has 512Mi)")


@pytest.mark.parametrize(("arenas", "kinds"), [
    pytest.param("1", list(PARAMETER_BOMBS), id="one-malloc-arena"),
    pytest.param(None, ["a list of empty values"], id="an-arena-per-thread",
                 marks=pytest.mark.xfail(strict=True, reason=ARENA_RETENTION)),
])
def test_protobuf_parses_stay_within_the_parse_budget(server_factory, keys, arenas, kinds):
    """1 MiB bodies (16 events, each an event's worth of tiny objects: lists, Structs, maps) on a 32 MiB budget,
    which admits one of them at a time: the worker grows by at most the budget and the bodies being read."""
    budget = 32 * MIB
    server = server_factory(TELEMETRY_ENV="dev", TRUSTED_LICENSE_KEYS_FILE=str(keys["dev"].public_path),
                            GATEWAY_VERSION="proto-budget", MAX_PARSE_MEMORY_BYTES=str(budget),
                            **({"MALLOC_ARENA_MAX": arenas} if arenas else {}))
    bodies = bomb_bodies(16, kinds, budget)
    assert parse_attack(server, bodies, keys["dev"].issue(tags=("dev",)), budget) <= bound(budget, 1)


def nested_lists(depth: int) -> bytes:
    """EventParameters whose private metadata is {"k": [[...]]}, `depth` lists deep, as wire bytes built from the
    inside out in linear time: every level only adds a prefix (a tag and the length of what it holds)."""
    prefixes: list[bytes] = []
    size = 0
    for head in [b"\x32", b"\x0a"] * (depth - 1) + [b"\x32", b"\x0a\x01k\x12", b"\x0a", b"\x1a"]:
        prefixes.append(head + varint(size))  # Value.list_value / ListValue.values, then "k"'s Value, the
        size += len(prefixes[-1])  # Struct's entry (key "k", value), the Struct, EventParameters.private_metadata
    return b"".join(reversed(prefixes))


def nested_list_value(depth: int) -> list:
    value: list = []
    for _ in range(depth - 1):
        value = [value]
    return value


@pytest.mark.parametrize(("depth", "status", "code"), [
    (20, 200, None),
    (40, 200, "event_too_complex"),  # deeper than MAX_EVENT_DEPTH (32), within upb's 100 messages
    (60, 400, "malformed_protobuf"),  # beyond upb's recursion limit: 120 messages below the Struct
    (100_000, 400, "malformed_protobuf"),  # 600 KB of nesting, refused as cheaply
])
def test_nesting_is_the_event_s_refusal_below_upb_s_limit_and_a_400_beyond_it(dev_server, keys, depth, status,
                                                                              code):
    event = with_parameters(nested_lists(depth))
    if depth <= 60:  # the bytes are the protobuf library's for the same value
        params = EventParameters()
        params.private_metadata.update({"k": nested_list_value(depth)})
        assert nested_lists(depth) == params.SerializeToString()
    resp = post(dev_server, METADATA + field(2, event), keys["dev"].issue(tags=("dev",)),
                content_type=wire.CONTENT_TYPE, accept=wire.CONTENT_TYPE)
    assert resp.status_code == status, resp.content[:300]
    if status == 200:
        failures = answer_of(resp)["failedEvents"]
        assert [f["reason"] for f in failures] == ([code] if code else []), failures
    else:
        assert wire.error_reason(resp.content) == code


def event_of(size: int) -> Event:
    """A valid event of exactly `size` bytes (from ~300 to a few MiB): feature flags of 16,000 characters, and one
    last flag that takes what is left."""
    event = base_event(recent())
    flags, n = event.feature_flags.flags, 0
    while size - event.ByteSize() > 16_100:
        flags[f"pad{n}"], n = "x" * 16_000, n + 1
    last = f"pad{n}"
    flags[last] = ""
    for _ in range(2):  # once more if the string's own length prefixes grew with it
        flags[last] = "x" * (len(flags[last]) + size - event.ByteSize())
    assert event.ByteSize() == size, (size, event.ByteSize())
    return event


def test_an_event_of_max_event_bytes_is_accepted_and_one_byte_more_refused(dev_server, keys):
    largest, over = event_of(MAX_EVENT_BYTES), event_of(MAX_EVENT_BYTES + 1)
    resp = post(dev_server, wire.encode_body(licensed("instance-1"), [largest, over]), keys["dev"].issue(tags=("dev",)),
                content_type=wire.CONTENT_TYPE, accept=wire.CONTENT_TYPE)
    answer = answer_of(resp)
    assert answer["succeededEvents"] == [largest.id]
    assert [(f["index"], f["id"], f["reason"]) for f in answer["failedEvents"]] == [(1, over.id, "event_too_large")]

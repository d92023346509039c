"""The body watchdog: a read blocked on a trickling socket returns once its deadline passes."""

from __future__ import annotations

import socket
import threading
import time

from shared.ingest.watchdog import Watchdog


def test_blocked_read_returns_at_the_deadline():
    server, client = socket.socketpair()
    watchdog = Watchdog()
    got: list[bytes] = []
    started = time.monotonic()
    with watchdog.guard(server, time.monotonic() + 0.3):
        client.send(b"a")
        got.append(server.recv(10))
        got.append(server.recv(10))  # blocks: nothing more is sent, until the watchdog shuts the read side
    elapsed = time.monotonic() - started
    assert got == [b"a", b""] and 0.25 < elapsed < 2 and watchdog.fired == 1
    server.sendall(b"still writable")  # the answer can still be written
    assert client.recv(100) == b"still writable"


def test_a_finished_read_is_left_alone():
    server, client = socket.socketpair()
    watchdog = Watchdog()
    with watchdog.guard(server, time.monotonic() + 0.1):
        client.send(b"done")
        assert server.recv(10) == b"done"
    time.sleep(0.3)
    client.send(b"next request")
    assert server.recv(20) == b"next request" and watchdog.fired == 0


def test_without_a_socket_nothing_is_watched():
    watchdog = Watchdog()
    threads = threading.active_count()
    with watchdog.guard(None, time.monotonic() - 1):  # e.g. functions-framework's test client
        time.sleep(0.05)
    assert watchdog.fired == 0 and threading.active_count() == threads

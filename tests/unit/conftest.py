"""Unit tests start no process and open no server: every test here runs with both refused.

Tests that need an emulator or a function server live in tests/emulated (one module on the emulators)
and tests/integration (the local pipeline).
"""

from __future__ import annotations

import multiprocessing.process
import os
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

import pytest


class StartedAProcess(AssertionError):
    """A unit test tried to start a process or a server."""


def _refuse(what: str):
    def refused(*_args: object, **_kwargs: object) -> None:
        raise StartedAProcess(f"unit tests start no process or server ({what}); move the test to tests/emulated "
                              "or tests/integration")

    return refused


GUARDED = ((subprocess.Popen, "__init__", "subprocess"), (os, "fork", "fork"), (os, "posix_spawn", "spawn"),
           (os, "posix_spawnp", "spawn"), (multiprocessing.process.BaseProcess, "start", "multiprocessing"),
           (socket.socket, "listen", "a listening socket"))


@contextmanager
def no_processes() -> Iterator[None]:
    """Refuse process starts and listening sockets inside the block."""
    with pytest.MonkeyPatch.context() as patch:
        for target, name, what in GUARDED:
            patch.setattr(target, name, _refuse(what))
        yield


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> object:
    """Fixtures of unit tests (session ones included) run guarded."""
    with no_processes():
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> object:
    """The test itself runs guarded."""
    with no_processes():
        return (yield)

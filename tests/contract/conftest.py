"""The contract suite's target: --url (a deployment) or, by default, a local dev ingest server."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def base_url(request: pytest.FixtureRequest) -> str:
    """Base URL of the ingest function under test."""
    url = request.config.getoption("--url")
    if url:
        return url.rstrip("/")
    return request.getfixturevalue("dev_server").url


@pytest.fixture(scope="session")
def license_key(request: pytest.FixtureRequest) -> str:
    """A license the target accepts; licensed cases are skipped against a deployment without one."""
    key = os.environ.get("TELEMETRY_LICENSE_KEY", "").strip()  # never on a command line
    if key:
        return key
    if request.config.getoption("--url"):
        pytest.skip("no $TELEMETRY_LICENSE_KEY: only the unauthenticated contract runs against this deployment")
    return request.getfixturevalue("keys")["dev"].issue(tags=("dev",))

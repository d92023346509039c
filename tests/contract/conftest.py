"""The contract suite's target: --url (a deployment) or, by default, a local dev ingest server."""

from __future__ import annotations

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
    key = request.config.getoption("--license-key")
    if key:
        return key
    if request.config.getoption("--url"):
        pytest.skip("no --license-key: only the unauthenticated contract runs against this deployment")
    return request.getfixturevalue("keys")["dev"].issue(tags=("dev",))

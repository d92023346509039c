"""License key pairs shared by the license tests."""

from __future__ import annotations

import pytest

from tests.helpers import KeyPair


@pytest.fixture(scope="module")
def rsa(tmp_path_factory) -> KeyPair:
    return KeyPair(tmp_path_factory.mktemp("rsa"))


@pytest.fixture(scope="module")
def ed(tmp_path_factory) -> KeyPair:
    return KeyPair(tmp_path_factory.mktemp("ed"), "ed25519")

"""The license CLI: keygen, issue, inspect (python -m tools.licenses)."""

from __future__ import annotations

from types import SimpleNamespace

import orjson
import pytest

from shared.ingest.licenses.keys import decode_license
from tools.cli import dispatch
from tools.licenses import parser


@pytest.fixture
def run_cli(capsys):
    """Run the CLI in this process: (returncode, stdout, stderr)."""

    def run(*args: str) -> SimpleNamespace:
        code = dispatch(parser(), list(args))
        out = capsys.readouterr()
        return SimpleNamespace(returncode=code, stdout=out.out, stderr=out.err)

    return run


def test_cli_keygen_issue_inspect(tmp_path, run_cli):
    assert run_cli("keygen", "--out", str(tmp_path)).returncode == 0
    assert (tmp_path / "license-key").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "license-key.pub").read_text().startswith("ssh-rsa ")
    issued = run_cli("issue", "--key", str(tmp_path / "license-key"), "--tags", "dev,plan:team", "--users", "7",
                     "--expires", "2031-02-03", "--sf-sub-id", "sub-1")
    assert issued.returncode == 0, issued.stderr
    key = issued.stdout.strip()
    report = run_cli("inspect", key, "--public-key", str(tmp_path / "license-key.pub"))
    assert report.returncode == 0
    doc = orjson.loads(report.stdout)
    assert doc["verified"] is True
    assert doc["info"]["t"] == ["dev", "plan:team"] and doc["info"]["u"] == 7
    assert doc["info"]["e"] == "2031-02-03T00:00:00Z" and doc["info"]["sf_sub_id"] == "sub-1"
    assert doc["fingerprint"] == decode_license(key).fingerprint
    against_prod = run_cli("inspect", key)
    assert against_prod.returncode == 1 and orjson.loads(against_prod.stdout)["verified"] is False
    assert run_cli("keygen", "--out", str(tmp_path)).returncode == 1

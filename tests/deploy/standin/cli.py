"""The environment that points the real gcloud and bq at the stand-in (isolated config, a local account)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests.deploy.standin.server import BQ_PREFIX, GCLOUD_PREFIXES, OVERRIDE_PATHS

DEPLOYER = "deployer@standin-tests.iam.gserviceaccount.com"
# Safe start-up savers: no update check, no usage reporting, no GCE metadata probe, no survey prompts.
FAST = {"CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK": "1", "CLOUDSDK_CORE_DISABLE_USAGE_REPORTING": "1",
        "CLOUDSDK_CORE_CHECK_GCE_METADATA": "false", "CLOUDSDK_SURVEY_DISABLE_PROMPTS": "1",
        "CLOUDSDK_CORE_DISABLE_PROMPTS": "1"}


def service_account_key(path: Path, token_uri: str) -> Path:
    """A service account key file (a fresh RSA key) whose token endpoint is the stand-in's."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    path.write_text(json.dumps({"type": "service_account", "project_id": "standin-tests", "private_key_id": "k1",
                                "private_key": pem, "client_email": DEPLOYER, "client_id": "1",
                                "token_uri": token_uri}))
    return path


def cli_env(standin_url: str, home: Path) -> dict[str, str]:
    """Variables for gcloud and bq: every API at the stand-in, an active account, an access token file."""
    config = home / "gcloud-config"
    config.mkdir(parents=True, exist_ok=True)
    token = home / "access-token"
    token.write_text("standin-access-token\n")
    bigqueryrc = home / "bigqueryrc"
    # No --discovery_file: bq then reads both its discovery documents (BigQuery, Data Transfer) from --api.
    bigqueryrc.write_text(f"--api={standin_url}/{BQ_PREFIX}\n")
    env = {**FAST, "CLOUDSDK_CONFIG": str(config), "CLOUDSDK_AUTH_ACCESS_TOKEN_FILE": str(token),
           "BIGQUERYRC": str(bigqueryrc)}
    env.update({f"CLOUDSDK_API_ENDPOINT_OVERRIDES_{api.upper()}": f"{standin_url}/{OVERRIDE_PATHS.get(api, api + '/')}"
                for api in GCLOUD_PREFIXES})
    return env


def activate_account(env: dict[str, str], home: Path, standin_url: str, timeout: float = 60.0) -> str:
    """Store an active account in the isolated config (`gcloud auth list` then prints it)."""
    key = service_account_key(home / "deployer-key.json", f"{standin_url}/token")
    activation_env = {k: v for k, v in {**os.environ, **env}.items() if k != "CLOUDSDK_AUTH_ACCESS_TOKEN_FILE"}
    subprocess.run(["gcloud", "auth", "activate-service-account", f"--key-file={key}"], env=activation_env,
                   check=True, capture_output=True, text=True, timeout=timeout)
    return DEPLOYER

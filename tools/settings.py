"""What deploy.sh asks of the functions' settings (shared/ingest/config.py, shared/sink/config.py).

    python -m tools.settings env ingest|sink     # the function's --set-env-vars value (checked first)
    python -m tools.settings files ingest|sink   # REPO_PATH CONFIG_PATH: the files its settings name

Values come from this process's environment: deploy.sh exports its settings file. A file setting
(e.g. TRUSTED_LICENSE_KEYS_FILE) is named there without `_FILE` and as a path in the repository
(TRUSTED_LICENSE_KEYS=deploy/keys/dev-license-keys.pub); the function reads it at config/<file name>.
Settings for this machine only (the emulators') never reach a deployed environment.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path

from shared.errors import ConfigError
from shared.ingest.config import IngestConfig
from shared.settings import Setting, Settings
from shared.sink.config import SinkConfig
from tools.cli import dispatch

FUNCTIONS: dict[str, type[Settings]] = {"ingest": IngestConfig, "sink": SinkConfig}
SEPARATOR = "@"  # gcloud's ^@^ list syntax: values may hold commas
DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
ASSIGNMENT = re.compile(r"^([A-Z_][A-Z0-9_]*)=(.*)$", re.M)


def settings_file(environment: str, deploy: Path = DEPLOY) -> dict[str, str]:
    """The NAME=value lines of deploy/ENVIRONMENT.env, quotes removed: what deploy.sh exports (the one reader)."""
    text = (deploy / f"{environment}.env").read_text()
    return {m[1]: m[2].strip('"') for m in ASSIGNMENT.finditer(text)}


def deploy_name(s: Setting) -> str:
    """The settings file's name for a file setting: the variable without `_FILE`."""
    return s.env.removesuffix("_FILE")


def shipped(s: Setting, env: Mapping[str, str]) -> bool:
    """Whether the settings file names a file for this file setting."""
    return bool(s.deploy_file and env.get(deploy_name(s), "").strip())


def files(function: str, env: Mapping[str, str]) -> list[tuple[str, str]]:
    """(repository path, path in the function's folder) of each file its settings name."""
    return [(env[deploy_name(s)], f"config/{s.deploy_file}") for s in FUNCTIONS[function].declared()
            if shipped(s, env)]


def function_env(function: str, env: Mapping[str, str]) -> dict[str, str]:
    """The function's environment: every setting set here (files at their deployed paths), checked."""
    values = {}
    for s in FUNCTIONS[function].declared():
        if shipped(s, env):
            values[s.env] = f"config/{s.deploy_file}"
        elif not s.local and not s.deploy_file and env.get(s.env, "").strip():
            values[s.env] = env[s.env].strip()
    FUNCTIONS[function].from_env(values)  # the function would refuse to start: refuse to deploy
    bad = [f"{k}={v}" for k, v in values.items() if SEPARATOR in v]
    if bad:
        raise ConfigError(f"a setting may not contain {SEPARATOR!r}: {bad}")
    return values


def _env(args: argparse.Namespace) -> int:
    try:
        values = function_env(args.function, os.environ)
    except ConfigError as e:
        print(f"tools.settings: {args.function}: {e}", file=sys.stderr)
        return 1
    print(f"^{SEPARATOR}^" + SEPARATOR.join(f"{k}={v}" for k, v in values.items()))
    return 0


def _files(args: argparse.Namespace) -> int:
    for repo, path in files(args.function, os.environ):
        print(f"{repo} {path}")
    return 0


def parser() -> argparse.ArgumentParser:
    """The CLI's arguments."""
    p = argparse.ArgumentParser(prog="python -m tools.settings", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(required=True)
    for name, run in (("env", _env), ("files", _files)):
        cmd = sub.add_parser(name)
        cmd.add_argument("function", choices=list(FUNCTIONS))
        cmd.set_defaults(run=run)
    return p


if __name__ == "__main__":
    sys.exit(dispatch(parser()))

"""Settings from environment variables: each declared once (name, default, check, meaning) on its config class.

A config class is a frozen dataclass whose fields are `setting(...)`s; `from_env` reads and checks every
one, then the class's `__post_init__` checks the rules between them. `docs/configuration.md` lists them
(a test holds it to these declarations) and `python -m tools.settings` gives deploy.sh their defaults and
the functions' environment strings.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Self

from shared.errors import ConfigError

ENVIRONMENTS = ("prod", "dev")
MIB = 1024 * 1024

Reader = Callable[[str, str], Any]  # (variable name, non-empty raw value) -> value, or ConfigError


@dataclass(frozen=True)
class Setting:
    """One environment variable: its name, default (None: unset), reader and meaning."""

    env: str
    default: Any
    read: Reader
    doc: str
    deploy_file: str = ""  # a file setting: deploy.sh ships the named file to the function's config/<this>
    local: bool = False  # for this machine only (emulators): never in a deployed function's environment

    def value(self, env: Mapping[str, str]) -> Any:
        """The checked value in env, or the default when unset or blank."""
        raw = env.get(self.env, "").strip()
        return self.read(self.env, raw) if raw else self.default


def setting(env: str, default: Any, read: Reader, doc: str, deploy_file: str = "", local: bool = False) -> Any:
    """A dataclass field read from the environment variable `env`."""
    return field(metadata={"setting": Setting(env, default, read, doc, deploy_file, local)})


def integer(minimum: int | None = 0, maximum: int | None = None, why: str = "") -> Reader:
    """A whole number within [minimum, maximum]."""

    def read(name: str, raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
        if minimum is not None and value < minimum:
            raise ConfigError(f"{name} must be >= {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise ConfigError(f"{name} must be <= {maximum}{': ' + why if why else ''}, got {value}")
        return value

    return read


def positive(name: str, raw: str) -> float:
    """A number > 0."""
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if not value > 0:
        raise ConfigError(f"{name} must be > 0, got {value}")
    return value


def boolean(name: str, raw: str) -> bool:
    """true/false, yes/no, on/off, 1/0."""
    lowered = raw.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def text(_name: str, raw: str) -> str:
    """Any non-empty string."""
    return raw


def ip_address(name: str, raw: str) -> str:
    """An IPv4 or IPv6 address, in its normal form."""
    try:
        return str(ipaddress.ip_address(raw.strip()))
    except ValueError:
        raise ConfigError(f"{name} must be an IP address, got {raw!r}") from None


def path(_name: str, raw: str) -> Path:
    """A file path."""
    return Path(raw)


def choice(*allowed: str) -> Reader:
    """One of the allowed words."""

    def read(name: str, raw: str) -> str:
        if raw not in allowed:
            raise ConfigError(f"{name} must be one of {allowed}, got {raw!r}")
        return raw

    return read


def staged_version() -> str:
    """The version deploy.sh wrote beside the staged package, else dev-local."""
    staged = Path(__file__).resolve().parent / "VERSION"
    return staged.read_text().strip() if staged.exists() else "dev-local"


def setting_lines(file: Path, setting_name: str) -> list[str]:
    """The lines of a file a setting names, `#` comments and blank lines dropped; ConfigError if unreadable."""
    try:
        content = file.read_text()
    except OSError as exc:
        raise ConfigError(f"{setting_name}={file}: {exc}") from None
    return [s for s in (line.split("#", 1)[0].strip() for line in content.splitlines()) if s]


@dataclass(frozen=True)
class Settings:
    """What every function reads: which deployment, project and version it is."""

    environment: str = setting("TELEMETRY_ENV", None, choice(*ENVIRONMENTS), "Which deployment this is: prod or dev "
                               "(required).")
    project: str = setting("GOOGLE_CLOUD_PROJECT", "telemetry-local", text, "Google Cloud project.")
    version: str = setting("GATEWAY_VERSION", None, text, "Release label in logs and rows (deploy.sh sets "
                           "it; default: the staged VERSION file, else dev-local).")
    workers: int | None = setting("WORKERS", None, integer(minimum=1), "gunicorn worker processes, read by "
                                  "functions-framework (deploy.sh: ingest INGEST_WORKERS, sink 1).")
    threads: int | None = setting("THREADS", None, integer(minimum=1), "Threads per gunicorn worker, read by "
                                  "functions-framework; deploy.sh sets --concurrency to WORKERS x THREADS "
                                  "(ingest INGEST_THREADS, sink SINK_CONCURRENCY).")

    @classmethod
    def declared(cls) -> list[Setting]:
        """Every setting of this class, in declaration order."""
        return [f.metadata["setting"] for f in fields(cls)]

    @classmethod
    def setting_for(cls, env_name: str) -> tuple[str, Setting]:
        """The field, and the declaration, that read the environment variable env_name."""
        (found,) = ((f.name, f.metadata["setting"]) for f in fields(cls) if f.metadata["setting"].env == env_name)
        return found

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Self:
        """Read and check every setting; raise ConfigError with a clear message."""
        env = os.environ if env is None else env
        values = {f.name: f.metadata["setting"].value(env) for f in fields(cls)}
        if values["environment"] is None:
            raise ConfigError(f"TELEMETRY_ENV must be one of {ENVIRONMENTS}, got {env.get('TELEMETRY_ENV', '')!r}")
        values["version"] = values["version"] or staged_version()
        return cls(**values)

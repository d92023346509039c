"""Google's own schemas check the stand-in: every answer it makes itself (not one it forwards from an emulator) is
decoded into the message class that gcloud's generated client (apitools, shipped in the SDK) declares for the
method, and an unknown field, an unknown enum value or a wrong type is recorded as a violation.

The method is found the way the generated client builds its URLs: its flat path (or relative path) as a pattern,
with the HTTP method; the most specific match wins. Error answers (google.rpc.Status) have no message class in the
generated clients and are not checked here (SOURCES.md cites their shapes).
"""

from __future__ import annotations

import functools
import importlib
import json
import re
import shutil
import sys
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The SDK that runs gcloud (bin/gcloud's parent's parent).
SDK = Path(shutil.which("gcloud") or "/usr/lib/google-cloud-sdk/bin/gcloud").resolve().parent.parent
GENERATED = "googlecloudsdk.generated_clients.apis"
VERSION = re.compile(r"^(?:(?P<head>.*?)/)?(?P<version>v\d+\w*)/(?P<rest>.*)$")
# The stand-in's API names whose answers it makes itself (upload, OAuth and discovery answers have no message).
CHECKED_APIS = ("serviceusage", "iam", "cloudresourcemanager", "cloudfunctions", "run", "eventarc", "logging",
                "monitoring", "pubsub", "compute", "bigquery", "bigquerydatatransfer")


def _import_sdk() -> None:
    """Put the SDK's libraries (googlecloudsdk, apitools) on sys.path, once."""
    for path in (SDK / "lib" / "third_party", SDK / "lib"):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))


@dataclass(frozen=True)
class Method:
    """One method of a generated client: its id, HTTP method, URL pattern and response message class."""

    id: str
    http_method: str
    pattern: re.Pattern
    literal: int  # characters of the path outside its parameters (the more, the more specific)
    response: type | None


def _pattern(path: str) -> tuple[re.Pattern, int]:
    parts = re.split(r"(\{\+?\w+\})", path)
    regex = "".join((".+" if p.startswith("{+") else "[^/]+") if p.startswith("{") else re.escape(p) for p in parts)
    return re.compile(regex), sum(len(p) for p in parts if not p.startswith("{"))


@functools.cache
def methods(api: str, version: str) -> tuple[Method, ...]:
    """Every method of the API version's generated client (empty when the SDK has no such client)."""
    _import_sdk()
    from apitools.base.py import base_api

    package = f"{GENERATED}.{api}.{version}"
    try:
        client_module = importlib.import_module(f"{package}.{api}_{version}_client")
        messages = importlib.import_module(f"{package}.{api}_{version}_messages")
    except ImportError:
        return ()
    (client_class,) = [c for c in vars(client_module).values() if isinstance(c, type)
                       and issubclass(c, base_api.BaseApiClient) and c is not base_api.BaseApiClient]
    client = client_class(url="http://standin/", get_credentials=False)
    found = []
    for service in vars(client).values():
        if not isinstance(service, base_api.BaseApiService):
            continue
        for name in service.GetMethodsList():
            config = service.GetMethodConfig(name)
            for path in {config.flat_path, config.relative_path} - {None}:
                pattern, literal = _pattern(path)
                found.append(Method(config.method_id, config.http_method, pattern, literal,
                                    getattr(messages, config.response_type_name or "", None)))
    return tuple(found)


def method_of(api: str, http_method: str, path: str) -> Method | None:
    """The generated client's method for a request to the stand-in's API at path (after its prefix)."""
    parts = VERSION.match(path)
    if not parts:
        return None
    paths = (f"{parts['version']}/{parts['rest']}", parts["rest"])  # flat paths start with or after the version
    candidates = [m for m in methods(api, parts["version"]) if m.http_method == http_method
                  and any(m.pattern.fullmatch(p) for p in paths)]
    return max(candidates, key=lambda m: m.literal, default=None)


def problems(message_class: type, body: Any) -> list[str]:
    """What in body the message class does not declare (unknown fields and enum values) or types otherwise."""
    _import_sdk()
    from apitools.base.protorpclite import messages as protorpc
    from apitools.base.py import encoding

    try:
        message = encoding.JsonToMessage(message_class, json.dumps(body))
    except (protorpc.ValidationError, protorpc.DecodeError, ValueError, TypeError, AttributeError) as error:
        return [f"{type(error).__name__}: {error}"]
    found: list[str] = []

    def walk(msg: Any, where: str) -> None:
        found.extend(f"{where}{name}: not in {type(msg).__name__}" for name in msg.all_unrecognized_fields())
        for f in msg.all_fields():
            if isinstance(f, protorpc.MessageField):
                value = msg.get_assigned_value(f.name)
                for i, item in enumerate(value if f.repeated else [value] if value is not None else []):
                    walk(item, f"{where}{f.name}{f'[{i}]' if f.repeated else ''}.")

    walk(message, "")
    return found


@dataclass
class SchemaCheck:
    """What was checked (answers per method id), what could not be matched to a method, and every violation."""

    checked: Counter = field(default_factory=Counter)
    unmatched: Counter = field(default_factory=Counter)
    violations: list[dict] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def check(self, api: str, http_method: str, path: str, body: bytes) -> None:
        """Check one 2xx JSON answer of the stand-in's own."""
        if api not in CHECKED_APIS or not body.strip():
            return
        try:
            method = method_of(api, http_method, path)
            found = problems(method.response, json.loads(body)) if method and method.response else []
        except Exception as error:  # the check itself failed: a violation, never a dropped answer
            method, found = None, [f"the check failed: {error!r}"]
        with self.lock:
            if method is None and not found:
                self.unmatched[f"{http_method} {api} {path}"] += 1
                return
            if method is not None:
                self.checked[method.id] += 1
            self.violations += [{"method": method.id if method else api, "path": path, "problem": p} for p in found]

    def snapshot(self) -> dict:
        with self.lock:
            return {"checked": dict(self.checked), "unmatched": dict(self.unmatched),
                    "violations": list(self.violations)}

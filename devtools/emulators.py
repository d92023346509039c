"""The Pub/Sub emulator (gcloud SDK) and the BigQuery emulator (bqemulator), started locally."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from devtools.procs import ROOT, Service, free_port, start


def pubsub_emulator_bin() -> str:
    """Path of cloud-pubsub-emulator inside the gcloud SDK."""
    sdk = subprocess.run(["gcloud", "info", "--format=value(installation.sdk_root)"],
                         capture_output=True, text=True, check=True).stdout.strip()
    path = Path(sdk) / "platform" / "pubsub-emulator" / "bin" / "cloud-pubsub-emulator"
    if not path.exists():
        raise RuntimeError(f"Pub/Sub emulator not found at {path}; install the gcloud pubsub-emulator component")
    return str(path)


PUBSUB_FIX_SOURCE = Path(__file__).resolve().parent / "pubsub_emulator_fix"
PUBSUB_FIX_CLASS = "MessageBacklog$ExpireOutstandingMessagesRunnable"
PUBSUB_FIX_VERSIONS = ("0.8.20",)  # emulator versions whose MessageBacklog the fix was written against
PUBSUB_PACKAGE = "com/google/cloud/pubsub/testing/v1"


def pubsub_emulator_jar() -> Path:
    """The emulator's jar (lib/cloud-pubsub-emulator-VERSION-all.jar beside its bin/)."""
    jars = sorted((Path(pubsub_emulator_bin()).parent.parent / "lib").glob("cloud-pubsub-emulator-*-all.jar"))
    if not jars:
        raise RuntimeError("Pub/Sub emulator jar not found beside its launcher")
    return jars[-1]


def pubsub_fix_classes(jar: Path) -> Path | None:
    """Compile devtools/pubsub_emulator_fix once per emulator version; its class directory, or None.

    None (with a warning) when the emulator is a version the fix was not written for, or no javac is found.
    """
    version = jar.name.removeprefix("cloud-pubsub-emulator-").removesuffix("-all.jar")
    source = PUBSUB_FIX_SOURCE / f"{PUBSUB_FIX_CLASS}.java"
    javac = shutil.which("javac")
    if version not in PUBSUB_FIX_VERSIONS or javac is None:
        print(f"warning: Pub/Sub emulator {version} runs without devtools/pubsub_emulator_fix "
              f"({'javac not found' if javac is None else 'untested version'}): it may stop redelivering "
              "failed pushes", file=sys.stderr)
        return None
    out = ROOT / ".local" / "pubsub-emulator-fix" / version
    built = out / PUBSUB_PACKAGE / f"{PUBSUB_FIX_CLASS}.class"
    if built.exists() and built.stat().st_mtime >= source.stat().st_mtime:
        return out
    with tempfile.TemporaryDirectory() as tmp:
        # Compiled against a stub MessageBacklog: javac 17 crashes resolving the real one's inner class.
        stub = Path(tmp) / "stub" / PUBSUB_PACKAGE / "MessageBacklog.java"
        stub.parent.mkdir(parents=True)
        stub.write_text("package com.google.cloud.pubsub.testing.v1; class MessageBacklog {}\n")
        classes = Path(tmp) / "classes"
        subprocess.run([javac, "-nowarn", "-d", str(classes), str(source), str(stub)], check=True,
                       capture_output=True, timeout=120)
        built.parent.mkdir(parents=True, exist_ok=True)
        partial = built.with_name(f"{built.name}.{os.getpid()}")
        shutil.copyfile(classes / PUBSUB_PACKAGE / built.name, partial)
        os.replace(partial, built)  # atomic: another process starting an emulator never sees half a class
    return out


PUBSUB_HEAP_MB = 512


def start_pubsub(port: int | None = None, *, patched: bool = True, heap_mb: int = PUBSUB_HEAP_MB) -> Service:
    """Start the Pub/Sub emulator on 127.0.0.1 (a free port unless given) and wait for it.

    patched: with devtools/pubsub_emulator_fix ahead of the emulator's jar (when it can be built), so
    failed pushes keep being redelivered; `service.patched` says whether it is.
    heap_mb: the JVM's heap. The emulator keeps every message it was given, acked or not (measured: 3,000
    acked 85 KB messages held ~260 MB of heap after a full GC), so a long run needs a heap for all it publishes.
    """
    port = port or free_port()
    jar = pubsub_emulator_jar()
    fix = pubsub_fix_classes(jar) if patched else None
    java = shutil.which("java") or "java"
    classpath = f"{fix}:{jar}" if fix else str(jar)
    cmd = [java, f"-Xmx{heap_mb}m", "-cp", classpath, "com.google.cloud.pubsub.testing.v1.Main", "--host=127.0.0.1",
           f"--port={port}"]
    service = start("pubsub-emulator", cmd, port).wait_ready(60)
    service.patched = fix is not None
    return service


def ensure_spatial_extension() -> Path:
    """Place DuckDB's spatial extension where DuckDB looks, so bqemulator starts offline."""
    import duckdb
    import duckdb_extension_spatial

    version = f"v{duckdb.__version__}"
    platform = duckdb.execute("PRAGMA platform").fetchone()[0]
    source = Path(duckdb_extension_spatial.__file__).parent / "extensions" / version / "spatial.duckdb_extension"
    target = Path.home() / ".duckdb" / "extensions" / version / platform / "spatial.duckdb_extension"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    return target


@dataclass
class BigQueryEmulator:
    """bqemulator with its REST and gRPC (Storage Write) ports."""

    service: Service
    grpc_port: int
    project: str

    @property
    def rest_host(self) -> str:
        """127.0.0.1:REST."""
        return self.service.host

    @property
    def grpc_host(self) -> str:
        """127.0.0.1:GRPC."""
        return f"127.0.0.1:{self.grpc_port}"

    def env(self) -> dict[str, str]:
        """Environment variables that point the gateway's clients at this emulator."""
        return {"BIGQUERY_EMULATOR_HOST": self.rest_host, "BIGQUERY_EMULATOR_GRPC_HOST": self.grpc_host,
                "GOOGLE_CLOUD_PROJECT": self.project}

    def stop(self) -> None:
        """Stop by pid."""
        self.service.stop()


def start_bigquery(project: str, data_dir: Path | None = None) -> BigQueryEmulator:
    """Start bqemulator on free ports (persistent when data_dir is given) and wait for both ports."""
    ensure_spatial_extension()
    rest, grpc_port = free_port(), free_port()
    cmd = [sys.executable, "-m", "devtools.bqemulator_serialized", "start", "--rest-port", str(rest),
           "--grpc-port", str(grpc_port), "--project", project, "--log-level", "warning"]
    if data_dir:
        cmd += ["--persistent", "--data-dir", str(data_dir)]
    service = start("bigquery-emulator", cmd, rest).wait_ready(90, ports=(rest, grpc_port))
    return BigQueryEmulator(service, grpc_port, project)


if __name__ == "__main__":  # `python -m devtools.emulators setup`: used by make's venv step
    print(ensure_spatial_extension())
    print(f"repository root: {ROOT}")

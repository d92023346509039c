"""The Pub/Sub emulator (gcloud SDK) and the BigQuery emulator (bqemulator), started locally."""

from __future__ import annotations

import shutil
import subprocess
import sys
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


def start_pubsub(port: int | None = None) -> Service:
    """Start the Pub/Sub emulator on 127.0.0.1 (a free port unless given) and wait for it."""
    port = port or free_port()
    cmd = [pubsub_emulator_bin(), "--host=127.0.0.1", f"--port={port}"]
    return start("pubsub-emulator", cmd, port, {"JAVA_OPTS": "-Xmx512m"}).wait_ready(60)


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

"""A real ``mlflow server`` (SQLite backend, local artifact root) on 127.0.0.1 for the run."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.plugins.workers import free_port

#: Seconds the server may take to answer (measured here: 8-17 s).
MLFLOW_START_TIMEOUT_S = 120


@pytest.fixture(scope="session")
def mlflow_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Tracking URI of a fresh MLflow server; artifacts are proxied by it (``mlflow-artifacts:/``)."""
    root = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    log_path = root / "server.log"
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    mlflow_bin = Path(sys.executable).with_name("mlflow")
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                str(mlflow_bin), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
                "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
                "--artifacts-destination", str(root / "artifacts"),
            ],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + MLFLOW_START_TIMEOUT_S
    try:
        while True:
            if process.poll() is not None:
                raise AssertionError(f"mlflow server exited: {log_path.read_text()[-4000:]}")
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                tail = log_path.read_text()[-4000:]
                raise AssertionError(f"mlflow server not up in {MLFLOW_START_TIMEOUT_S}s: {tail}")
            time.sleep(0.5)
        yield uri
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()

"""Real worker processes for tests: ``python -m worker`` (or a fault-injecting variant) with its own env."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class WorkerProcess:
    """One translation worker subprocess; its log goes to a file for post-mortems."""

    def __init__(self, env: dict[str, str], log_path: Path, module: str = "worker") -> None:
        self.metrics_port = int(env["BT_WORKER_METRICS_PORT"])
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", module],
            cwd=REPO,
            env={**os.environ, **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.metrics_port}{path}"

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited with {self.process.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url("/readyz"), timeout=1) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"worker not ready after {timeout_s}s:\n{self.log()}")

    def metrics(self) -> str:
        with urllib.request.urlopen(self.url("/metrics"), timeout=5) as answer:
            return str(answer.read().decode())

    def terminate(self, timeout_s: float = 60.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout_s)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-20000:]


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[object]:
    """Factory: ``start_worker(env, module="worker")`` → a ready :class:`WorkerProcess`; all killed afterwards."""
    started: list[WorkerProcess] = []

    def start(env: dict[str, str], module: str = "worker", wait: bool = True) -> WorkerProcess:
        full = {"BT_WORKER_METRICS_PORT": str(free_port()), "BT_LOG_FORMAT": "text", **env}
        worker = WorkerProcess(full, tmp_path / f"worker-{len(started)}.log", module)
        started.append(worker)
        if wait:
            worker.wait_ready()
        return worker

    yield start
    for worker in started:
        worker.kill()

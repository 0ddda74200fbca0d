"""The whole service as real processes on this machine, for the benchmark: API, translation worker, delivery worker
and a callback receiver, on a fresh RabbitMQ vhost and a fresh PostgreSQL database (or a SQLite file).

Everything the stack creates — vhost, database, processes — is removed by :meth:`Stack.close`, also after a failure.
"""

from __future__ import annotations

import base64
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from bench.raw import Layout

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
#: Client name the benchmark submits as (API key and webhook secret are made up per run).
CLIENT = "bench"
#: Pair the translation worker serves; API load goes to :data:`IDLE_PAIR`, which no worker consumes.
PAIR = ("en", "fr")
IDLE_PAIR = ("en", "de")
#: Seconds a process gets to become ready.
START_TIMEOUT_S = 120.0
#: The machine's PostgreSQL as the tests reach it (DESIGN.md, "Real parts").
DEFAULT_POSTGRES_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test"
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class StackError(RuntimeError):
    """A part of the stack did not start or stopped early."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _rabbitmqctl(*args: str) -> None:
    try:
        subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise StackError(f"rabbitmqctl {' '.join(args)} failed (is RabbitMQ running? `make services`): {exc}") from exc


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` and its threads, in seconds (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


#: Processes that serve the stack but are shared with other users of the machine, by ``/proc/<pid>/comm``.
SHARED_SERVICES = {"beam.smp": "rabbitmq_shared", "postgres": "postgres_shared"}

#: CPU seconds per process: ``{name: {pid: seconds}}``.
CpuSnapshot = dict[str, dict[int, float]]


def shared_service_cpu() -> CpuSnapshot:
    """CPU time so far of every RabbitMQ and PostgreSQL process (they serve other users of this machine too)."""
    snapshot: CpuSnapshot = {name: {} for name in SHARED_SERVICES.values()}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm = (entry / "comm").read_text().strip()
        except OSError:
            continue
        if comm in SHARED_SERVICES:
            snapshot[SHARED_SERVICES[comm]][int(entry.name)] = cpu_seconds(int(entry.name))
    return snapshot


def cpu_delta(before: CpuSnapshot, after: CpuSnapshot) -> dict[str, float]:
    """CPU seconds each named group spent between two snapshots (a process that started in between counts from
    its start; one that ended is left out)."""
    return {
        name: round(sum(seconds - before.get(name, {}).get(pid, 0.0) for pid, seconds in pids.items()), 3)
        for name, pids in after.items()
    }


def peak_rss_bytes(pid: int) -> int | None:
    """``VmHWM`` of process ``pid``: its peak resident set size."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


@dataclass
class Process:
    """One service process, its log in the run directory."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def check(self) -> None:
        if self.popen.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-3000:]
            raise StackError(f"{self.name} exited with {self.popen.returncode}; end of {self.log_path}:\n{tail}")

    def stop(self, timeout_s: float = 30.0) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop within %.0f s; killing it", self.name, timeout_s)
                self.popen.kill()
                self.popen.wait(timeout=10)


@dataclass
class StackConfig:
    model_dir: Path
    layout: Layout
    run_dir: Path
    store: str = "postgresql"  #: "postgresql" or "sqlite"
    postgres_dsn: str = DEFAULT_POSTGRES_DSN
    worker_env: dict[str, str] = field(default_factory=dict)  #: extra BT_WORKER_* settings (experiments)
    code_dir: Path = REPO  #: checkout the service runs from (another one for before/after comparisons)


class Stack:
    """API + worker + delivery worker + receiver; use as a context manager."""

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.run_dir = config.run_dir
        self.api_key = secrets.token_urlsafe(24)
        self.webhook_secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
        self.vhost = f"bench-{uuid.uuid4().hex[:10]}"
        self.database: str | None = None
        self.processes: dict[str, Process] = {}
        self.api_port, self.worker_port, self.receiver_port = free_port(), free_port(), free_port()
        self.broker_url = f"amqp://guest:guest@127.0.0.1:5672/{self.vhost}"
        self.store_url = ""

    # -- addresses ------------------------------------------------------------------------------------------
    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def receiver_url(self) -> str:
        return f"http://127.0.0.1:{self.receiver_port}"

    @property
    def callback_url(self) -> str:
        return f"{self.receiver_url}/hooks/bench"

    # -- lifecycle ------------------------------------------------------------------------------------------
    def __enter__(self) -> Stack:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, _type: type[BaseException] | None, _exc: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.close()

    def start(self) -> None:
        shutil.rmtree(self.run_dir, ignore_errors=True)
        self.run_dir.mkdir(parents=True)
        _rabbitmqctl("add_vhost", self.vhost)
        _rabbitmqctl("set_permissions", "-p", self.vhost, "guest", ".*", ".*", ".*")
        self.store_url = self._create_store()
        self._spawn("receiver", ["-m", "bench.receiver", "--port", str(self.receiver_port)])
        self._spawn("api", ["-m", "webhook_api"])
        self._wait_http("receiver", f"{self.receiver_url}/healthz")
        self._wait_http("api", f"{self.api_url}/readyz")
        self.start_worker(self.config.model_dir)
        self._spawn("delivery", ["-m", "worker.delivery"])

    def start_worker(self, model_dir: Path) -> None:
        """Start (or restart) the translation worker on ``model_dir``."""
        if "worker" in self.processes:
            self.processes.pop("worker").stop()
        self._spawn("worker", ["-m", "worker"], {"BT_WORKER_MODEL_DIR": str(Path(model_dir).resolve())})
        self._wait_http("worker", f"http://127.0.0.1:{self.worker_port}/readyz")

    def close(self) -> None:
        for process in reversed(list(self.processes.values())):
            try:
                process.stop()
            except OSError as exc:
                log.warning("could not stop %s: %s", process.name, exc)
        self.processes.clear()
        try:
            _rabbitmqctl("delete_vhost", self.vhost)
        except StackError as exc:
            log.warning("%s", exc)
        if self.database is not None:
            import psycopg

            with psycopg.connect(self.config.postgres_dsn, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
            self.database = None

    # -- measurements the stack answers ---------------------------------------------------------------------
    def cpu_snapshot(self) -> CpuSnapshot:
        """CPU time used so far by each service process, and by RabbitMQ and PostgreSQL (``*_shared``); take
        two and subtract them with :func:`cpu_delta`."""
        own = {name: {process.pid: cpu_seconds(process.pid)} for name, process in self.processes.items()}
        return own | shared_service_cpu()

    def peak_rss_bytes(self, name: str) -> int | None:
        return peak_rss_bytes(self.processes[name].pid)

    def check(self) -> None:
        for process in self.processes.values():
            process.check()

    # -- internals ------------------------------------------------------------------------------------------
    def _create_store(self) -> str:
        if self.config.store == "sqlite":
            return f"sqlite:///{self.run_dir / 'jobs.db'}"
        if self.config.store != "postgresql":
            raise ValueError(f"{self.config.store!r} is not a store (accepted stores: postgresql, sqlite)")
        import psycopg

        name = f"bench_{uuid.uuid4().hex[:10]}"
        try:
            with psycopg.connect(self.config.postgres_dsn, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
        except psycopg.Error as exc:
            raise StackError(f"cannot create a PostgreSQL database (`make services`?): {exc}") from exc
        self.database = name
        dsn = dict(item.split("=", 1) for item in self.config.postgres_dsn.split())
        user, host, port = dsn.get("user", "postgres"), dsn.get("host", "127.0.0.1"), dsn.get("port", "5432")
        return f"postgresql+psycopg://{user}@{host}:{port}/{name}"

    def _env(self) -> dict[str, str]:
        layout = self.config.layout
        return {
            **os.environ,
            "PYTHONPATH": str(self.config.code_dir),
            "BT_LOG_FORMAT": "json",
            "BT_BROKER_URL": self.broker_url,
            "BT_STORE_URL": self.store_url,
            "BT_QUEUE_PREFIX": "bench",
            "BT_DELIVERY_QUEUE": "bench.deliveries",
            "BT_CALLBACK_ALLOWLIST": "127.0.0.1",
            "BT_PAIRS": ",".join("-".join(pair) for pair in (PAIR, IDLE_PAIR)),
            "BT_API_HOST": "127.0.0.1",
            "BT_API_PORT": str(self.api_port),
            "BT_API_API_KEYS": f"{CLIENT}:{self.api_key}",
            "BT_WORKER_PAIR": "-".join(PAIR),
            "BT_WORKER_METRICS_PORT": str(self.worker_port),
            "BT_WORKER_INTER_THREADS": str(layout.inter_threads),
            "BT_WORKER_INTRA_THREADS": str(layout.intra_threads),
            "BT_WORKER_MAX_BATCH_SIZE": str(layout.max_batch_size),
            **self.config.worker_env,
            "BT_DELIVERY_WEBHOOK_SECRETS": f"{CLIENT}:{self.webhook_secret}",
            "BT_DELIVERY_PUBLIC_API_URL": self.api_url,
            "BENCH_RECEIVER_SECRET": self.webhook_secret,
        }

    def _spawn(self, name: str, args: list[str], extra_env: dict[str, str] | None = None) -> None:
        log_path = self.run_dir / f"{name}.log"
        with log_path.open("ab") as out:
            popen = subprocess.Popen(
                [sys.executable, *args],
                cwd=self.config.code_dir,
                env={**self._env(), **(extra_env or {})},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.processes[name] = Process(name, popen, log_path)

    def _wait_http(self, name: str, url: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            self.check()
            try:
                with urllib.request.urlopen(url, timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise StackError(f"{name} not ready after {START_TIMEOUT_S:.0f} s; see {self.run_dir / (name + '.log')}")

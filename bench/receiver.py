"""The benchmark's callback receiver: verifies every event with the reference Standard Webhooks library and
records when it arrived. ``python -m bench.receiver --port P --secret whsec_...`` (loopback only).

Events are grouped by ``data.metadata.bench`` (the label the benchmark submits each run with) and de-duplicated by
``webhook-id``. ``GET /wait?label=L&count=N&timeout_s=T`` answers once N events of run L arrived (or at the
timeout) with their first and last arrival times on the machine-wide monotonic clock, which the benchmark process
reads too.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

log = logging.getLogger(__name__)


@dataclass
class RunArrivals:
    """What arrived for one label."""

    arrived_at: dict[str, float] = field(default_factory=dict)  #: job id → first arrival (monotonic)
    translations: dict[str, list[str]] = field(default_factory=dict)  #: job id → inline translations


class Arrivals:
    """Thread-safe record of verified events."""

    def __init__(self) -> None:
        self._runs: dict[str, RunArrivals] = {}
        self._seen: set[str] = set()
        self._changed = threading.Condition()
        self.failures = 0

    def record(self, webhook_id: str, event: dict[str, object], at: float) -> None:
        data = event.get("data")
        if not isinstance(data, dict):
            return
        metadata = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
        label = str(metadata.get("bench", "")) if isinstance(metadata, dict) else ""
        with self._changed:
            if webhook_id in self._seen:
                return
            self._seen.add(webhook_id)
            run = self._runs.setdefault(label, RunArrivals())
            job_id = str(data.get("id"))
            run.arrived_at.setdefault(job_id, at)
            if isinstance(data.get("translations"), list):
                run.translations[job_id] = [str(t) for t in data["translations"]]
            self._changed.notify_all()

    def fail(self) -> None:
        with self._changed:
            self.failures += 1

    def wait(self, label: str, count: int, timeout_s: float) -> dict[str, object]:
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while True:
                run = self._runs.get(label, RunArrivals())
                remaining = deadline - time.monotonic()
                if len(run.arrived_at) >= count or remaining <= 0:
                    break
                self._changed.wait(remaining)
            times = list(run.arrived_at.values())
            return {
                "label": label,
                "count": len(times),
                "first": min(times) if times else None,
                "last": max(times) if times else None,
                "arrived_at": run.arrived_at,
                "translations": run.translations,
                "failures": self.failures,
            }


def make_server(port: int, secret: str) -> ThreadingHTTPServer:
    verifier = Webhook(secret)
    arrivals = Arrivals()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            at = time.monotonic()
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                event = verifier.verify(body, headers)
            except WebhookVerificationError:
                arrivals.fail()
                self._answer(400, b'{"error":"bad signature"}')
                return
            arrivals.record(headers.get("webhook-id", ""), event, at)
            self._answer(204, b"")

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path == "/healthz":
                self._answer(200, b'{"status":"ok"}')
                return
            if url.path != "/wait":
                self._answer(404, b"{}")
                return
            query = parse_qs(url.query)
            result = arrivals.wait(
                query.get("label", [""])[0],
                int(query.get("count", ["1"])[0]),
                float(query.get("timeout_s", ["60"])[0]),
            )
            self._answer(200, json.dumps(result).encode())

        def _answer(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if body:
                self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            log.debug(format, *args)

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description="Benchmark callback receiver (verifies Standard Webhooks).")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--secret",
        default=os.environ.get("BENCH_RECEIVER_SECRET"),
        help="whsec_<base64> signing secret of the benchmark client (default: $BENCH_RECEIVER_SECRET)",
    )
    args = parser.parse_args()
    if not args.secret:
        parser.error("no signing secret: pass --secret or set BENCH_RECEIVER_SECRET")
    logging.basicConfig(level=logging.WARNING)
    make_server(args.port, args.secret).serve_forever()


if __name__ == "__main__":
    main()

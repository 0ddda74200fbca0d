"""``make demo``: the main job end to end on one machine, on embedded defaults.

Trains the demo model once (cached in ``var/demo-model``), starts the API, a translation worker, the delivery
worker and a small callback receiver, submits a job over HTTP, waits for it, prints sources and translations and
the signed callback the receiver verified, then stops everything it started.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from jobs.logging_setup import configure_logging
from retrain.demo import build_demo_model, demo_pairs
from retrain.split import split_pairs

REPO = Path(__file__).resolve().parents[1]
VAR = REPO / "var"
MODEL_DIR = VAR / "demo-model"
#: How many held-out sentences the demo translates.
DEMO_SEGMENTS = 8
#: Seconds the demo waits for the job and its callback.
TIMEOUT_S = 120

log = logging.getLogger("demo")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http(method: str, url: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def wait_for(url: str, what: str, processes: list[subprocess.Popen[bytes]], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for process in processes:
            if process.poll() is not None:
                raise SystemExit(f"{what}: a process exited early with code {process.returncode}; see var/demo/*.log")
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{what} not ready after {timeout_s}s; see var/demo/*.log")


def main() -> int:
    configure_logging()
    logging.getLogger("retrain").setLevel(logging.INFO)
    run_dir = VAR / "demo"
    run_dir.mkdir(parents=True, exist_ok=True)

    print("== 1. demo model (trained once, then cached in var/demo-model)")
    build_demo_model(MODEL_DIR, preset="demo")
    held_out = split_pairs(demo_pairs("demo")).test[:DEMO_SEGMENTS]

    api_port, worker_port, receiver_port = free_port(), free_port(), free_port()
    api_key = secrets.token_urlsafe(24)
    webhook_secret = "whsec_" + __import__("base64").b64encode(secrets.token_bytes(32)).decode()
    env = {
        **os.environ,
        "BT_LOG_FORMAT": "text",
        "BT_STORE_URL": f"sqlite:///{run_dir / 'jobs.db'}",
        "BT_QUEUE_PREFIX": "demo",
        "BT_DELIVERY_QUEUE": "demo.deliveries",
        "BT_CALLBACK_ALLOWLIST": "127.0.0.1",
        "BT_PAIRS": "en-fr",
        "BT_API_PORT": str(api_port),
        "BT_API_HOST": "127.0.0.1",
        "BT_API_API_KEYS": f"demo:{api_key}",
        "BT_WORKER_PAIR": "en-fr",
        "BT_WORKER_MODEL_DIR": str(MODEL_DIR),
        "BT_WORKER_METRICS_PORT": str(worker_port),
        "BT_DELIVERY_WEBHOOK_SECRETS": f"demo:{webhook_secret}",
        "BT_DELIVERY_PUBLIC_API_URL": f"http://127.0.0.1:{api_port}",
        "RECEIVER_PORT": str(receiver_port),
        "RECEIVER_SECRET": webhook_secret,
        "RECEIVER_OUTPUT": str(run_dir / "callback.json"),
    }
    (run_dir / "callback.json").unlink(missing_ok=True)
    commands = {
        "api": [sys.executable, "-m", "webhook_api"],
        "worker": [sys.executable, "-m", "worker"],
        "delivery": [sys.executable, "-m", "worker.delivery"],
        "receiver": [sys.executable, str(REPO / "examples" / "receiver.py")],
    }
    processes: list[subprocess.Popen[bytes]] = []
    print("== 2. starting API, translation worker, delivery worker and a callback receiver (logs in var/demo/)")
    try:
        for name, command in commands.items():
            with (run_dir / f"{name}.log").open("wb") as out:
                processes.append(subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT))
        api = f"http://127.0.0.1:{api_port}"
        wait_for(f"{api}/readyz", "API", processes)
        wait_for(f"http://127.0.0.1:{worker_port}/readyz", "worker", processes)

        print(f"== 3. POST {api}/v1/jobs ({len(held_out)} held-out segments, callback to the receiver)")
        status, accepted = http(
            "POST",
            f"{api}/v1/jobs",
            {
                "source_lang": "en",
                "target_lang": "fr",
                "segments": [pair.source for pair in held_out],
                "callback_url": f"http://127.0.0.1:{receiver_port}/hooks/mt",
                "metadata": {"project": "demo"},
            },
            token=api_key,
        )
        if status != 202:
            raise SystemExit(f"submission refused: {status} {accepted}")
        job_id = accepted["id"]
        print(f"   202 Accepted: job {job_id}")

        deadline = time.monotonic() + TIMEOUT_S
        job: dict[str, Any] = {}
        while time.monotonic() < deadline:
            _, job = http("GET", f"{api}/v1/jobs/{job_id}", token=api_key)
            if job["status"] in ("succeeded", "failed", "cancelled"):
                break
            time.sleep(0.2)
        if job.get("status") != "succeeded":
            raise SystemExit(f"job did not succeed: {job}")
        _, result = http("GET", f"{api}/v1/jobs/{job_id}/result", token=api_key)
        model = result["model"]
        print(f"== 4. result (model {model['name']} version {model['version']})")
        for pair, translation in zip(held_out, result["translations"], strict=True):
            mark = "✓" if translation == pair.target else "✗"
            print(f"   {mark} {pair.source:<40} → {translation}")

        callback_file = run_dir / "callback.json"
        while time.monotonic() < deadline and not callback_file.exists():
            time.sleep(0.2)
        if not callback_file.exists():
            raise SystemExit("no callback arrived; see var/demo/delivery.log")
        callback = json.loads(callback_file.read_text())
        print("== 5. callback received by the receiver, Standard Webhooks signature verified")
        print(f"   webhook-id {callback['headers']['webhook-id']}, type {callback['event']['type']}")
        print("   " + json.dumps(callback["event"], ensure_ascii=False)[:600])
        return 0
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


if __name__ == "__main__":
    sys.exit(main())

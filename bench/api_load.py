"""API accept throughput: how many jobs per second ``POST /v1/jobs`` answers ``202`` for (each one stored and
confirmed by the broker), and the latency of each answer.

Jobs go to a pair no worker consumes, carry one segment and no callback, so the measurement is the API, the
store and the broker alone. Load is bounded in count and time, over loopback only.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import time
from typing import Any

from bench.client import JobClient, job_body
from bench.stack import IDLE_PAIR, Stack, cpu_delta

log = logging.getLogger(__name__)

#: Concurrent keep-alive connections of the load generator.
DEFAULT_CONCURRENCY = 32


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def api_load(
    stack: Stack,
    *,
    max_jobs: int,
    max_seconds: float,
    concurrency: int = DEFAULT_CONCURRENCY,
    warm_up_jobs: int = 64,
) -> dict[str, Any]:
    """Submit up to ``max_jobs`` jobs from ``concurrency`` connections for at most ``max_seconds``."""
    client = JobClient(stack.api_url, stack.api_key, concurrency=concurrency)
    warm = [job_body([f"warm-up {i}"], pair=IDLE_PAIR) for i in range(warm_up_jobs)]
    asyncio.run(client.submit_all(warm))
    bodies = [job_body([f"Accept throughput segment number {i}."], pair=IDLE_PAIR) for i in range(max_jobs)]
    cpu_before = stack.cpu_snapshot()
    started = time.monotonic()
    answers = asyncio.run(client.submit_all(bodies, deadline=started + max_seconds))
    seconds = time.monotonic() - started
    cpu = cpu_delta(cpu_before, stack.cpu_snapshot())
    latencies_ms = [a.latency_s * 1000 for a in answers if a is not None]
    if not latencies_ms:
        raise RuntimeError("the API accepted no job")
    return {
        "jobs": len(latencies_ms),
        "seconds": round(seconds, 3),
        "jobs_per_s": round(len(latencies_ms) / seconds, 1),
        "concurrency": concurrency,
        "p50_ms": round(statistics.median(latencies_ms), 2),
        "p99_ms": round(_percentile(latencies_ms, 0.99), 2),
        "max_ms": round(max(latencies_ms), 2),
        "api_cpu_seconds": round(cpu["api"], 2),
        "cpu_ms_per_job": {
            name: round(cpu[name] * 1000 / len(latencies_ms), 2)
            for name in ("api", "rabbitmq_shared", "postgres_shared")
        },
    }

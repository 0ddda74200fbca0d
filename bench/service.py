"""The rows through the whole service: HTTP submit → RabbitMQ → worker → store → signed callback at the receiver.

The clock starts before the first submission and stops when the receiver has verified the last callback of the
run (both read the machine-wide monotonic clock).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.request
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from bench.client import JobClient, job_body
from bench.raw import Decoding, Timing
from bench.stack import CLIENT, IDLE_PAIR, PAIR, Stack, cpu_delta

log = logging.getLogger(__name__)

#: Seconds a run may take before the benchmark gives up waiting for its callbacks.
CALLBACK_TIMEOUT_S = 600.0
#: Concurrent HTTP connections that submit a run's jobs.
SUBMIT_CONCURRENCY = 16


class CallbacksMissing(RuntimeError):
    """Not every job of a run was announced to the receiver in time."""


@dataclass(frozen=True)
class ServiceTiming:
    """One timed run through the service, and the CPU each process spent on it."""

    timing: Timing
    submit_seconds: float  #: from the first submission to the last 202
    cpu_seconds: dict[str, float] = field(default_factory=dict)


def wait_for_callbacks(stack: Stack, label: str, count: int, timeout_s: float = CALLBACK_TIMEOUT_S) -> dict[str, Any]:
    """Block until the receiver verified ``count`` events of run ``label``; raise :class:`CallbacksMissing` else."""
    query = urlencode({"label": label, "count": count, "timeout_s": timeout_s})
    with urllib.request.urlopen(f"{stack.receiver_url}/wait?{query}", timeout=timeout_s + 30) as answer:
        result: dict[str, Any] = json.loads(answer.read())
    if result["count"] < count:
        stack.check()
        raise CallbacksMissing(
            f"run {label}: {result['count']} of {count} callbacks after {timeout_s:.0f} s "
            f"({result['failures']} failed verification); see {stack.run_dir}"
        )
    if result["failures"]:
        raise CallbacksMissing(f"{result['failures']} callbacks failed signature verification")
    return result


def _submit(stack: Stack, bodies: list[bytes], concurrency: int) -> float:
    """Submit every body; return the monotonic time just before the first submission."""
    client = JobClient(stack.api_url, stack.api_key, concurrency=min(concurrency, len(bodies)))
    started = time.monotonic()
    asyncio.run(client.submit_all(bodies))
    return started


def run_jobs(
    stack: Stack,
    sentences: Sequence[str],
    segments_per_job: int,
    decoding: Decoding,
    label: str,
    concurrency: int = SUBMIT_CONCURRENCY,
) -> ServiceTiming:
    """Submit ``sentences`` as jobs of ``segments_per_job`` segments, all at once; time until the last callback."""
    bodies = [
        job_body(
            list(sentences[start : start + segments_per_job]),
            pair=PAIR,
            options=decoding.job_options(),
            callback_url=stack.callback_url,
            label=label,
        )
        for start in range(0, len(sentences), segments_per_job)
    ]
    cpu_before = stack.cpu_snapshot()
    started = _submit(stack, bodies, concurrency)
    submitted = time.monotonic()
    result = wait_for_callbacks(stack, label, len(bodies))
    cpu = cpu_delta(cpu_before, stack.cpu_snapshot())
    seconds = float(result["last"]) - started
    timing = Timing(seconds, len(sentences), len(sentences) * decoding.length)
    return ServiceTiming(timing, submitted - started, cpu)


def submit_to_callback_s(stack: Stack, segments: Sequence[str], decoding: Decoding, label: str) -> float:
    """Seconds from submitting one job of ``segments`` to its verified callback, on an otherwise idle service."""
    body = job_body(
        list(segments), pair=PAIR, options=decoding.job_options(), callback_url=stack.callback_url, label=label
    )
    started = _submit(stack, [body], 1)
    result = wait_for_callbacks(stack, label, 1)
    return float(result["last"]) - started


def service_outputs(stack: Stack, sentences: Sequence[str], segments_per_job: int, label: str) -> list[str]:
    """Translate ``sentences`` through the service with default options; the translations from the callbacks."""
    bodies = [
        job_body(
            list(sentences[start : start + segments_per_job]), pair=PAIR, callback_url=stack.callback_url, label=label
        )
        for start in range(0, len(sentences), segments_per_job)
    ]
    client = JobClient(stack.api_url, stack.api_key, concurrency=4)
    answers = asyncio.run(client.submit_all(bodies))
    job_ids = [answer.json()["id"] for answer in answers if answer is not None]
    result = wait_for_callbacks(stack, label, len(bodies))
    by_id: dict[str, list[str]] = result["translations"]
    missing = [job_id for job_id in job_ids if job_id not in by_id]
    if missing:
        raise CallbacksMissing(f"{len(missing)} callbacks carried result_url instead of inline translations")
    return [text for job_id in job_ids for text in by_id[job_id]]


def delivery_throughput(stack: Stack, count: int, label: str = "delivery") -> dict[str, float]:
    """Callbacks per second of the delivery worker alone: ``count`` finished jobs announced at once."""
    from jobs.events import EventAnnouncer
    from jobs.schemas import JobCreate, ModelRef
    from jobs.settings import SharedSettings
    from jobs.store import Completion, JobStore

    store = JobStore.from_url(stack.store_url)
    model = ModelRef(name="bench", version="1")
    ids: list[str] = []
    try:
        for index in range(count):
            job = JobCreate(
                source_lang=IDLE_PAIR[0],
                target_lang=IDLE_PAIR[1],
                segments=[f"segment {index}"],
                callback_url=stack.callback_url,
                metadata={"bench": label},
            )
            record, _ = store.create_job(CLIENT, job, None, lambda _record: None)
            ids.append(record.id)
        store.complete_many([Completion(job_id, [f"translation {job_id}"], model) for job_id in ids])
    finally:
        store.engine.dispose()
    announcer = EventAnnouncer.from_settings(
        SharedSettings(broker_url=stack.broker_url, delivery_queue="bench.deliveries")
    )
    try:
        cpu_before = stack.cpu_snapshot()
        started = time.monotonic()
        announcer.announce(ids)
        enqueued = time.monotonic()
        result = wait_for_callbacks(stack, label, count)
        cpu = cpu_delta(cpu_before, stack.cpu_snapshot())
    finally:
        announcer.close()
    seconds = float(result["last"]) - started
    return {
        "callbacks": count,
        "seconds": round(seconds, 3),
        "callbacks_per_s": round(count / seconds, 1),
        "enqueue_seconds": round(enqueued - started, 3),
        "delivery_cpu_seconds": round(cpu["delivery"], 2),
        "receiver_cpu_seconds": round(cpu["receiver"], 2),
    }


def warm_up(stack: Stack, sentences: Sequence[str], decodings: Sequence[Decoding]) -> None:
    """One small job per decoding through the whole path, so first-call costs stay out of the timings."""
    for decoding in decodings:
        label = f"warm-up-{uuid.uuid4().hex[:6]}"
        run_jobs(stack, sentences[:8], 4, decoding, label, concurrency=2)

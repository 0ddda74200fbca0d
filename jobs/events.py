"""Job events: the body every callback carries, and the client that enqueues their delivery.

One event per terminal job state — ``job.succeeded``, ``job.failed``, ``job.cancelled`` — laid out as the
Standard Webhooks specification recommends (``type``, ``timestamp``, ``data``)::

    {"type": "job.succeeded", "timestamp": "2024-05-01T12:00:03.120000Z",
     "data": {"id": "…", "status": "succeeded", "source_lang": "en", "target_lang": "fr",
              "metadata": {…}, "model": {"name": "…", "version": "3"}, "segments": 2,
              "timing": {"created_at": "…", "started_at": "…", "finished_at": "…",
                         "wait_ms": 120, "run_ms": 3000},
              "error": null,
              "translations": ["…", "…"]            # or, when the body would exceed max_inline_bytes:
              "result_url": "https://api.example.com/v1/jobs/…/result"}}

The body is rebuilt from the stored (terminal, hence immutable) job on every attempt, so every retry carries
the same bytes. :class:`EventAnnouncer` is what the translation worker and the API call once a job is
terminal.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from amqp.exceptions import AMQPError, MessageNacked
from celery import Celery
from kombu.exceptions import KombuError

from jobs.delivery_queue import CONFIRM_TIMEOUT_S, DELIVER_TASK, celery_config, delivery_queue
from jobs.errors import BrokerUnavailable
from jobs.schemas import JobStatus
from jobs.settings import SharedSettings
from jobs.store import JobRecord

log = logging.getLogger(__name__)

#: The event type announced for each terminal state.
EVENT_TYPES: dict[JobStatus, str] = {
    JobStatus.SUCCEEDED: "job.succeeded",
    JobStatus.FAILED: "job.failed",
    JobStatus.CANCELLED: "job.cancelled",
}


def event_type(status: JobStatus) -> str:
    """The event type of a terminal state; ValueError for a job still in progress."""
    try:
        return EVENT_TYPES[status]
    except KeyError:
        raise ValueError(f"job status {status.value!r} is not terminal: there is no event for it") from None


def result_url(public_api_url: str, job_id: str) -> str:
    return f"{public_api_url.rstrip('/')}/v1/jobs/{job_id}/result"


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _ms_between(start: datetime | None, end: datetime | None) -> int | None:
    if start is None or end is None:
        return None
    return max(0, round((end - start).total_seconds() * 1000))


def _dumps(event: dict[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()


def build_event(job: JobRecord, *, public_api_url: str, max_inline_bytes: int) -> bytes:
    """The JSON body (compact, UTF-8) of ``job``'s event.

    Translations travel inline when the whole body stays within ``max_inline_bytes``; above it the body
    carries ``result_url`` instead, which the receiver fetches with its API key.
    """
    kind = event_type(job.status)
    data: dict[str, Any] = {
        "id": job.id,
        "status": job.status.value,
        "source_lang": job.source_lang,
        "target_lang": job.target_lang,
        "metadata": job.metadata,
        "model": job.model.model_dump() if job.model else None,
        "segments": job.segments_total,
        "timing": {
            "created_at": _iso(job.created_at),
            "started_at": _iso(job.started_at),
            "finished_at": _iso(job.finished_at),
            "wait_ms": _ms_between(job.created_at, job.started_at),
            "run_ms": _ms_between(job.started_at, job.finished_at),
        },
        "error": {"code": job.error_code, "message": job.error_message or ""} if job.error_code else None,
    }
    event: dict[str, Any] = {"type": kind, "timestamp": _iso(job.finished_at or job.created_at), "data": data}
    if job.status is JobStatus.SUCCEEDED:
        data["translations"] = job.translations or []
        body = _dumps(event)
        if len(body) <= max_inline_bytes:
            return body
        del data["translations"]
        data["result_url"] = result_url(public_api_url, job.id)
    return _dumps(event)


class EventAnnouncer:
    """Enqueues event deliveries on the delivery queue, each publish confirmed by the broker.

    Cheap to call and safe from any thread (Celery's producer pool hands each call its own channel); nothing
    connects until the first call. Raises :class:`BrokerUnavailable` when the broker cannot take a message.
    """

    def __init__(self, app: Celery, queue_name: str) -> None:
        self.app = app
        self.queue = delivery_queue(queue_name)
        _ = self.app.producer_pool  # create the pool now, not concurrently on first use (it connects lazily)

    @classmethod
    def from_settings(cls, settings: SharedSettings) -> EventAnnouncer:
        """An announcer with its own Celery client app for ``settings.broker_url`` / ``delivery_queue``."""
        app = Celery("batch-translate-events", set_as_current=False)
        app.conf.update(celery_config(settings.broker_url, settings.delivery_queue))
        return cls(app, settings.delivery_queue)

    def announce(self, job_ids: Sequence[str]) -> None:
        """Enqueue one delivery per job (call once the job's terminal state is stored)."""
        for job_id in job_ids:
            self._send(job_id, {}, countdown_s=None)
            log.info("job %s: event delivery enqueued", job_id)

    def schedule_attempt(self, job_id: str, round_no: int | None, attempt: int | None, countdown_s: int) -> None:
        """Enqueue attempt ``attempt`` of delivery round ``round_no``, due in ``countdown_s`` whole seconds
        (``None`` for both: the first attempt of the current round, like :meth:`announce`).

        The message waits in the broker (native delayed delivery), never unacked in a worker.
        """
        self._send(job_id, {"round_no": round_no, "attempt": attempt}, countdown_s=max(1, int(countdown_s)))

    def _send(self, job_id: str, kwargs: dict[str, int | None], countdown_s: int | None) -> None:
        try:
            self.app.send_task(
                DELIVER_TASK,
                args=[job_id],
                kwargs=kwargs,
                countdown=countdown_s,
                queue=self.queue,
                confirm_timeout=CONFIRM_TIMEOUT_S,
                retry=True,
                retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5},
            )
        except (KombuError, AMQPError, MessageNacked, OSError) as exc:
            raise BrokerUnavailable(f"could not enqueue the event delivery of job {job_id}: {exc!r}") from exc

    def close(self) -> None:
        self.app.close()

"""The delivery worker: POSTs each terminal job's signed event to its callback URL, with retries that wait in
the broker. ``python -m worker.delivery`` runs it (its own process / Deployment, cheap CPU pods).

One attempt:

1. load the job and its delivery (a stale or duplicate message is dropped: see :mod:`jobs.deliveries`);
2. check the callback URL against the SSRF policy *now* and connect to the address that was checked;
3. build the event body, sign it anew (own ``webhook-timestamp``), POST it without following redirects;
4. record the attempt; decide:

   ======================================== ==================================================================
   answer                                   decision
   ======================================== ==================================================================
   2xx                                      delivered
   410 Gone                                 gone: stop, the receiver asked for no more events
   anything else (3xx, 4xx, 5xx), timeout,  retry after the next delay of the schedule (± jitter, at least the
   connection error, no address             receiver's Retry-After); failed once the schedule is used up
   URL refused by the SSRF policy           failed at once (no request is sent)
   ======================================== ==================================================================

A retry is a *new* message published with a countdown: with the quorum queue and topic exchange of
:mod:`jobs.delivery_queue`, Celery's native delayed delivery keeps it in the broker until it is due, and the
current message is acked. No worker ever holds a message while it waits.
"""

from __future__ import annotations

import email.utils
import logging
import math
import random
import ssl
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import certifi
import httpx
from celery import Celery, bootsteps
from celery.exceptions import Reject
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from jobs.callback_urls import CallbackHostUnresolved, CallbackUrlPolicy
from jobs.deliveries import AttemptOutcome, AttemptRecord, Delivery, DeliveryStatus, DeliveryStore
from jobs.delivery_queue import DELIVER_TASK, celery_config, dead_letter_queue
from jobs.errors import BrokerUnavailable, CallbackUrlRefused, JobNotFound, StoreUnavailable
from jobs.events import EventAnnouncer, build_event, event_type
from jobs.logging_setup import configure_logging
from jobs.store import JobRecord, JobStore
from worker.delivery_settings import DeliverySettings
from worker.signing import UnknownClient, WebhookSigner

log = logging.getLogger("worker.delivery")  # not __name__: this module also runs as __main__

#: Exit code when the settings cannot run a delivery worker.
EXIT_CONFIG = 2
#: Seconds before a delivery is tried again when the job store could not be read.
STORE_RETRY_S = 30
#: The User-Agent of every callback request.
USER_AGENT = "batch-translate-webhooks/1"
#: Seconds between wake-ups of the worker's event loop (how long a SIGTERM may wait to be acted on).
WAKE_INTERVAL_S = 1.0


@dataclass(frozen=True)
class AttemptResult:
    """What one POST (or the refusal to send it) came to."""

    status_code: int | None
    latency_ms: int | None
    error: str | None
    retry_after_s: float | None = None
    refused: bool = False  #: the SSRF policy refused the URL: no retry

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def gone(self) -> bool:
        return self.status_code == 410


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait (delta-seconds or HTTP date); None if absent/invalid."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


class Deliverer:
    """Makes one delivery attempt per message and decides what comes next."""

    def __init__(
        self,
        settings: DeliverySettings,
        store: JobStore,
        announcer: EventAnnouncer,
        *,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.store = store
        self.deliveries = DeliveryStore(store.engine)
        self.policy = CallbackUrlPolicy(settings.callback_allowlist)
        self.signer = WebhookSigner(settings.secrets_by_client())
        self.announcer = announcer
        self.tls = ssl.create_default_context(cafile=certifi.where())
        if settings.ca_file is not None:
            self.tls.load_verify_locations(cafile=str(settings.ca_file))
        self.rng = rng or random.Random()
        self.clock = clock

    @property
    def max_attempts(self) -> int:
        return 1 + len(self.settings.retry_schedule_s)

    @property
    def claim_lease_s(self) -> int:
        """How long an attempt is reserved for the worker making it: resolution, connect, send and read may
        each take up to ``timeout_s``, plus a margin for recording the outcome."""
        return math.ceil(3 * self.settings.timeout_s) + 30

    # -- one message -----------------------------------------------------------------------------------------
    def run(self, job_id: str, round_no: int | None = None, attempt: int | None = None) -> None:
        """Handle one delivery message; store trouble re-enqueues it with a delay instead of failing it."""
        try:
            self._run(job_id, round_no, attempt)
        except (StoreUnavailable, SQLAlchemyError) as exc:
            log.warning("job %s: job store unavailable (%s); trying again in %d s", job_id, exc, STORE_RETRY_S)
            self._schedule(job_id, round_no, attempt, STORE_RETRY_S)

    def _run(self, job_id: str, round_no: int | None, attempt: int | None) -> None:
        try:
            job = self.store.get(job_id)
        except JobNotFound:
            log.warning("job %s: not in the job store; delivery dropped", job_id)
            return
        if not job.callback_url:
            log.info("job %s: no callback_url; nothing to deliver", job_id)
            return
        if not job.status.terminal:
            log.warning("job %s: still %s; no event to deliver yet", job_id, job.status.value)
            return
        delivery = self.deliveries.open(job.id, job.client, event_type(job.status))
        if round_no is None or attempt is None:  # an announcement: first attempt of the current round
            if delivery.status is not DeliveryStatus.PENDING or delivery.round_attempts > 0:
                log.info("job %s: delivery %s already under way; announcement ignored", job_id, delivery.webhook_id)
                self._resume(delivery)
                return
            round_no, attempt = delivery.round, 1
        elif round_no != delivery.round or delivery.status is not DeliveryStatus.PENDING:
            log.info(
                "job %s: retry of round %d dropped (delivery is %s, round %d)",
                job_id,
                round_no,
                delivery.status.value,
                delivery.round,
            )
            return
        elif delivery.round_attempts >= attempt:
            log.info("job %s: attempt %d of round %d already made", job_id, attempt, round_no)
            self._resume(delivery)
            return
        elif delivery.round_attempts != attempt - 1:
            log.warning(
                "job %s: attempt %d of round %d arrived before attempt %d; dropped",
                job_id,
                attempt,
                round_no,
                delivery.round_attempts + 1,
            )
            return
        if not self.deliveries.claim(delivery.webhook_id, round_no, attempt, self.claim_lease_s):
            # Another copy of this message is being handled right now (or its worker died): look again once
            # its claim has expired; by then the attempt is recorded and this copy is dropped.
            log.info(
                "job %s: attempt %d of round %d is being made elsewhere; checking again in %d s",
                job_id,
                attempt,
                round_no,
                self.claim_lease_s,
            )
            self._schedule(job_id, round_no, attempt, self.claim_lease_s)
            return
        self._attempt(job, delivery, round_no, attempt)

    def _attempt(self, job: JobRecord, delivery: Delivery, round_no: int, attempt: int) -> None:
        assert job.callback_url is not None
        started = self.clock()
        result = self._post(job, delivery)
        if result.delivered:
            outcome = AttemptOutcome.DELIVERED
        elif result.gone:
            outcome = AttemptOutcome.GONE
        elif result.refused or attempt >= self.max_attempts:
            outcome = AttemptOutcome.FAILED
        else:
            outcome = AttemptOutcome.RETRY
        delay_s = self.retry_delay_s(attempt, result.retry_after_s) if outcome is AttemptOutcome.RETRY else None
        next_at = datetime.fromtimestamp(started, UTC) + timedelta(seconds=delay_s) if delay_s else None
        recorded = self.deliveries.record_attempt(
            delivery,
            AttemptRecord(
                round=round_no,
                attempt=attempt,
                attempted_at=datetime.fromtimestamp(started, UTC),
                status_code=result.status_code,
                latency_ms=result.latency_ms,
                error=result.error,
                outcome=outcome,
                next_attempt_at=next_at,
            ),
        )
        shown = result.status_code if result.status_code is not None else result.error
        if not recorded:
            log.warning("job %s: attempt %d of round %d made twice (%s)", job.id, attempt, round_no, shown)
            return
        if outcome is AttemptOutcome.RETRY and delay_s is not None:
            log.info(
                "job %s: attempt %d of %s failed (%s); next in %d s",
                job.id,
                attempt,
                delivery.webhook_id,
                shown,
                delay_s,
            )
            self._schedule(job.id, round_no, attempt + 1, delay_s)
            self.deliveries.mark_retry_scheduled(delivery.webhook_id, round_no, attempt)
        else:
            log.info(
                "job %s: delivery %s %s after attempt %d (%s)",
                job.id,
                delivery.webhook_id,
                outcome.value,
                attempt,
                shown,
            )

    def _resume(self, delivery: Delivery) -> None:
        """Schedule the next attempt of a pending delivery whose retry never reached the broker (a crash)."""
        if delivery.status is not DeliveryStatus.PENDING or delivery.retry_scheduled:
            return
        if delivery.round_attempts == 0:
            return
        due = delivery.next_attempt_at.timestamp() if delivery.next_attempt_at else self.clock()
        delay_s = max(1, math.ceil(due - self.clock()))
        log.warning(
            "job %s: retry of delivery %s was never scheduled; scheduling it in %d s",
            delivery.job_id,
            delivery.webhook_id,
            delay_s,
        )
        self._schedule(delivery.job_id, delivery.round, delivery.round_attempts + 1, delay_s)
        self.deliveries.mark_retry_scheduled(delivery.webhook_id, delivery.round, delivery.round_attempts)

    def _schedule(self, job_id: str, round_no: int | None, attempt: int | None, delay_s: int) -> None:
        try:
            self.announcer.schedule_attempt(job_id, round_no, attempt, delay_s)
        except BrokerUnavailable as exc:
            # Give the message back: its next delivery finds the attempt recorded and schedules the retry.
            log.error("job %s: could not schedule the next attempt: %s", job_id, exc)
            raise Reject(str(exc), requeue=True) from exc

    # -- the HTTP request ------------------------------------------------------------------------------------
    def _post(self, job: JobRecord, delivery: Delivery) -> AttemptResult:
        assert job.callback_url is not None
        started = time.monotonic()

        def elapsed_ms() -> int:
            return round((time.monotonic() - started) * 1000)

        try:
            target = self.policy.check(job.callback_url)
        except CallbackHostUnresolved as exc:
            return AttemptResult(None, elapsed_ms(), exc.reason)
        except CallbackUrlRefused as exc:
            log.warning("job %s: callback URL refused at delivery: %s", job.id, exc.reason)
            return AttemptResult(None, elapsed_ms(), f"refused by the SSRF policy: {exc.reason}", refused=True)
        body = build_event(
            job,
            public_api_url=self.settings.public_api_url,
            max_inline_bytes=self.settings.max_inline_bytes,
        )
        try:
            signature = self.signer.headers(job.client, delivery.webhook_id, body)
        except UnknownClient:
            log.error("job %s: no webhook secret configured for client %r", job.id, job.client)
            return AttemptResult(None, 0, f"no webhook secret configured for client {job.client!r}")
        headers = {
            **signature,
            "Host": target.host_header,
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
        }
        extensions = {"sni_hostname": target.tls_server_name} if target.tls_server_name else {}
        try:
            # trust_env=False: no proxy from the environment may take the request past the checked address.
            timeout_s = self.settings.timeout_s
            with httpx.Client(timeout=timeout_s, follow_redirects=False, trust_env=False, verify=self.tls) as client:
                request = client.build_request(
                    "POST", target.request_url, content=body, headers=headers, extensions=extensions
                )
                response = client.send(request, stream=True)
                response.close()  # the answer's body is not needed
        except httpx.TimeoutException:
            return AttemptResult(None, elapsed_ms(), f"timeout after {self.settings.timeout_s:g} s")
        except httpx.TransportError as exc:
            return AttemptResult(None, elapsed_ms(), f"{type(exc).__name__}: {exc}"[:500])
        error = None if 200 <= response.status_code < 300 else f"HTTP {response.status_code}"
        if response.is_redirect:
            error = f"HTTP {response.status_code} redirect not followed (update the callback URL)"
        return AttemptResult(
            response.status_code,
            elapsed_ms(),
            error,
            retry_after_s=parse_retry_after(response.headers.get("retry-after"), self.clock()),
        )

    def retry_delay_s(self, attempt: int, retry_after_s: float | None) -> int:
        """Whole seconds before the attempt after ``attempt``: the schedule's delay ± jitter, at least the
        receiver's Retry-After (capped)."""
        base = self.settings.retry_schedule_s[attempt - 1]
        jitter = self.settings.retry_jitter
        delay = base * self.rng.uniform(1 - jitter, 1 + jitter)
        if retry_after_s is not None:
            delay = max(delay, min(retry_after_s, self.settings.max_retry_after_s))
        return max(1, math.ceil(delay))


def _wake() -> None:
    """Nothing to do: being due is the point (see :class:`PromptShutdown`)."""


class PromptShutdown(bootsteps.StartStopStep):
    """Wakes the worker's event loop every second.

    With no timer due sooner, kombu's loop sleeps up to 10 s in ``epoll`` and acts on a SIGTERM (warm shutdown)
    only when it wakes up.
    """

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.tref: Any = None

    def start(self, parent: Any) -> None:
        self.tref = parent.timer.call_repeatedly(WAKE_INTERVAL_S, _wake)

    def stop(self, parent: Any) -> None:
        if self.tref is not None:
            self.tref.cancel()
            self.tref = None


def create_app(settings: DeliverySettings, store: JobStore | None = None) -> Celery:
    """The delivery worker's Celery app, with its task bound to a :class:`Deliverer` for ``settings``."""
    app = Celery("batch-translate-delivery", set_as_current=False)
    app.conf.update(celery_config(settings.broker_url, settings.delivery_queue))
    app.conf.update(
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        worker_pool="threads",
        worker_concurrency=settings.concurrency,
        worker_enable_remote_control=False,
        worker_send_task_events=False,
        worker_cancel_long_running_tasks_on_connection_loss=True,
    )
    app.steps["consumer"].add(PromptShutdown)
    deliverer = Deliverer(
        settings, store or JobStore.from_url(settings.store_url), EventAnnouncer(app, settings.delivery_queue)
    )

    @app.task(name=DELIVER_TASK, ignore_result=True, acks_late=True)
    def deliver_event(job_id: str, round_no: int | None = None, attempt: int | None = None) -> None:
        deliverer.run(job_id, round_no, attempt)

    return app


def declare_dead_letters(app: Celery, queue_name: str) -> None:
    """Declare ``<queue>.dlx`` and ``<queue>.dead``, the delivery queue's dead-letter target."""
    with app.connection_for_write() as connection:
        connection.ensure_connection(max_retries=5)
        dead_letter_queue(queue_name)(connection.default_channel).declare()


def main() -> None:
    configure_logging()
    try:
        settings = DeliverySettings()
    except ValidationError as exc:
        # Name the fields only: the input may hold secrets.
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        log.error("invalid delivery settings: %s", problems)
        sys.exit(EXIT_CONFIG)
    store = JobStore.from_url(settings.store_url)
    store.create_schema()
    app = create_app(settings, store)
    declare_dead_letters(app, settings.delivery_queue)
    log.info(
        "delivery worker: queue %s, %d threads, retries after %s s",
        settings.delivery_queue,
        settings.concurrency,
        settings.retry_schedule_s,
    )
    app.worker_main(
        [
            "worker",
            "--pool=threads",
            f"--concurrency={settings.concurrency}",
            f"--queues={settings.delivery_queue}",
            "--hostname=delivery@%h",
            "--loglevel=INFO",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]
    )


if __name__ == "__main__":
    main()

"""The translation worker's consumer: pika on one thread, translation and store writes on two others.

Threads and what they own:

* **I/O thread** (:meth:`JobConsumer.run`): the pika connection. It receives messages into the inbox and is the
  only place that acks, nacks or dead-letters (:meth:`JobConsumer._settle`); other threads hand it settlements
  with ``connection.add_callback_threadsafe`` so heartbeats keep flowing while a batch translates.
* **translation thread**: tokenizes what arrives, packs segments of many jobs into token-budget steps
  (:mod:`worker.batching`), runs beam search, and hands finished jobs on.
* **finisher thread**: writes results (one transaction per step), announces terminal jobs to the delivery
  worker, then asks the I/O thread to ack. A message is acked only after its result is stored and announced.

Failure policy (in :meth:`JobConsumer._on_failed`): a job whose translation raises is retried by the broker
(nack + requeue, counted by the quorum queue's ``x-delivery-count``); on its last allowed delivery it is stored as
``failed`` with the reason, announced, and dead-lettered. A step that raises is retried job by job, so one poison
job does not fail the others it shared a batch with.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel
from pika.spec import Basic, BasicProperties
from pydantic import ValidationError

from jobs.publisher import connection_parameters
from jobs.schemas import JobMessage
from jobs.store import Completion, JobStore
from jobs.topology import Topology
from worker import metrics
from worker.batching import Packer, PendingJob, Step
from worker.translator import Translator

log = logging.getLogger(__name__)

#: Exit codes of the worker process.
EXIT_OK = 0
EXIT_BROKER_LOST = 3
#: Seconds between checks of the stop flag while waiting on pika.
IO_TICK_S = 0.1
#: AMQP heartbeat the worker asks for, in seconds.
HEARTBEAT_S = 30


class Outcome(enum.Enum):
    ACK = "ack"  #: done (succeeded, failed for good, or skipped): remove from the queue
    RETRY = "retry"  #: give back to the queue; the broker counts the delivery
    DEAD_LETTER = "dead_letter"  #: reject without requeue: goes to the dead-letter queue


@dataclass(frozen=True)
class ConsumerConfig:
    """Knobs of the consumer, built from ``WorkerSettings`` by the entry point."""

    pair: str
    broker_url: str
    topology: Topology
    prefetch: int = 64
    max_batch_tokens: int = 2048
    max_wait_ms: int = 20
    drain_timeout_s: float = 60.0


@dataclass
class _MarkRunning:
    job_ids: list[str]


@dataclass
class _Finished:
    jobs: list[PendingJob]
    translator: Translator


@dataclass
class _Failed:
    job: PendingJob
    code: str
    message: str
    translator: Translator | None


@dataclass
class _Skipped:
    """A job that was already terminal when it arrived: announce again (idempotent), then ack."""

    job: PendingJob


@dataclass
class _Settle:
    job: PendingJob
    outcome: Outcome


_Work = _MarkRunning | _Finished | _Failed | _Skipped | _Settle | None


class JobConsumer:
    """Consume one pair's queue, translate in packed batches, store, announce, ack."""

    def __init__(
        self,
        config: ConsumerConfig,
        store: JobStore,
        translator: Callable[[], Translator],
        announce: Callable[[Sequence[str]], None],
    ) -> None:
        self.config = config
        self.store = store
        self.translator = translator
        self.announce = announce
        self._inbox: queue.Queue[PendingJob] = queue.Queue()
        self._finisher_queue: queue.Queue[_Work] = queue.Queue()
        self._packer = Packer(config.max_batch_tokens)
        self._stopping = threading.Event()
        self._draining = threading.Event()  #: set by the I/O thread once no new messages can arrive
        self._translation_done = threading.Event()
        self._finisher_done = threading.Event()
        self._serving: Translator  #: the model of the steps being cut now (translation thread only)
        self._connection: pika.BlockingConnection | None = None
        self._channel: BlockingChannel | None = None
        self.consuming = False

    # -- I/O thread -----------------------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask the consumer to drain and exit (safe from a signal handler)."""
        self._stopping.set()

    def run(self) -> int:
        """Consume until :meth:`stop`; return the process exit code."""
        params = connection_parameters(self.config.broker_url, heartbeat_s=HEARTBEAT_S)
        self._connection = pika.BlockingConnection(params)
        self._channel = self._connection.channel()
        self._channel.basic_qos(prefetch_count=self.config.prefetch)
        queue_name = self.config.topology.declare(self._channel, self.config.pair)
        consumer_tag = self._channel.basic_consume(queue_name, self._on_message)
        self.consuming = True
        log.info("consuming %s (prefetch %d)", queue_name, self.config.prefetch)
        workers = [
            threading.Thread(target=self._translation_loop, name="translation", daemon=True),
            threading.Thread(target=self._finisher_loop, name="finisher", daemon=True),
        ]
        for thread in workers:
            thread.start()
        drain_deadline: float | None = None
        try:
            while not self._finisher_done.is_set():
                if self._stopping.is_set() and drain_deadline is None:
                    log.info("stopping: no new messages; finishing in-flight work")
                    drain_deadline = time.monotonic() + self.config.drain_timeout_s
                    self._channel.basic_cancel(consumer_tag)
                    self.consuming = False
                    self._draining.set()
                if drain_deadline is not None and time.monotonic() > drain_deadline:
                    log.warning("drain timeout: unfinished jobs go back to the queue")
                    break
                self._connection.process_data_events(time_limit=IO_TICK_S)
                if self._channel.is_closed:
                    log.error("channel closed by the broker; unacked jobs return to the queue")
                    return EXIT_BROKER_LOST
        except (pika.exceptions.AMQPConnectionError, pika.exceptions.ChannelClosed) as exc:
            log.error("lost the broker (%r); unacked jobs return to the queue", exc)
            return EXIT_BROKER_LOST
        finally:
            self.consuming = False
            self._stopping.set()
            self._draining.set()
            if self._connection.is_open:
                with contextlib.suppress(pika.exceptions.AMQPError):
                    self._connection.close()
        log.info("stopped")
        return EXIT_OK

    def _on_message(
        self, _channel: BlockingChannel, method: Basic.Deliver, properties: BasicProperties, body: bytes
    ) -> None:
        tag = method.delivery_tag
        headers = properties.headers or {}
        count = int(headers.get("x-delivery-count", 0))
        try:
            message = JobMessage.model_validate_json(body)
        except ValidationError as exc:
            log.error("message %s is not a job (%s); dead-lettering it", properties.message_id, exc)
            self._ack_or_reject(tag, Outcome.DEAD_LETTER)
            return
        self._inbox.put(PendingJob(delivery_tag=tag, message=message, delivery_count=count, tokens=[]))

    def _settle(self, job: PendingJob, outcome: Outcome) -> None:
        """The one place that acks, requeues or dead-letters a job's message (runs on the I/O thread)."""
        log.debug("job %s: %s", job.id, outcome.value)
        metrics.JOBS.labels(self.config.pair, outcome.value).inc()
        self._ack_or_reject(job.delivery_tag, outcome)

    def _ack_or_reject(self, tag: int, outcome: Outcome) -> None:
        channel = self._channel
        if channel is None or channel.is_closed:
            log.warning("channel closed; delivery %d returns to the queue", tag)
            return
        if outcome is Outcome.ACK:
            channel.basic_ack(tag)
        elif outcome is Outcome.RETRY:
            channel.basic_nack(tag, requeue=True)
        else:
            channel.basic_reject(tag, requeue=False)

    def _settle_threadsafe(self, job: PendingJob, outcome: Outcome) -> None:
        connection = self._connection
        if connection is None or not connection.is_open:
            return
        try:
            connection.add_callback_threadsafe(functools.partial(self._settle, job, outcome))
        except pika.exceptions.ConnectionWrongStateError:
            log.warning("connection closed; job %s returns to the queue", job.id)

    # -- translation thread ---------------------------------------------------------------------------------
    def _translation_loop(self) -> None:
        try:
            self._serving = self.translator()
            while True:
                self._take_arrivals()
                if self._draining.is_set():
                    self._release_unstarted()
                    if len(self._packer) == 0:
                        return
                self._follow_model()
                step = self._next_step()
                if step is not None:
                    self._run_step(step)
        except Exception:
            log.exception("translation thread crashed; stopping the worker")
            self._stopping.set()
            self._draining.set()
        finally:
            self._translation_done.set()
            self._finisher_queue.put(None)

    def _take_arrivals(self, timeout_s: float = 0.0) -> None:
        arrivals: list[PendingJob] = []
        try:
            arrivals.append(self._inbox.get(timeout=timeout_s) if timeout_s > 0 else self._inbox.get_nowait())
            while True:
                arrivals.append(self._inbox.get_nowait())
        except queue.Empty:
            pass
        if not arrivals:
            return
        statuses = self.store.statuses(job.id for job in arrivals)
        fresh: list[PendingJob] = []
        for job in arrivals:
            status = statuses.get(job.id)
            if status is not None and status.terminal:
                log.info("job %s is %s; skipping it", job.id, status.value)
                self._finisher_queue.put(_Skipped(job))
                continue
            fresh.append(job)
        if not fresh:
            return
        for job in fresh:
            job.tokens = self._serving.tokenize(job.message.segments)
            job.translations = [None] * len(job.tokens)
            self._packer.add(job)
        self._finisher_queue.put(_MarkRunning([job.id for job in fresh]))

    def _next_step(self) -> Step | None:
        """A step when the budget is full or the oldest job waited ``max_wait_ms``; else wait for arrivals."""
        oldest = self._packer.oldest_received_at()
        if oldest is None:
            self._take_arrivals(timeout_s=IO_TICK_S)
            return None
        waited_s = time.monotonic() - oldest
        max_wait_s = self.config.max_wait_ms / 1000
        full = self._packer.waiting_tokens() >= self.config.max_batch_tokens
        if full or waited_s >= max_wait_s or self._draining.is_set():
            return self._packer.next_step()
        self._take_arrivals(timeout_s=max_wait_s - waited_s)
        return None

    def _follow_model(self) -> None:
        """Switch to a newly promoted model between steps; jobs in progress restart on it (one model per job)."""
        current = self.translator()
        if current is self._serving:
            return
        started = time.perf_counter()
        restarted = 0
        for job in self._packer:
            restarted += job.started
            job.tokens = current.tokenize(job.message.segments)
            job.translations = [None] * len(job.tokens)
            job.next_segment = job.done = 0
        self._serving = current
        log.info(
            "switched to model %s version %s between steps in %.1f ms (%d jobs in progress restarted)",
            current.model.name, current.model.version, (time.perf_counter() - started) * 1000, restarted,
        )  # fmt: skip

    def _run_step(self, step: Step) -> None:
        translator = self._serving
        pair = self.config.pair
        started = time.perf_counter()
        try:
            outputs = translator.translate_tokens(step.sources, step.options)
        except Exception:
            log.exception("step of %d jobs raised; retrying its jobs one by one", len(step.jobs))
            self._run_jobs_alone(step, translator)
        else:
            self._store_outputs(step.targets, outputs, translator)
            metrics.STEP_SECONDS.labels(pair).observe(time.perf_counter() - started)
            metrics.STEP_SEGMENTS.labels(pair).observe(len(step.sources))
            metrics.STEP_JOBS.labels(pair).observe(len(step.jobs))
        finished = self._packer.take_finished()
        if finished:
            self._finisher_queue.put(_Finished(finished, translator))

    def _store_outputs(
        self,
        targets: Sequence[tuple[PendingJob, int]],
        outputs: Sequence[Sequence[str]],
        translator: Translator,
    ) -> None:
        texts = translator.detokenize(outputs)
        for (job, index), text in zip(targets, texts, strict=True):
            job.translations[index] = text
            job.done += 1
        metrics.SEGMENTS.labels(self.config.pair).inc(len(texts))
        metrics.TARGET_TOKENS.labels(self.config.pair).inc(sum(len(t) for t in outputs))

    def _run_jobs_alone(self, step: Step, translator: Translator) -> None:
        for job in step.jobs:
            targets = [(j, i) for j, i in step.targets if j is job]
            try:
                outputs = translator.translate_tokens([job.tokens[i] for _, i in targets], step.options)
            except Exception as exc:
                log.warning("job %s failed to translate: %r", job.id, exc)
                self._packer.remove(job)
                self._finisher_queue.put(_Failed(job, "translation_error", repr(exc), translator))
            else:
                self._store_outputs(targets, outputs, translator)

    def _release_unstarted(self) -> None:
        for job in self._packer:
            if not job.started:
                self._packer.remove(job)
                self._finisher_queue.put(_Settle(job, Outcome.RETRY))

    # -- finisher thread ------------------------------------------------------------------------------------
    def _finisher_loop(self) -> None:
        try:
            while True:
                work = self._finisher_queue.get()
                if work is None:
                    return
                try:
                    self._finish(work)
                except Exception:
                    log.exception("could not record %s; its jobs return to the queue", type(work).__name__)
                    for job in _jobs_of(work):
                        self._settle_threadsafe(job, Outcome.RETRY)
        finally:
            self._finisher_done.set()
            connection = self._connection
            if connection is not None and connection.is_open:
                with contextlib.suppress(pika.exceptions.ConnectionWrongStateError):
                    connection.add_callback_threadsafe(lambda: None)  # wake the I/O loop

    def _finish(self, work: _Work) -> None:
        if isinstance(work, _MarkRunning):
            self.store.mark_running(work.job_ids)
        elif isinstance(work, _Settle):
            self._settle_threadsafe(work.job, work.outcome)
        elif isinstance(work, _Skipped):
            self._announce([work.job])
            self._settle_threadsafe(work.job, Outcome.ACK)
        elif isinstance(work, _Finished):
            self._on_finished(work)
        elif isinstance(work, _Failed):
            self._on_failed(work)

    def _on_finished(self, work: _Finished) -> None:
        model = work.translator.model
        completions = [Completion(job.id, [t or "" for t in job.translations], model) for job in work.jobs]
        stored = self.store.complete_many(completions)
        missing = [job for job in work.jobs if job.id not in stored]
        statuses = self.store.statuses(job.id for job in missing) if missing else {}
        # Jobs terminal already (a redelivery after a failed announce, a cancel) are announced again: the
        # delivery worker ignores an announcement for an event it already has, so no event is ever lost.
        self._announce([job for job in work.jobs if job.id in stored or job.id in statuses])
        for job in work.jobs:
            if job.id in stored:
                log.info(
                    "job %s succeeded (%d segments, model %s v%s)",
                    job.id,
                    len(job.tokens),
                    model.name,
                    model.version,
                )
                self._settle_threadsafe(job, Outcome.ACK)
            elif job.id in statuses:
                log.info("job %s was %s meanwhile; result dropped", job.id, statuses[job.id].value)
                self._settle_threadsafe(job, Outcome.ACK)
            else:
                # Not in the store (yet): the API commits right after the broker confirms, so try again later;
                # a message whose job never appears is dead-lettered by the delivery limit.
                log.warning("job %s not found in the store; returning it to the queue", job.id)
                self._settle_threadsafe(job, self._retry_or_dead_letter(job))

    def _on_failed(self, work: _Failed) -> None:
        job = work.job
        outcome = self._retry_or_dead_letter(job)
        if outcome is Outcome.DEAD_LETTER:
            model = work.translator.model if work.translator else None
            if self.store.fail(job.id, work.code, work.message, model):
                self._announce([job])
            log.error("job %s failed for good after %d deliveries: %s", job.id, job.delivery_count + 1, work.message)
        self._settle_threadsafe(job, outcome)

    def _retry_or_dead_letter(self, job: PendingJob) -> Outcome:
        last = job.delivery_count >= self.config.topology.delivery_limit
        return Outcome.DEAD_LETTER if last else Outcome.RETRY

    def _announce(self, jobs: Sequence[PendingJob]) -> None:
        ids = [job.id for job in jobs if job.message.has_callback]
        if ids:
            self.announce(ids)


def _jobs_of(work: _Work) -> list[PendingJob]:
    if isinstance(work, _Finished):
        return list(work.jobs)
    if isinstance(work, _Failed | _Skipped | _Settle):
        return [work.job]
    return []


__all__ = ["ConsumerConfig", "JobConsumer", "Outcome"]

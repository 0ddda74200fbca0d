"""The translation worker's consumer: pika on one thread, translation and store writes on two others.

Threads and what they own:

* **I/O thread** (:meth:`JobConsumer.run`): the pika connection. It receives messages into the inbox and is the
  only place that acks, nacks or dead-letters (:meth:`JobConsumer._settle`); other threads hand it settlements
  with ``connection.add_callback_threadsafe`` so heartbeats keep flowing while a batch translates.
* **translation thread**: tokenizes what arrives, packs segments of many jobs into token-budget steps
  (:mod:`worker.batching`), runs beam search, and hands finished jobs on. Up to :data:`STEPS_IN_FLIGHT` steps are
  handed to CTranslate2 at once: while the model works on one, the thread takes arrivals, stores the outputs of
  the last one and packs the next, so the model's replicas never wait for Python between steps.
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
from collections import deque
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
#: Translation steps handed to CTranslate2 at once. With two, the next step queues behind the running one, so a
#: replica that finishes its share starts on the next step at once (see README.md, "Performance" for the figures).
STEPS_IN_FLIGHT = 2


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
class _Running:
    """A step handed to a step thread; that thread fills in its outcome."""

    step: Step
    translator: Translator
    started: float
    outputs: list[list[str]] | None = None
    error: Exception | None = None
    done: bool = False


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
        model_staged: Callable[[], bool] | None = None,
    ) -> None:
        """``translator`` returns the model to serve (promoting a staged one, so it is called only with no step
        running); ``model_staged`` says, without promoting, whether a new model waits: then no new step starts
        until the running ones are done, and the next one runs on the new model."""
        self.config = config
        self.store = store
        self.translator = translator
        self.announce = announce
        self.model_staged = model_staged or (lambda: False)
        #: arrivals from the I/O thread, and None from a step thread when its step is done
        self._inbox: queue.Queue[PendingJob | None] = queue.Queue()
        self._step_queue: queue.Queue[_Running | None] = queue.Queue()
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
            *(threading.Thread(target=self._step_loop, name=f"step-{i}", daemon=True) for i in range(STEPS_IN_FLIGHT)),
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
        running: deque[_Running] = deque()
        try:
            self._serving = self.translator()
            while True:
                self._take_arrivals()
                if self._draining.is_set():
                    self._release_unstarted()
                    if len(self._packer) == 0:
                        return
                if running and running[0].done:
                    self._complete_step(running.popleft())
                    continue
                if not running:
                    self._follow_model()
                if len(running) < STEPS_IN_FLIGHT and not (running and self.model_staged()):
                    step = self._ready_step(busy=bool(running))
                    if step is not None:
                        running.append(self._start_step(step))
                        continue
                self._take_arrivals(timeout_s=self._idle_wait_s(busy=bool(running)))
        except Exception:
            log.exception("translation thread crashed; stopping the worker")
            self._stopping.set()
            self._draining.set()
        finally:
            self._translation_done.set()
            for _ in range(STEPS_IN_FLIGHT):
                self._step_queue.put(None)
            self._finisher_queue.put(None)

    def _take_arrivals(self, timeout_s: float = 0.0) -> None:
        """Tokenize what arrived and give it to the packer; wait up to ``timeout_s`` for an arrival or a step
        to finish (whichever comes first)."""
        arrivals: list[PendingJob] = []
        try:
            item = self._inbox.get(timeout=timeout_s) if timeout_s > 0 else self._inbox.get_nowait()
            while True:
                if item is not None:
                    arrivals.append(item)
                item = self._inbox.get_nowait()
        except queue.Empty:
            pass
        for job in arrivals:
            job.tokens = self._serving.tokenize(job.message.segments)
            job.translations = [None] * len(job.tokens)
            self._packer.add(job)

    def _check_new_jobs(self) -> None:
        """Drop jobs that became terminal (cancelled) while they waited; mark the others running. One query for
        every job not checked yet, made when a step is about to be cut, not once per arrival."""
        unchecked = [job for job in self._packer if not job.checked]
        if not unchecked:
            return
        statuses = self.store.statuses(job.id for job in unchecked)
        fresh: list[str] = []
        for job in unchecked:
            job.checked = True
            status = statuses.get(job.id)
            if status is not None and status.terminal:
                log.info("job %s is %s; skipping it", job.id, status.value)
                self._packer.remove(job)
                self._finisher_queue.put(_Skipped(job))
            else:
                fresh.append(job.id)
        if fresh:
            self._finisher_queue.put(_MarkRunning(fresh))

    def _ready_step(self, busy: bool) -> Step | None:
        """The next step if it is worth starting now, else None.

        With no step running: when the budget is full, the oldest job waited ``max_wait_ms`` (a short queue waits
        no longer), or the worker drains. With a step running (``busy``): only a full step queues behind it; a
        short one keeps filling until the model is free, which is at most one step away.
        """
        oldest = self._packer.oldest_received_at()
        if oldest is None:
            return None
        due = self._packer.waiting_tokens() >= self.config.max_batch_tokens or self._draining.is_set()
        if not due and not busy:
            due = time.monotonic() - oldest >= self.config.max_wait_ms / 1000
        if not due:
            return None
        self._check_new_jobs()
        return self._packer.next_step()

    def _idle_wait_s(self, busy: bool) -> float:
        """How long to wait when no step can start: with a step running, until an arrival or its end (its step
        thread wakes the inbox); else until the oldest waiting job's ``max_wait_ms`` is up."""
        oldest = self._packer.oldest_received_at()
        if busy or oldest is None:
            return IO_TICK_S
        return max(0.0005, min(IO_TICK_S, self.config.max_wait_ms / 1000 - (time.monotonic() - oldest)))

    def _follow_model(self) -> None:
        """Switch to a newly promoted model between steps (never with a step running); jobs in progress restart
        on it (one model per job)."""
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

    def _start_step(self, step: Step) -> _Running:
        """Hand ``step`` to a step thread; the translation thread goes on taking arrivals and packing."""
        running = _Running(step, self._serving, time.perf_counter())
        self._step_queue.put(running)
        return running

    # -- step threads ---------------------------------------------------------------------------------------
    def _step_loop(self) -> None:
        """Run steps (CTranslate2 releases the GIL) and wake the translation thread when one ends. Two of these
        run, so CTranslate2 holds the next step's sub-batches while it works on the current one's."""
        while True:
            running = self._step_queue.get()
            if running is None:
                return
            try:
                running.outputs = running.translator.translate_tokens(running.step.sources, running.step.options)
            except Exception as exc:  # the translation thread retries the step's jobs one by one
                running.error = exc
            running.done = True
            self._inbox.put(None)

    def _complete_step(self, running: _Running) -> None:
        """Put the outputs of a finished step in their jobs and hand finished jobs to the finisher."""
        step, translator = running.step, running.translator
        pair = self.config.pair
        if running.outputs is None:
            log.error("step of %d jobs raised; retrying its jobs one by one", len(step.jobs), exc_info=running.error)
            self._run_jobs_alone(step, translator)
        else:
            self._store_outputs(step.targets, running.outputs, translator)
            metrics.STEP_SECONDS.labels(pair).observe(time.perf_counter() - running.started)
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

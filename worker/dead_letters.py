"""``python -m worker.dead_letters``: inspect and replay jobs that were dead-lettered.

::

    python -m worker.dead_letters list   --pair en-fr            # what is parked, and why
    python -m worker.dead_letters replay --pair en-fr [--job ID]  # put it back on the pair's queue

Replaying a job republishes its message (with a confirm) to ``<prefix>.<pair>``, sets the job back to ``queued`` in the
store (clearing its error) and only then removes it from the dead-letter queue, so a crash in between leaves a
duplicate at worst, never a loss. Settings are the shared ``BT_*`` ones (broker, store, queue prefix).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pika
from pika.adapters.blocking_connection import BlockingChannel
from sqlalchemy import update

from jobs.publisher import connection_parameters
from jobs.schemas import JobMessage, JobStatus
from jobs.settings import SharedSettings
from jobs.store import JobStore, jobs_table
from jobs.topology import Topology

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeadLetter:
    """One parked message: the job and why RabbitMQ dead-lettered it."""

    delivery_tag: int
    job_id: str | None
    reason: str
    deliveries: int
    body: bytes
    properties: pika.BasicProperties


def _death(headers: dict[str, Any]) -> tuple[str, int]:
    deaths = headers.get("x-death") or []
    first = deaths[0] if deaths else {}
    reason = headers.get("x-first-death-reason") or first.get("reason", "unknown")
    return str(reason.decode() if isinstance(reason, bytes) else reason), int(headers.get("x-delivery-count", 0)) + 1


def browse(channel: BlockingChannel, queue: str) -> Iterator[DeadLetter]:
    """Every message of ``queue``, fetched without acking (they return to the queue when the channel closes)."""
    while True:
        method, properties, body = channel.basic_get(queue, auto_ack=False)
        if method is None:
            return
        try:
            job_id: str | None = JobMessage.model_validate_json(body).id
        except ValueError:
            job_id = None
        reason, deliveries = _death(properties.headers or {})
        yield DeadLetter(method.delivery_tag, job_id, reason, deliveries, body, properties)


def fail_stranded(
    channel: BlockingChannel, dead_queue: str, store: JobStore, announce: Callable[[Sequence[str]], None]
) -> list[str]:
    """Fail the jobs RabbitMQ dead-lettered on its own and announce them; return their ids.

    The worker stores ``failed`` before it dead-letters a poison job. But when workers die on every delivery of a
    job (killed mid-batch, out of memory), the broker dead-letters it at the delivery limit and the store still
    says ``queued``/``running``. This finds such jobs and gives them their terminal state. The messages stay parked
    for ``replay``.
    """
    letters = list(browse(channel, dead_queue))
    try:
        statuses = store.statuses(letter.job_id for letter in letters if letter.job_id)
        failed: list[str] = []
        announced: list[str] = []
        for letter in letters:
            status = statuses.get(letter.job_id or "")
            if letter.job_id is None or status is None or status.terminal:
                continue
            message = f"dead-lettered by the broker ({letter.reason}) after {letter.deliveries} deliveries"
            if store.fail(letter.job_id, "dead_lettered", message):
                log.error("job %s %s", letter.job_id, message)
                failed.append(letter.job_id)
                if JobMessage.model_validate_json(letter.body).has_callback:
                    announced.append(letter.job_id)
        if announced:
            announce(announced)
        return failed
    finally:
        for letter in letters:
            channel.basic_nack(letter.delivery_tag, requeue=True)


class StrandedJobSweeper:
    """Runs :func:`fail_stranded` on one pair's dead-letter queue every ``interval_s`` seconds, on its own
    connection and thread."""

    def __init__(
        self,
        broker_url: str,
        topology: Topology,
        pair: str,
        store: JobStore,
        announce: Callable[[Sequence[str]], None],
        interval_s: float,
    ) -> None:
        self._params = connection_parameters(broker_url)
        self._dead_queue = topology.dead_letter_queue(pair)
        self._store = store
        self._announce = announce
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dead-letter-sweeper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                connection = pika.BlockingConnection(self._params)
                try:
                    fail_stranded(connection.channel(), self._dead_queue, self._store, self._announce)
                finally:
                    connection.close()
            except Exception as exc:  # a sweep is retried next interval
                log.warning("dead-letter sweep of %s failed: %r", self._dead_queue, exc)


def requeue_job(store: JobStore, job_id: str) -> None:
    with store.engine.begin() as conn:
        conn.execute(
            update(jobs_table)
            .where(jobs_table.c.id == job_id)
            .values(
                status=JobStatus.QUEUED.value, error_code=None, error_message=None, finished_at=None, started_at=None
            )
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m worker.dead_letters", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["list", "replay"])
    parser.add_argument("--pair", required=True, help="language pair, e.g. en-fr")
    parser.add_argument("--job", help="replay only this job id")
    args = parser.parse_args(argv)
    settings = SharedSettings()
    topology = Topology(prefix=settings.queue_prefix)
    connection = pika.BlockingConnection(connection_parameters(settings.broker_url))
    channel = connection.channel()
    channel.confirm_delivery()
    queue = topology.declare(channel, args.pair)
    dead_queue = topology.dead_letter_queue(args.pair)
    store = JobStore.from_url(settings.store_url)
    replayed = 0
    try:
        for letter in browse(channel, dead_queue):
            if args.command == "list":
                print(json.dumps({"job_id": letter.job_id, "reason": letter.reason, "deliveries": letter.deliveries}))
                continue
            if args.job and letter.job_id != args.job:
                continue
            properties = pika.BasicProperties(
                delivery_mode=pika.DeliveryMode.Persistent,
                content_type="application/json",
                message_id=letter.properties.message_id,
            )
            channel.basic_publish("", queue, letter.body, properties=properties, mandatory=True)
            if letter.job_id:
                requeue_job(store, letter.job_id)
            channel.basic_ack(letter.delivery_tag)
            replayed += 1
            print(f"replayed job {letter.job_id} to {queue}")
    finally:
        connection.close()
    if args.command == "replay":
        print(f"{replayed} job(s) replayed")
    return 0


if __name__ == "__main__":
    sys.exit(main())

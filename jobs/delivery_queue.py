"""The delivery queue and the Celery configuration both of its sides share.

The translation worker and the API enqueue deliveries (:class:`jobs.events.EventAnnouncer`); the delivery
worker (``worker.delivery``) consumes them. Both build their Celery app from :func:`celery_config`, so they
declare the same queue with the same arguments by construction.

Why these settings: retries of a callback wait for minutes to hours. With a **quorum** queue bound to a
**topic** exchange, Celery publishes a delayed task to its native delayed-delivery exchanges
(``celery_delayed_0..27``, per-level TTL queues that dead-letter into ``celery_delayed_delivery``), so the
message waits *in the broker* and reaches the worker only when it is due. With a classic queue or a direct
exchange the worker would hold it unacked until its ETA, and RabbitMQ's ``consumer_timeout`` (30 min) would
close the channel: a crash loop.

Names::

    <queue>           quorum queue, bound to the topic exchange <queue> with routing key <queue>
    <queue>.dlx       fanout exchange receiving messages that exceeded the delivery limit (worker crashes)
    <queue>.dead      quorum queue bound to <queue>.dlx
"""

from __future__ import annotations

from typing import Any

from kombu import Exchange, Queue

#: Name of the delivery task; the enqueuer sends it by name and never imports the worker.
DELIVER_TASK = "batch_translate.deliver_event"
#: Times RabbitMQ hands one delivery message to a worker before dead-lettering it (worker crashes, not HTTP
#: failures: those are retried by publishing a new, delayed message). RabbitMQ 3.10 has no default.
DELIVERY_LIMIT = 5
#: Seconds to wait for the broker's publisher confirm.
CONFIRM_TIMEOUT_S = 10.0


def delivery_exchange(name: str) -> Exchange:
    return Exchange(name, type="topic", durable=True)


def dead_letter_exchange(name: str) -> Exchange:
    return Exchange(f"{name}.dlx", type="fanout", durable=True)


def delivery_queue(name: str) -> Queue:
    """The quorum queue deliveries travel on, bound to its topic exchange."""
    return Queue(
        name,
        delivery_exchange(name),
        routing_key=name,
        durable=True,
        queue_arguments={
            "x-queue-type": "quorum",
            "x-delivery-limit": DELIVERY_LIMIT,
            "x-dead-letter-exchange": dead_letter_exchange(name).name,
            # At-least-once dead-lettering: a delivery that keeps crashing the worker is parked, not dropped.
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        },
    )


def dead_letter_queue(name: str) -> Queue:
    """Where deliveries that exceeded :data:`DELIVERY_LIMIT` are parked for an operator."""
    return Queue(
        f"{name}.dead",
        dead_letter_exchange(name),
        durable=True,
        queue_arguments={"x-queue-type": "quorum"},
    )


def celery_config(broker_url: str, queue_name: str) -> dict[str, Any]:
    """Celery settings for the delivery queue, shared by the enqueuer and the delivery worker."""
    queue = delivery_queue(queue_name)
    return {
        "broker_url": broker_url,
        "broker_connection_retry_on_startup": True,
        # Every publish waits for the broker's confirm (kombu raises if the broker nacks).
        "broker_transport_options": {"confirm_publish": True},
        "task_queues": [queue],
        "task_default_queue": queue_name,
        "task_default_exchange": queue_name,
        "task_default_exchange_type": "topic",
        "task_default_routing_key": queue_name,
        "task_default_queue_type": "quorum",
        "task_create_missing_queue_type": "quorum",
        "broker_native_delayed_delivery_queue_type": "quorum",
        "task_routes": {DELIVER_TASK: {"queue": queue_name}},
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_ignore_result": True,
        "result_backend": None,
        # A message is acked after the task ran; one at a time per worker thread.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
    }

"""Queue topology: one durable quorum queue per language pair, with a delivery limit and a dead-letter queue.

Names::

    <prefix>.<src>-<tgt>          quorum queue the pair's workers consume (x-delivery-limit, DLX)
    <prefix>.dlx                  direct exchange that receives dead letters
    <prefix>.<src>-<tgt>.dead     quorum queue bound to the DLX with the pair queue's name as routing key

Publishing goes through the default exchange with the queue name as routing key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pika.adapters.blocking_connection import BlockingChannel

#: How many times RabbitMQ delivers a job before dead-lettering it (3.10 has no default: always set one).
DEFAULT_DELIVERY_LIMIT = 3


@dataclass(frozen=True)
class Topology:
    """Names and arguments of the queues for one queue prefix."""

    prefix: str = "translate"
    delivery_limit: int = DEFAULT_DELIVERY_LIMIT

    @property
    def dead_letter_exchange(self) -> str:
        return f"{self.prefix}.dlx"

    def queue(self, pair: str) -> str:
        return f"{self.prefix}.{pair}"

    def dead_letter_queue(self, pair: str) -> str:
        return f"{self.prefix}.{pair}.dead"

    def queue_arguments(self) -> dict[str, Any]:
        return {
            "x-queue-type": "quorum",
            "x-delivery-limit": self.delivery_limit,
            "x-dead-letter-exchange": self.dead_letter_exchange,
            # At-least-once dead-lettering: a poison job is never silently dropped.
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        }

    def declare(self, channel: BlockingChannel, pair: str) -> str:
        """Declare (idempotently) the pair's queue, the DLX and the dead-letter queue; return the queue name."""
        queue = self.queue(pair)
        dead = self.dead_letter_queue(pair)
        channel.exchange_declare(self.dead_letter_exchange, exchange_type="direct", durable=True)
        channel.queue_declare(dead, durable=True, arguments={"x-queue-type": "quorum"})
        channel.queue_bind(dead, self.dead_letter_exchange, routing_key=queue)
        channel.queue_declare(queue, durable=True, arguments=self.queue_arguments())
        return queue

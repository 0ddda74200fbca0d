"""Confirmed, persistent publishing of job messages.

pika's ``BlockingConnection`` is not thread-safe, so the publisher keeps a small pool of connections and hands
one to each caller at a time. Every publish waits for the broker's confirm; a publish the broker cannot route,
nacks or cannot take raises :class:`~jobs.errors.BrokerUnavailable`.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from jobs.errors import BrokerUnavailable
from jobs.schemas import JobMessage
from jobs.topology import Topology

log = logging.getLogger(__name__)

#: Seconds to wait for a TCP connection to the broker before answering 503.
CONNECT_TIMEOUT_S = 3.0
#: Connections kept open per publisher (API worker threads share them).
DEFAULT_POOL_SIZE = 8
#: Seconds before publishing again a message the broker nacked. A quorum queue nacks while it has no leader yet,
#: e.g. right after its first declaration (seen in the benchmark: the first jobs of a new pair got 503).
NACK_RETRY_DELAY_S = 0.1


@dataclass
class _Link:
    connection: pika.BlockingConnection
    channel: BlockingChannel
    declared: set[str] = field(default_factory=set)


def connection_parameters(url: str, heartbeat_s: int | None = None) -> pika.URLParameters:
    params = pika.URLParameters(url)
    params.socket_timeout = CONNECT_TIMEOUT_S
    params.blocked_connection_timeout = 30
    params.connection_attempts = 1
    if heartbeat_s is not None:
        params.heartbeat = heartbeat_s
    return params


class JobPublisher:
    """Publishes :class:`JobMessage` s to their pair's queue with publisher confirms."""

    def __init__(self, broker_url: str, topology: Topology, pool_size: int = DEFAULT_POOL_SIZE) -> None:
        self._params = connection_parameters(broker_url, heartbeat_s=0)
        self.topology = topology
        self._idle: queue.LifoQueue[_Link] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(pool_size)

    def _connect(self) -> _Link:
        try:
            connection = pika.BlockingConnection(self._params)
            channel = connection.channel()
            channel.confirm_delivery()
        except (pika.exceptions.AMQPError, OSError) as exc:
            raise BrokerUnavailable(f"cannot connect to the broker: {exc!r}") from exc
        return _Link(connection, channel)

    def publish(self, message: JobMessage) -> None:
        """Publish ``message`` persistently and return once the broker confirmed it."""
        pair = f"{message.source_lang}-{message.target_lang}"
        body = message.model_dump_json().encode()
        with self._slots:
            for attempt in (1, 2):
                link = self._take()
                try:
                    if pair not in link.declared:
                        self.topology.declare(link.channel, pair)
                        link.declared.add(pair)
                    link.channel.basic_publish(
                        exchange="",
                        routing_key=self.topology.queue(pair),
                        body=body,
                        properties=pika.BasicProperties(
                            delivery_mode=pika.DeliveryMode.Persistent,
                            content_type="application/json",
                            message_id=message.id,
                        ),
                        mandatory=True,
                    )
                except pika.exceptions.NackError as exc:
                    if attempt == 2:
                        self._discard(link)
                        raise BrokerUnavailable(f"broker did not accept job {message.id}: {exc!r}") from exc
                    log.info("broker nacked job %s; publishing it again", message.id)
                    self._idle.put(link)
                    time.sleep(NACK_RETRY_DELAY_S)
                    continue
                except pika.exceptions.UnroutableError as exc:
                    self._discard(link)
                    raise BrokerUnavailable(f"broker did not accept job {message.id}: {exc!r}") from exc
                except (pika.exceptions.AMQPError, OSError) as exc:
                    self._discard(link)
                    if attempt == 2:
                        raise BrokerUnavailable(f"publish of job {message.id} failed: {exc!r}") from exc
                    log.info("broker connection lost; reconnecting (job %s)", message.id)
                    continue
                self._idle.put(link)
                return

    def ping(self) -> None:
        """Raise :class:`BrokerUnavailable` unless the broker accepts a connection."""
        with self._slots:
            link = self._take()
            if link.connection.is_open:
                link.connection.process_data_events(0)
                self._idle.put(link)
            else:
                self._discard(link)
                raise BrokerUnavailable("broker connection closed")

    def _take(self) -> _Link:
        while True:
            try:
                link = self._idle.get_nowait()
            except queue.Empty:
                return self._connect()
            if link.connection.is_open and link.channel.is_open:
                return link
            self._discard(link)

    @staticmethod
    def _discard(link: _Link) -> None:
        try:
            if link.connection.is_open:
                link.connection.close()
        except (pika.exceptions.AMQPError, OSError):
            pass

    def close(self) -> None:
        while True:
            try:
                self._discard(self._idle.get_nowait())
            except queue.Empty:
                return

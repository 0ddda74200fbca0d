"""Delivery state in the job store: one delivery per (job, event) with a stable webhook-id, and every attempt.

Tables live on :data:`jobs.store.metadata`, so :meth:`jobs.store.JobStore.create_schema` creates them.

A delivery goes through *rounds*: round 0 starts when the job's event is first announced; ``POST
…/redeliver`` starts the next round (same webhook-id). Each delivery message names the round and attempt it
is for, and a message whose round is over, or whose attempt was already made, is dropped — so a redelivered
broker message or a duplicate announcement does not start a second chain of retries. A worker *claims* an
attempt (a lease in ``claimed_until``) before it sends the request, so two copies of one message handled at
the same moment send it once; a claim whose worker died expires.

Statuses: ``pending`` (an attempt is due), ``delivered`` (2xx), ``gone`` (410: the receiver asked us to stop),
``failed`` (the retry schedule ran out, or the URL was refused by the SSRF policy at delivery time).
"""

from __future__ import annotations

import enum
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import BaseModel, Field
from sqlalchemy import (
    Boolean,
    Column,
    Engine,
    ForeignKey,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError

from jobs.schemas import DeliveryInfo
from jobs.store import UtcDateTime, metadata, utcnow

log = logging.getLogger(__name__)


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"
    GONE = "gone"


class AttemptOutcome(enum.StrEnum):
    DELIVERED = "delivered"  #: 2xx
    RETRY = "retry"  #: failed, another attempt is scheduled
    FAILED = "failed"  #: failed, no attempt left (or refused by the SSRF policy)
    GONE = "gone"  #: 410


deliveries_table = Table(
    "deliveries",
    metadata,
    Column("webhook_id", String(64), primary_key=True),
    Column("job_id", String(36), ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("client", String(128), nullable=False),
    Column("event_type", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("round", Integer, nullable=False, default=0),
    Column("round_attempts", Integer, nullable=False, default=0),
    Column("attempts", Integer, nullable=False, default=0),
    Column("retry_scheduled", Boolean, nullable=False, default=False),
    Column("claimed_until", UtcDateTime()),
    Column("next_attempt_at", UtcDateTime()),
    Column("last_status_code", Integer),
    Column("last_error", Text),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    UniqueConstraint("job_id", "event_type", name="uq_deliveries_job_event"),
)

delivery_attempts_table = Table(
    "delivery_attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "webhook_id",
        String(64),
        ForeignKey("deliveries.webhook_id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("job_id", String(36), nullable=False, index=True),
    Column("round", Integer, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("attempted_at", UtcDateTime(), nullable=False),
    Column("status_code", Integer),
    Column("latency_ms", Integer),
    Column("error", Text),
    Column("outcome", String(16), nullable=False),
)


def new_webhook_id() -> str:
    """A webhook-id: ``msg_`` and 32 hex digits (no ``.``, which the signed content uses as separator)."""
    return f"msg_{uuid.uuid4().hex}"


@dataclass(frozen=True)
class Delivery:
    """A delivery as stored."""

    webhook_id: str
    job_id: str
    client: str
    event_type: str
    status: DeliveryStatus
    round: int
    round_attempts: int
    attempts: int
    retry_scheduled: bool
    claimed_until: datetime | None
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: RowMapping) -> Delivery:
        return cls(
            webhook_id=row["webhook_id"],
            job_id=row["job_id"],
            client=row["client"],
            event_type=row["event_type"],
            status=DeliveryStatus(row["status"]),
            round=row["round"],
            round_attempts=row["round_attempts"],
            attempts=row["attempts"],
            retry_scheduled=bool(row["retry_scheduled"]),
            claimed_until=row["claimed_until"],
            next_attempt_at=row["next_attempt_at"],
            last_status_code=row["last_status_code"],
            last_error=row["last_error"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )


@dataclass(frozen=True)
class AttemptRecord:
    """What one attempt did, as the delivery worker reports it."""

    round: int
    attempt: int
    attempted_at: datetime
    status_code: int | None
    latency_ms: int | None
    error: str | None
    outcome: AttemptOutcome
    next_attempt_at: datetime | None = None


# -- HTTP models (GET /v1/jobs/{id}/deliveries, POST /v1/jobs/{id}/redeliver) ------------------------------
class DeliveryAttemptPublic(BaseModel):
    round: int = Field(description="Delivery round: 0 for the first announcement, +1 per redeliver.")
    attempt: int = Field(description="Attempt number within the round, from 1.")
    attempted_at: datetime
    status_code: int | None = Field(description="HTTP status the receiver answered; null if none.")
    latency_ms: int | None = Field(description="Time to the receiver's answer (or to the error), in ms.")
    error: str | None = Field(description="Why the attempt failed without (or besides) a status code.")
    outcome: AttemptOutcome


class DeliveryPublic(BaseModel):
    webhook_id: str = Field(description="The webhook-id header: the same on every attempt and redelivery.")
    event_type: str
    status: DeliveryStatus
    attempts: int = Field(description="Attempts made, all rounds together.")
    next_attempt_at: datetime | None
    created_at: datetime
    updated_at: datetime
    attempt_log: list[DeliveryAttemptPublic]


class DeliveryLog(BaseModel):
    """Body of ``GET /v1/jobs/{id}/deliveries``."""

    job_id: str
    deliveries: list[DeliveryPublic]


class DeliveryStore:
    """Reads and writes delivery state. Every method is one short transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def get(self, job_id: str, event_type: str | None = None) -> Delivery | None:
        query = select(deliveries_table).where(deliveries_table.c.job_id == job_id)
        if event_type is not None:
            query = query.where(deliveries_table.c.event_type == event_type)
        with self.engine.connect() as conn:
            row = conn.execute(query.order_by(deliveries_table.c.created_at)).mappings().first()
        return Delivery.from_row(row) if row else None

    def open(self, job_id: str, client: str, event_type: str) -> Delivery:
        """The delivery of ``job_id``'s ``event_type``, created (round 0, pending) on first use."""
        existing = self.get(job_id, event_type)
        if existing is not None:
            return existing
        now = utcnow()
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(deliveries_table).values(
                        webhook_id=new_webhook_id(),
                        job_id=job_id,
                        client=client,
                        event_type=event_type,
                        status=DeliveryStatus.PENDING.value,
                        round=0,
                        round_attempts=0,
                        attempts=0,
                        retry_scheduled=False,
                        created_at=now,
                        updated_at=now,
                    )
                )
        except IntegrityError:
            log.info("job %s: delivery of %s opened concurrently", job_id, event_type)
        created = self.get(job_id, event_type)
        if created is None:  # pragma: no cover - the row was just written
            raise RuntimeError(f"delivery of job {job_id} vanished")
        return created

    def restart(self, job_id: str, client: str, event_type: str) -> Delivery:
        """Start a new round (same webhook-id): status pending, attempts of the round reset."""
        delivery = self.open(job_id, client, event_type)
        if delivery.round_attempts == 0 and delivery.status is DeliveryStatus.PENDING:
            return delivery  # the current round has not made its first attempt yet: it is the new round
        with self.engine.begin() as conn:
            conn.execute(
                update(deliveries_table)
                .where(deliveries_table.c.webhook_id == delivery.webhook_id)
                .values(
                    round=deliveries_table.c.round + 1,
                    round_attempts=0,
                    retry_scheduled=False,
                    claimed_until=None,
                    next_attempt_at=None,
                    status=DeliveryStatus.PENDING.value,
                    updated_at=utcnow(),
                )
            )
        restarted = self.get(job_id, event_type)
        assert restarted is not None
        log.info("job %s: delivery %s restarted, round %d", job_id, delivery.webhook_id, restarted.round)
        return restarted

    def record_attempt(self, delivery: Delivery, attempt: AttemptRecord) -> bool:
        """Store ``attempt`` and move the delivery on; False if another worker already recorded this attempt
        (or the round is over), in which case only the attempt row is kept, for the log."""
        status = {
            AttemptOutcome.DELIVERED: DeliveryStatus.DELIVERED,
            AttemptOutcome.RETRY: DeliveryStatus.PENDING,
            AttemptOutcome.FAILED: DeliveryStatus.FAILED,
            AttemptOutcome.GONE: DeliveryStatus.GONE,
        }[attempt.outcome]
        with self.engine.begin() as conn:
            conn.execute(
                insert(delivery_attempts_table).values(
                    webhook_id=delivery.webhook_id,
                    job_id=delivery.job_id,
                    round=attempt.round,
                    attempt=attempt.attempt,
                    attempted_at=attempt.attempted_at,
                    status_code=attempt.status_code,
                    latency_ms=attempt.latency_ms,
                    error=attempt.error,
                    outcome=attempt.outcome.value,
                )
            )
            result = conn.execute(
                update(deliveries_table)
                .where(
                    deliveries_table.c.webhook_id == delivery.webhook_id,
                    deliveries_table.c.round == attempt.round,
                    deliveries_table.c.round_attempts == attempt.attempt - 1,
                    deliveries_table.c.status == DeliveryStatus.PENDING.value,
                )
                .values(
                    status=status.value,
                    round_attempts=attempt.attempt,
                    attempts=deliveries_table.c.attempts + 1,
                    retry_scheduled=False,
                    claimed_until=None,
                    next_attempt_at=attempt.next_attempt_at,
                    last_status_code=attempt.status_code,
                    last_error=attempt.error,
                    updated_at=utcnow(),
                )
            )
        return bool(result.rowcount)

    def claim(self, webhook_id: str, round_no: int, attempt: int, lease_s: float) -> bool:
        """Take attempt ``attempt`` of round ``round_no`` for ``lease_s`` seconds; False if it was made already
        or another worker holds an unexpired claim on it."""
        now = utcnow()
        with self.engine.begin() as conn:
            result = conn.execute(
                update(deliveries_table)
                .where(
                    deliveries_table.c.webhook_id == webhook_id,
                    deliveries_table.c.round == round_no,
                    deliveries_table.c.round_attempts == attempt - 1,
                    deliveries_table.c.status == DeliveryStatus.PENDING.value,
                    or_(deliveries_table.c.claimed_until.is_(None), deliveries_table.c.claimed_until < now),
                )
                .values(claimed_until=now + timedelta(seconds=lease_s))
            )
        return bool(result.rowcount)

    def mark_retry_scheduled(self, webhook_id: str, round_no: int, attempt: int) -> None:
        """Remember that the broker confirmed the message for the attempt after ``attempt``."""
        with self.engine.begin() as conn:
            conn.execute(
                update(deliveries_table)
                .where(
                    deliveries_table.c.webhook_id == webhook_id,
                    deliveries_table.c.round == round_no,
                    deliveries_table.c.round_attempts == attempt,
                )
                .values(retry_scheduled=True, updated_at=utcnow())
            )

    def log(self, job_id: str) -> DeliveryLog:
        """Every delivery of ``job_id`` with every attempt, oldest first."""
        with self.engine.connect() as conn:
            rows = (
                conn.execute(
                    select(deliveries_table)
                    .where(deliveries_table.c.job_id == job_id)
                    .order_by(deliveries_table.c.created_at)
                )
                .mappings()
                .all()
            )
            attempts = (
                conn.execute(
                    select(delivery_attempts_table)
                    .where(delivery_attempts_table.c.job_id == job_id)
                    .order_by(delivery_attempts_table.c.id)
                )
                .mappings()
                .all()
            )
        deliveries = []
        for row in rows:
            delivery = Delivery.from_row(row)
            deliveries.append(
                DeliveryPublic(
                    webhook_id=delivery.webhook_id,
                    event_type=delivery.event_type,
                    status=delivery.status,
                    attempts=delivery.attempts,
                    next_attempt_at=(delivery.next_attempt_at if delivery.status is DeliveryStatus.PENDING else None),
                    created_at=delivery.created_at,
                    updated_at=delivery.updated_at,
                    attempt_log=[
                        DeliveryAttemptPublic(
                            round=a["round"],
                            attempt=a["attempt"],
                            attempted_at=a["attempted_at"],
                            status_code=a["status_code"],
                            latency_ms=a["latency_ms"],
                            error=a["error"],
                            outcome=AttemptOutcome(a["outcome"]),
                        )
                        for a in attempts
                        if a["webhook_id"] == delivery.webhook_id
                    ],
                )
            )
        return DeliveryLog(job_id=job_id, deliveries=deliveries)


def delivery_summary(engine: Engine, job_id: str) -> DeliveryInfo | None:
    """``JobPublic.delivery``: status and attempts of the job's event delivery (None before there is one)."""
    delivery = DeliveryStore(engine).get(job_id)
    if delivery is None:
        return None
    return DeliveryInfo(status=delivery.status.value, attempts=delivery.attempts)

"""The job store: one row per job, on SQLite (embedded) or PostgreSQL (production), through SQLAlchemy.

A job row is created inside the transaction that publishes its message, so a job the API answered ``202`` for
is both stored and confirmed by the broker, and a failed publish leaves nothing behind (see :meth:`create_job`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect, RowMapping
from sqlalchemy.exc import DisconnectionError, IntegrityError, OperationalError
from sqlalchemy.types import TypeDecorator

from jobs.errors import IdempotencyConflict, InvalidTransition, JobNotFound, StoreUnavailable
from jobs.schemas import JobCreate, JobStatus, ModelRef

log = logging.getLogger(__name__)

#: A pooled server connection idle for longer than this is checked with ``SELECT 1`` before use, so a restarted
#: server or a dropped connection costs no request; one in steady use is not (a ping on every checkout cost a
#: round trip per transaction: measured in README.md, "Performance").
PING_AFTER_IDLE_S = 5.0


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp column that always reads back time-zone aware, in UTC (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None or value.tzinfo is not None:
            return value
        return value.replace(tzinfo=UTC)


JsonType = JSON().with_variant(JSONB(), "postgresql")
metadata = MetaData()

jobs_table = Table(
    "jobs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("client", String(128), nullable=False, index=True),
    Column("idempotency_key", String(256)),
    Column("request_hash", String(64), nullable=False),
    Column("source_lang", String(32), nullable=False),
    Column("target_lang", String(32), nullable=False),
    Column("status", String(16), nullable=False, index=True),
    Column("segments", JsonType, nullable=False),
    Column("segments_total", Integer, nullable=False),
    Column("segments_done", Integer, nullable=False, default=0),
    Column("translations", JsonType),
    Column("options", JsonType, nullable=False),
    Column("job_metadata", JsonType, nullable=False),
    Column("callback_url", Text),
    Column("model_name", String(256)),
    Column("model_version", String(64)),
    Column("error_code", String(64)),
    Column("error_message", Text),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("started_at", UtcDateTime()),
    Column("finished_at", UtcDateTime()),
    UniqueConstraint("client", "idempotency_key", name="uq_jobs_client_idempotency_key"),
)

served_models_table = Table(
    "served_models",
    metadata,
    Column("pair", String(64), primary_key=True),
    Column("model_name", String(256), nullable=False),
    Column("model_version", String(64), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)


def utcnow() -> datetime:
    return datetime.now(UTC)


def request_fingerprint(job: JobCreate) -> str:
    """Hash of a submission's canonical JSON: the same body under the same Idempotency-Key is the same job."""
    canonical = json.dumps(job.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class JobRecord:
    """A job as stored."""

    id: str
    client: str
    source_lang: str
    target_lang: str
    status: JobStatus
    segments: list[str]
    segments_total: int
    segments_done: int
    translations: list[str] | None
    options: dict[str, Any]
    metadata: dict[str, Any]
    callback_url: str | None
    model: ModelRef | None
    error_code: str | None
    error_message: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @property
    def pair(self) -> str:
        return f"{self.source_lang}-{self.target_lang}"

    @classmethod
    def from_row(cls, row: RowMapping) -> JobRecord:
        model = ModelRef(name=row["model_name"], version=row["model_version"]) if row["model_name"] else None
        return cls(
            id=row["id"],
            client=row["client"],
            source_lang=row["source_lang"],
            target_lang=row["target_lang"],
            status=JobStatus(row["status"]),
            segments=row["segments"],
            segments_total=row["segments_total"],
            segments_done=row["segments_done"],
            translations=row["translations"],
            options=row["options"],
            metadata=row["job_metadata"],
            callback_url=row["callback_url"],
            model=model,
            error_code=row["error_code"],
            error_message=row["error_message"],
            created_at=row["created_at"],
            started_at=row["started_at"],
            finished_at=row["finished_at"],
        )


@dataclass(frozen=True)
class Completion:
    """A finished translation of one job, as the worker hands it to the store."""

    job_id: str
    translations: list[str]
    model: ModelRef


def create_store_engine(url: str) -> Engine:
    """An engine for ``url``; a SQLite file gets its folder, WAL mode and a busy timeout."""
    if url.startswith("sqlite"):
        database = url.split("///", 1)[-1]
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    engine = create_engine(url, pool_size=10, max_overflow=10)

    @event.listens_for(engine, "checkin")
    def _idle_from(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_S:
            return
        try:
            cursor = dbapi_connection.cursor()
            cursor.execute("SELECT 1")
            cursor.close()
        except Exception as exc:  # any driver error: the pool discards the connection and takes another
            raise DisconnectionError(f"pooled connection is gone: {exc!r}") from exc

    return engine


class JobStore:
    """Reads and writes jobs. Every method is one short transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def from_url(cls, url: str) -> JobStore:
        return cls(create_store_engine(url))

    def create_schema(self) -> None:
        metadata.create_all(self.engine)

    def ping(self) -> None:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except OperationalError as exc:
            raise StoreUnavailable(str(exc)) from exc

    # -- submission -------------------------------------------------------------------------------------------
    def create_job(
        self,
        client: str,
        job: JobCreate,
        idempotency_key: str | None,
        publish: Callable[[JobRecord], None],
    ) -> tuple[JobRecord, bool]:
        """Store ``job`` and call ``publish`` before committing; return ``(record, created)``.

        If ``publish`` raises, the transaction rolls back and nothing is stored. A key already used by this client
        returns the first job (``created`` is False) when the body is the same and raises
        :class:`IdempotencyConflict` when it differs.
        """
        # Only a retry with the same key compares fingerprints: without a key, skip the hashing.
        fingerprint = request_fingerprint(job) if idempotency_key is not None else ""
        if idempotency_key is not None:
            existing = self._by_idempotency_key(client, idempotency_key)
            if existing is not None:
                return self._replay(existing, fingerprint), False
        record = JobRecord(
            id=str(uuid.uuid4()),
            client=client,
            source_lang=job.source_lang,
            target_lang=job.target_lang,
            status=JobStatus.QUEUED,
            segments=job.segments,
            segments_total=len(job.segments),
            segments_done=0,
            translations=None,
            options=job.options.model_dump(),
            metadata=job.metadata,
            callback_url=job.callback_url,
            model=None,
            error_code=None,
            error_message=None,
            created_at=utcnow(),
            started_at=None,
            finished_at=None,
        )
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(jobs_table).values(
                        id=record.id,
                        client=client,
                        idempotency_key=idempotency_key,
                        request_hash=fingerprint,
                        source_lang=record.source_lang,
                        target_lang=record.target_lang,
                        status=record.status.value,
                        segments=record.segments,
                        segments_total=record.segments_total,
                        segments_done=0,
                        options=record.options,
                        job_metadata=record.metadata,
                        callback_url=record.callback_url,
                        created_at=record.created_at,
                    )
                )
                publish(record)
        except IntegrityError:
            # A concurrent request with the same key won the race: answer with its job.
            existing = self._by_idempotency_key(client, idempotency_key or "")
            if existing is None:
                raise
            return self._replay(existing, fingerprint), False
        except OperationalError as exc:
            raise StoreUnavailable(str(exc)) from exc
        return record, True

    def _by_idempotency_key(self, client: str, key: str) -> RowMapping | None:
        with self.engine.connect() as conn:
            return (
                conn.execute(
                    select(jobs_table).where(jobs_table.c.client == client, jobs_table.c.idempotency_key == key)
                )
                .mappings()
                .first()
            )

    @staticmethod
    def _replay(row: RowMapping, fingerprint: str) -> JobRecord:
        if row["request_hash"] != fingerprint:
            raise IdempotencyConflict("Idempotency-Key was already used with a different request body")
        return JobRecord.from_row(row)

    # -- reads ------------------------------------------------------------------------------------------------
    def get(self, job_id: str, client: str | None = None) -> JobRecord:
        """The job ``job_id``; with ``client``, only if that client owns it (else :class:`JobNotFound`)."""
        query = select(jobs_table).where(jobs_table.c.id == job_id)
        if client is not None:
            query = query.where(jobs_table.c.client == client)
        with self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        if row is None:
            raise JobNotFound(job_id)
        return JobRecord.from_row(row)

    def statuses(self, job_ids: Iterable[str]) -> dict[str, JobStatus]:
        ids = list(job_ids)
        if not ids:
            return {}
        with self.engine.connect() as conn:
            rows = conn.execute(select(jobs_table.c.id, jobs_table.c.status).where(jobs_table.c.id.in_(ids))).all()
        return {row.id: JobStatus(row.status) for row in rows}

    # -- state changes ----------------------------------------------------------------------------------------
    def cancel(self, job_id: str, client: str) -> JobRecord:
        """Cancel a queued job; a job already running or finished raises :class:`InvalidTransition`."""
        with self.engine.begin() as conn:
            result = conn.execute(
                update(jobs_table)
                .where(
                    jobs_table.c.id == job_id,
                    jobs_table.c.client == client,
                    jobs_table.c.status == JobStatus.QUEUED.value,
                )
                .values(status=JobStatus.CANCELLED.value, finished_at=utcnow())
            )
        if result.rowcount == 0:
            current = self.get(job_id, client)  # raises JobNotFound for someone else's job
            raise InvalidTransition(f"job {job_id} is {current.status.value}; only queued jobs can be cancelled")
        return self.get(job_id, client)

    def mark_running(self, job_ids: Sequence[str]) -> None:
        if not job_ids:
            return
        with self.engine.begin() as conn:
            conn.execute(
                update(jobs_table)
                .where(jobs_table.c.id.in_(list(job_ids)), jobs_table.c.status == JobStatus.QUEUED.value)
                .values(status=JobStatus.RUNNING.value, started_at=utcnow())
            )

    def complete_many(self, completions: Sequence[Completion]) -> set[str]:
        """Store results of several jobs in one transaction; return the ids that were actually completed.

        A job that was cancelled meanwhile, or is already terminal, is left as it is and not returned.
        """
        done: set[str] = set()
        now = utcnow()
        with self.engine.begin() as conn:
            for item in completions:
                result = conn.execute(
                    update(jobs_table)
                    .where(
                        jobs_table.c.id == item.job_id,
                        jobs_table.c.status.in_([JobStatus.QUEUED.value, JobStatus.RUNNING.value]),
                    )
                    .values(
                        status=JobStatus.SUCCEEDED.value,
                        translations=item.translations,
                        segments_done=len(item.translations),
                        model_name=item.model.name,
                        model_version=item.model.version,
                        started_at=func.coalesce(jobs_table.c.started_at, now),
                        finished_at=now,
                    )
                )
                if result.rowcount:
                    done.add(item.job_id)
        return done

    def fail(self, job_id: str, code: str, message: str, model: ModelRef | None = None) -> bool:
        """Mark a job failed with a reason; False if it was already terminal."""
        values: dict[str, Any] = {
            "status": JobStatus.FAILED.value,
            "error_code": code,
            "error_message": message[:2000],
            "finished_at": utcnow(),
        }
        if model is not None:
            values |= {"model_name": model.name, "model_version": model.version}
        with self.engine.begin() as conn:
            result = conn.execute(
                update(jobs_table)
                .where(
                    jobs_table.c.id == job_id,
                    jobs_table.c.status.in_([JobStatus.QUEUED.value, JobStatus.RUNNING.value]),
                )
                .values(**values)
            )
        return bool(result.rowcount)

    # -- served models ----------------------------------------------------------------------------------------
    def record_served_model(self, pair: str, model: ModelRef) -> None:
        """Remember which model version serves ``pair`` (written by workers when they load a model)."""
        now = utcnow()
        with self.engine.begin() as conn:
            updated = conn.execute(
                update(served_models_table)
                .where(served_models_table.c.pair == pair)
                .values(model_name=model.name, model_version=model.version, updated_at=now)
            )
            if updated.rowcount == 0:
                conn.execute(
                    insert(served_models_table).values(
                        pair=pair, model_name=model.name, model_version=model.version, updated_at=now
                    )
                )

    def served_models(self) -> dict[str, tuple[ModelRef, datetime]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(served_models_table)).mappings().all()
        return {
            row["pair"]: (
                ModelRef(name=row["model_name"], version=row["model_version"]),
                row["updated_at"],
            )
            for row in rows
        }


def backlog(engine: Engine) -> dict[str, tuple[int, int]]:
    """Queued work per pair: ``{pair: (jobs, segments)}`` of jobs not yet finished (what KEDA may scale on)."""
    pending = [JobStatus.QUEUED.value, JobStatus.RUNNING.value]
    query = (
        select(
            jobs_table.c.source_lang,
            jobs_table.c.target_lang,
            func.count(),
            func.coalesce(func.sum(jobs_table.c.segments_total - jobs_table.c.segments_done), 0),
        )
        .where(jobs_table.c.status.in_(pending))
        .group_by(jobs_table.c.source_lang, jobs_table.c.target_lang)
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return {f"{src}-{tgt}": (int(jobs), int(segments)) for src, tgt, jobs, segments in rows}

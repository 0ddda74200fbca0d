"""Retention: finished jobs (their results and delivery logs) are kept for a period, then deleted."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import Engine, delete, select

from jobs.deliveries import deliveries_table, delivery_attempts_table
from jobs.schemas import TERMINAL_STATUSES
from jobs.store import jobs_table

log = logging.getLogger(__name__)

#: Seconds between two purges run by the API.
PURGE_INTERVAL_S = 3600


def purge_finished(engine: Engine, before: datetime) -> int:
    """Delete jobs that finished before ``before``, with their delivery records; return how many jobs went."""
    finished = select(jobs_table.c.id).where(
        jobs_table.c.finished_at < before,
        jobs_table.c.status.in_([status.value for status in TERMINAL_STATUSES]),
    )
    with engine.begin() as conn:
        ids = [row.id for row in conn.execute(finished)]
        if not ids:
            return 0
        conn.execute(delete(delivery_attempts_table).where(delivery_attempts_table.c.job_id.in_(ids)))
        conn.execute(delete(deliveries_table).where(deliveries_table.c.job_id.in_(ids)))
        conn.execute(delete(jobs_table).where(jobs_table.c.id.in_(ids)))
    log.info("purged %d jobs finished before %s", len(ids), before.isoformat())
    return len(ids)

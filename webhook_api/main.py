"""``create_app``: build the FastAPI application from settings (nothing happens at import time)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta
from functools import partial

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from jobs import deliveries
from jobs.callback_urls import CallbackUrlPolicy
from jobs.publisher import JobPublisher
from jobs.retention import PURGE_INTERVAL_S, purge_finished
from jobs.schemas import DeliveryInfo
from jobs.store import JobStore, utcnow
from jobs.topology import Topology
from webhook_api.body_limit import BodyLimit
from webhook_api.deps import Services
from webhook_api.problems import install_problem_handlers
from webhook_api.routes import ROUTERS
from webhook_api.settings import ApiSettings

log = logging.getLogger(__name__)


def _no_announcer(job_ids: Sequence[str]) -> None:
    log.warning("no event announcer configured; jobs %s are not announced", list(job_ids))


def create_app(
    settings: ApiSettings,
    *,
    announce: Callable[[Sequence[str]], None] | None = None,
    delivery_summary: Callable[[str], DeliveryInfo | None] | None = None,
) -> FastAPI:
    """The API for ``settings``. Connections are opened lazily; the schema is created at start-up."""
    if not settings.api_keys:
        raise ValueError("BT_API_API_KEYS is empty: configure at least one client:key pair")
    store = JobStore.from_url(settings.store_url)
    publisher = JobPublisher(
        settings.broker_url, Topology(prefix=settings.queue_prefix), pool_size=settings.publisher_pool_size
    )
    services = Services(
        settings=settings,
        store=store,
        publisher=publisher,
        callback_policy=CallbackUrlPolicy(settings.callback_allowlist),
        announce=announce or _no_announcer,
        delivery_summary=delivery_summary or partial(deliveries.delivery_summary, store.engine),
    )

    async def purge_periodically() -> None:
        retention = timedelta(days=settings.result_retention_days)
        while True:
            try:
                await run_in_threadpool(purge_finished, store.engine, utcnow() - retention)
            except Exception as exc:  # the store may be down for a while: try again next time
                log.warning("result purge failed: %r", exc)
            await asyncio.sleep(PURGE_INTERVAL_S)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        store.create_schema()
        purger = asyncio.create_task(purge_periodically()) if settings.result_retention_days else None
        yield
        if purger is not None:
            purger.cancel()
        publisher.close()
        store.engine.dispose()

    app = FastAPI(
        title="batch-translate",
        version="0.1.0",
        summary="Queue-driven batch machine translation with signed callbacks",
        lifespan=lifespan,
    )
    app.state.services = services
    install_problem_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    return app

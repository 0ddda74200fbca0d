"""``create_app``: build the FastAPI application from settings (nothing happens at import time)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI

from jobs import deliveries
from jobs.callback_urls import CallbackUrlPolicy
from jobs.publisher import JobPublisher
from jobs.schemas import DeliveryInfo
from jobs.store import JobStore
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

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        store.create_schema()
        yield
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

"""``python -m worker``: the translation worker for one language pair.

Settings come from ``BT_*`` / ``BT_WORKER_*`` environment variables. SIGTERM (and SIGINT) drain: stop consuming,
finish the jobs already started, give unstarted ones back to the queue, exit 0.
"""

from __future__ import annotations

import logging
import signal
import sys
from types import FrameType

from jobs.logging_setup import configure_logging
from jobs.store import JobStore
from jobs.topology import Topology
from worker.consumer import ConsumerConfig, JobConsumer
from worker.health import HealthServer
from worker.metrics import MODEL_INFO
from worker.settings import WorkerSettings
from worker.translator import Translator, TranslatorConfig

log = logging.getLogger("worker")

#: Exit code when the settings cannot run a worker.
EXIT_CONFIG = 2


def translator_config(settings: WorkerSettings) -> TranslatorConfig:
    return TranslatorConfig(
        device=settings.device,
        compute_type=settings.compute_type,
        inter_threads=settings.inter_threads,
        intra_threads=settings.intra_threads,
        max_batch_size=settings.max_batch_size,
    )


def build_announcer(settings: WorkerSettings):  # type: ignore[no-untyped-def]
    """Announce terminal jobs to the delivery worker (see :mod:`jobs.events`)."""
    from jobs.events import EventAnnouncer

    return EventAnnouncer.from_settings(settings).announce


def main() -> None:
    configure_logging()
    settings = WorkerSettings()
    if settings.model_dir is None:
        log.error("no model: set BT_WORKER_MODEL_DIR to a CTranslate2 model directory")
        sys.exit(EXIT_CONFIG)
    store = JobStore.from_url(settings.store_url)
    store.create_schema()
    translator = Translator(settings.model_dir, translator_config(settings))
    model = translator.model
    store.record_served_model(settings.pair, model)
    MODEL_INFO.labels(settings.pair, model.name, model.version).set(1)
    consumer = JobConsumer(
        ConsumerConfig(
            pair=settings.pair,
            broker_url=settings.broker_url,
            topology=Topology(prefix=settings.queue_prefix),
            prefetch=settings.prefetch,
            max_batch_tokens=settings.max_batch_tokens,
            max_wait_ms=settings.max_wait_ms,
            drain_timeout_s=settings.drain_timeout_s,
        ),
        store=store,
        translator=lambda: translator,
        announce=build_announcer(settings),
    )

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received signal %d; draining", signum)
        consumer.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    health = None
    if settings.metrics_port:
        health = HealthServer(settings.metrics_port, ready=lambda: consumer.consuming)
        health.start()
    code = consumer.run()
    translator.close()
    if health is not None:
        health.stop()
    sys.exit(code)


if __name__ == "__main__":
    main()

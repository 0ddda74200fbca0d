"""``python -m worker``: the translation worker for one language pair.

Settings come from ``BT_*`` / ``BT_WORKER_*`` environment variables. SIGTERM (and SIGINT) drain: stop consuming,
finish the jobs already started, give unstarted ones back to the queue, exit 0.
"""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Callable, Sequence
from types import FrameType

from jobs.events import EventAnnouncer
from jobs.logging_setup import configure_logging
from jobs.store import JobStore
from jobs.topology import Topology
from worker.consumer import ConsumerConfig, JobConsumer
from worker.dead_letters import StrandedJobSweeper
from worker.health import HealthServer
from worker.metrics import MODEL_INFO
from worker.models import ModelSlot, ModelWatcher, RegistryModels
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


def build_announcer(settings: WorkerSettings) -> Callable[[Sequence[str]], None]:
    """Announce terminal jobs to the delivery worker (see :mod:`jobs.events`)."""
    return EventAnnouncer.from_settings(settings).announce


def load_model(settings: WorkerSettings, config: TranslatorConfig) -> tuple[Translator, RegistryModels | None]:
    """The first model to serve: the registry alias when a registry is configured, else the local directory."""
    if settings.registry_uri:
        registry = RegistryModels(
            tracking_uri=settings.registry_uri,
            name=settings.registered_name,
            alias=settings.model_alias,
            cache_dir=settings.model_cache_dir,
        )
        return registry.load(registry.resolve(), config), registry
    if settings.model_dir is None:
        raise ValueError("no model: set BT_WORKER_REGISTRY_URI (MLflow) or BT_WORKER_MODEL_DIR (a local directory)")
    return Translator(settings.model_dir, config), None


def main() -> None:
    configure_logging()
    settings = WorkerSettings()
    store = JobStore.from_url(settings.store_url)
    store.create_schema()
    config = translator_config(settings)
    try:
        translator, registry = load_model(settings, config)
    except ValueError as exc:
        log.error("%s", exc)
        sys.exit(EXIT_CONFIG)

    def on_promote(new: Translator) -> None:
        MODEL_INFO.clear()
        MODEL_INFO.labels(settings.pair, new.model.name, new.model.version).set(1)
        store.record_served_model(settings.pair, new.model)

    slot = ModelSlot(translator, on_promote=on_promote)
    on_promote(translator)
    watcher = None
    if registry is not None:
        watcher = ModelWatcher(registry, slot, config, translator.model.version, settings.model_poll_interval_s)
        watcher.start()
    topology = Topology(prefix=settings.queue_prefix)
    announce = build_announcer(settings)
    consumer = JobConsumer(
        ConsumerConfig(
            pair=settings.pair,
            broker_url=settings.broker_url,
            topology=topology,
            prefetch=settings.prefetch,
            max_batch_tokens=settings.max_batch_tokens,
            max_wait_ms=settings.max_wait_ms,
            drain_timeout_s=settings.drain_timeout_s,
        ),
        store=store,
        translator=slot.current,
        announce=announce,
        model_staged=slot.has_staged,
    )
    sweeper = None
    if settings.dead_letter_sweep_s:
        sweeper = StrandedJobSweeper(
            settings.broker_url, topology, settings.pair, store, announce, settings.dead_letter_sweep_s
        )
        sweeper.start()

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
    if sweeper is not None:
        sweeper.stop()
    if watcher is not None:
        watcher.stop()
    slot.close()
    if health is not None:
        health.stop()
    sys.exit(code)


if __name__ == "__main__":
    main()

"""Which model a worker serves: a local directory, or the MLflow registry's ``champion`` alias, hot-swapped.

* :class:`ModelSlot` holds the translator the translation thread uses. A new model is *staged* by the watcher and
  *promoted* by the translation thread between two steps, so a step never changes model half-way and the old model
  is released only once nothing uses it.
* :class:`RegistryModels` resolves ``models:/<name>@<alias>``, downloads that version into a local cache and loads
  it. The registry layout is written by ``retrain`` (see ``retrain/registry.py``): each version's source is the
  run's ``model/`` artifact directory, a CTranslate2 model in the model directory convention.
* :class:`ModelWatcher` polls the alias and stages a new translator when it moves. Downloading and loading happen on
  the watcher's thread, off the translation path; a failed download or load is logged and retried next poll,
  the served model stays.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from jobs.schemas import ModelRef
from worker.translator import Translator, TranslatorConfig

log = logging.getLogger(__name__)


class ModelSlot:
    """The served translator, and the next one waiting to be promoted between steps."""

    def __init__(self, translator: Translator, on_promote: Callable[[Translator], None] | None = None) -> None:
        self._current = translator
        self._staged: Translator | None = None
        self._lock = threading.Lock()
        self._on_promote = on_promote

    def stage(self, translator: Translator) -> None:
        """Offer ``translator`` for the next step boundary (replacing any other staged one)."""
        with self._lock:
            replaced, self._staged = self._staged, translator
        if replaced is not None:
            replaced.close()

    def current(self) -> Translator:
        """The translator to use now; promotes a staged one (call only between steps, from one thread)."""
        with self._lock:
            staged, self._staged = self._staged, None
        if staged is None:
            return self._current
        old, self._current = self._current, staged
        log.info(
            "now serving %s version %s (was version %s)", staged.model.name, staged.model.version, old.model.version
        )
        # Releasing the old model (unload + malloc_trim) and recording the new one (a store write) take ~100 ms:
        # do them off the translation thread, which goes straight on to the next step.
        threading.Thread(target=self._retire, args=(old, staged), name="model-retire", daemon=True).start()
        return staged

    def _retire(self, old: Translator, new: Translator) -> None:
        old.close()
        if self._on_promote is not None:
            try:
                self._on_promote(new)
            except Exception as exc:
                log.warning("could not record model version %s as served: %r", new.model.version, exc)

    def has_staged(self) -> bool:
        """Whether a new model waits for the next step boundary (never promotes)."""
        with self._lock:
            return self._staged is not None

    def close(self) -> None:
        with self._lock:
            staged, self._staged = self._staged, None
        if staged is not None:
            staged.close()
        self._current.close()


@dataclass(frozen=True)
class RegistryModels:
    """Resolve and fetch versions of one registered model from an MLflow tracking server."""

    tracking_uri: str
    name: str
    alias: str
    cache_dir: Path

    def _client(self):  # type: ignore[no-untyped-def]
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def resolve(self) -> str:
        """The version number the alias points at now."""
        return str(self._client().get_model_version_by_alias(self.name, self.alias).version)

    def fetch(self, version: str) -> Path:
        """Download ``version`` into the cache (once) and return its directory."""
        import mlflow.artifacts

        target = self.cache_dir / self.name / version
        if (target / "model.bin").is_file():
            return target
        partial = target.with_name(f"{version}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        started = time.monotonic()
        # Resolve through our own client: a models:/ URI would consult the default (local) registry.
        source = self._client().get_model_version_download_uri(self.name, version)
        mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=str(partial), tracking_uri=self.tracking_uri)
        # The download lands as the directory itself or inside one subfolder, depending on the source path.
        root = partial if (partial / "model.bin").is_file() else next(p.parent for p in partial.rglob("model.bin"))
        shutil.rmtree(target, ignore_errors=True)
        root.rename(target)
        shutil.rmtree(partial, ignore_errors=True)
        log.info("downloaded %s version %s in %.1fs", self.name, version, time.monotonic() - started)
        return target

    def load(self, version: str, config: TranslatorConfig) -> Translator:
        return Translator(self.fetch(version), config, model=ModelRef(name=self.name, version=version))


class ModelWatcher:
    """Poll the registry alias; stage a freshly loaded translator in ``slot`` whenever it moves."""

    def __init__(
        self,
        registry: RegistryModels,
        slot: ModelSlot,
        config: TranslatorConfig,
        serving_version: str,
        poll_interval_s: float,
    ) -> None:
        self.registry = registry
        self.slot = slot
        self.config = config
        self.poll_interval_s = poll_interval_s
        self._known = serving_version
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="model-watcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def poll_once(self) -> bool:
        """Check the alias once; True when a new version was staged."""
        version = self.registry.resolve()
        if version == self._known:
            return False
        log.info("alias %s of %s moved to version %s; loading it", self.registry.alias, self.registry.name, version)
        translator = self.registry.load(version, self.config)
        self.slot.stage(translator)
        self._known = version
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.poll_interval_s):
            try:
                self.poll_once()
            except Exception as exc:  # the served model stays; try again next poll
                log.warning("model watch failed (%r); still serving version %s", exc, self._known)

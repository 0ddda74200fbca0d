"""The MLflow model registry as ``retrain`` writes it, and as the workers read it.

The registry contract (workers rely on it; change it only together with ``worker/models.py``):

* **One registered model per language pair**, named ``batch-translate-<src>-<tgt>`` by default
  (``BT_RETRAIN_MODEL_NAME_TEMPLATE``; the worker's ``BT_WORKER_MODEL_NAME`` must name the same).
* **The alias** ``champion`` (``BT_RETRAIN_ALIAS``) points at the version workers serve. It moves only when a
  candidate passed the evaluation gate (``gate.decision = promoted``) or an operator imported a model with
  ``retrain import --champion`` (``gate.decision = imported-champion``). Registry *stages* are never used.
* **Each version** is created with ``MlflowClient.create_model_version(name, source=f"runs:/{run_id}/model",
  run_id=run_id)`` from one MLflow run (the experiment has the registered model's name). That run's artifacts:

  - ``model/``: a CTranslate2 model directory in the convention of :mod:`jobs.model_dir` — ``model.bin``,
    ``config.json``, the vocabulary file(s), ``source.spm``, ``target.spm`` and ``model_info.json``, whose ``name``
    is the registered name and whose ``version`` is the **run id** (the version number exists only after
    registering; workers report the registry's version number). So, with ``MLFLOW_TRACKING_URI`` set (the chart
    sets it), ``mlflow.artifacts.download_artifacts(f"models:/{name}@champion", dst_path=...)`` yields a loadable
    directory. Caution, measured with MLflow 3.17.2: ``models:/`` URIs are resolved against the *process-wide*
    registry URI (``MLFLOW_REGISTRY_URI``, else ``MLFLOW_TRACKING_URI``, else a local ``./mlflow.db``); the
    ``tracking_uri``/``registry_uri`` arguments of ``download_artifacts`` do not reach that lookup. Without the
    environment variable, resolve the version with a client (``get_model_version_by_alias`` → ``run_id``) and
    download ``runs:/<run_id>/model`` (what :meth:`Registry.download_model` does).
  - ``checkpoint/``: the Hugging Face Marian checkpoint (weights, ``source.spm``, ``target.spm``, ``vocab.json``,
    tokenizer files) the next candidate is fine-tuned from. Absent for versions imported from a bare CTranslate2
    directory.

* **Version tags** (also set on the run):

  - ``pair``, ``code_version``, ``trained_from`` (``scratch``, ``champion:<version>``, ``base:<dir>``, or
    ``import:<kind>``);
  - the data snapshot: ``data.train_pairs``, ``data.dev_pairs``, ``data.test_pairs``, ``data.train_fingerprint``,
    ``data.test_fingerprint``, ``data.max_arrival_id``, ``data.max_arrival_time`` (absent on imported versions);
  - the gate: ``gate.decision`` (``promoted`` | ``rejected`` | ``imported`` | ``imported-champion``),
    ``gate.reason`` (a sentence saying why), ``gate.metric``, ``gate.margin``, ``gate.candidate_score``,
    ``gate.champion_score``, ``gate.champion_version``.

* **Run metrics**: ``test_chrf``, ``test_bleu``, ``test_exact_match`` of the candidate and ``champion_test_chrf``,
  ``champion_test_bleu``, ``champion_test_exact_match`` of the champion on the same test split, ``new_pairs``,
  ``train_steps``, ``train_seconds``, ``final_loss``. Run params: the training recipe and the gate settings.

Nothing here talks to MLflow at import time; the client is built on first use. MLflow errors become
:class:`RegistryError`.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobs.errors import BatchTranslateError

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger(__name__)

#: Artifact path of the CTranslate2 model directory in a version's run (the version's ``source``).
MODEL_ARTIFACT = "model"
#: Artifact path of the Hugging Face checkpoint to fine-tune from.
CHECKPOINT_ARTIFACT = "checkpoint"
#: Seconds to wait for a new version to become READY.
VERSION_READY_TIMEOUT_S = 300
#: MLflow error codes that mean "there is no such thing".
_NOT_FOUND = frozenset({"RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE"})
#: Longest tag value MLflow accepts on model versions, in characters.
MAX_TAG_CHARS = 5_000


class RegistryError(BatchTranslateError):
    """The MLflow tracking server or registry refused or failed a request."""


@dataclass(frozen=True)
class VersionInfo:
    """One registered version of a pair's model."""

    name: str
    version: str
    run_id: str | None
    tags: dict[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()


def _error_code(exc: Exception) -> str:
    return str(getattr(exc, "error_code", ""))


@contextmanager
def _translated(action: str) -> Iterator[None]:
    """Turn MLflow's exceptions into :class:`RegistryError` naming what we were doing."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as exc:
        raise RegistryError(f"MLflow could not {action}: {exc.message}") from exc


class Registry:
    """One pair's registered model, its runs and its alias on an MLflow server."""

    def __init__(self, tracking_uri: str, name: str, alias: str = "champion") -> None:
        self.tracking_uri = tracking_uri
        self.name = name
        self.alias = alias

    @cached_property
    def client(self) -> MlflowClient:
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    # -- reading ------------------------------------------------------------------------------------------------
    def _info(self, version: Any) -> VersionInfo:
        return VersionInfo(
            name=self.name,
            version=str(version.version),
            run_id=version.run_id or None,
            tags=dict(version.tags or {}),
            aliases=tuple(version.aliases or ()),
        )

    def champion(self) -> VersionInfo | None:
        """The version the alias points at, or None when there is none (no model, or no alias yet)."""
        from mlflow.exceptions import MlflowException

        try:
            version = self.client.get_model_version_by_alias(self.name, self.alias)
        except MlflowException as exc:
            if _error_code(exc) in _NOT_FOUND:
                return None
            raise RegistryError(f"MLflow could not resolve {self.name}@{self.alias}: {exc.message}") from exc
        return self._info(version)

    def version(self, version: str) -> VersionInfo:
        with _translated(f"read {self.name} version {version}"):
            return self._info(self.client.get_model_version(self.name, version))

    def versions(self) -> list[VersionInfo]:
        """Every version of the model, oldest first (empty when the model is not registered)."""
        with _translated(f"list versions of {self.name}"):
            found = self.client.search_model_versions(f"name = '{self.name}'")
        return sorted((self._info(v) for v in found), key=lambda v: int(v.version))

    def download_model(self, version: str, dst: Path) -> Path:
        """Download ``version``'s CTranslate2 directory under ``dst``; return the directory holding ``model.bin``.

        Goes through the client (version → run → ``model/``) rather than a ``models:/`` URI, which MLflow resolves
        against the process-wide registry URI whatever ``registry_uri`` is passed.
        """
        info = self.version(version)
        dst.mkdir(parents=True, exist_ok=True)
        with _translated(f"download {self.name} version {version}"):
            if info.run_id:
                self.client.download_artifacts(info.run_id, MODEL_ARTIFACT, dst_path=str(dst))
            else:
                import mlflow.artifacts

                mlflow.artifacts.download_artifacts(
                    artifact_uri=self.client.get_model_version_download_uri(self.name, version),
                    dst_path=str(dst),
                    tracking_uri=self.tracking_uri,
                )
        found = sorted(dst.rglob("model.bin"), key=lambda p: len(p.parts))
        if not found:
            raise RegistryError(f"{self.name} version {version} holds no model.bin: not a CTranslate2 model")
        return found[0].parent

    def download_checkpoint(self, run_id: str, dst: Path) -> Path | None:
        """Download the run's ``checkpoint/`` under ``dst``; None when the run has none."""
        with _translated(f"list the artifacts of run {run_id}"):
            if not self.client.list_artifacts(run_id, CHECKPOINT_ARTIFACT):
                return None
        dst.mkdir(parents=True, exist_ok=True)
        with _translated(f"download the checkpoint of run {run_id}"):
            path = self.client.download_artifacts(run_id, CHECKPOINT_ARTIFACT, dst_path=str(dst))
        return Path(path)

    # -- runs ---------------------------------------------------------------------------------------------------
    def start_run(self, run_name: str, tags: Mapping[str, str]) -> str:
        """Create a run in the experiment named like the model (created if missing); return its id."""
        with _translated(f"start a run for {self.name}"):
            experiment = self.client.get_experiment_by_name(self.name)
            experiment_id = (
                experiment.experiment_id if experiment is not None else self.client.create_experiment(self.name)
            )
            run = self.client.create_run(experiment_id, tags=dict(tags), run_name=run_name)
        log.info("MLflow run %s (%s) started in experiment %s", run.info.run_id, run_name, self.name)
        return str(run.info.run_id)

    def log(
        self,
        run_id: str,
        *,
        params: Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        from mlflow.entities import Metric, Param, RunTag

        now = int(time.time() * 1000)
        with _translated(f"log to run {run_id}"):
            self.client.log_batch(
                run_id,
                metrics=[Metric(k, float(v), now, 0) for k, v in (metrics or {}).items()],
                params=[Param(k, str(v)) for k, v in (params or {}).items()],
                tags=[RunTag(k, str(v)) for k, v in (tags or {}).items()],
            )

    def log_dir(self, run_id: str, local_dir: Path, artifact_path: str) -> None:
        with _translated(f"upload {local_dir} to run {run_id}"):
            self.client.log_artifacts(run_id, str(local_dir), artifact_path)

    def end_run(self, run_id: str, *, failed: bool = False) -> None:
        # MLflow writes "View run ... at: <url>" to stdout here; stdout is the CLI's JSON summary, so the link
        # goes to stderr with the logs.
        with _translated(f"end run {run_id}"), redirect_stdout(sys.stderr):
            self.client.set_terminated(run_id, status="FAILED" if failed else "FINISHED")

    @contextmanager
    def recorded(self, run_id: str) -> Iterator[None]:
        """End the run FINISHED, or FAILED when the block raises."""
        try:
            yield
        except BaseException:
            self.end_run(run_id, failed=True)
            raise
        self.end_run(run_id)

    # -- versions and the alias ---------------------------------------------------------------------------------
    def register(self, run_id: str, tags: Mapping[str, str]) -> VersionInfo:
        """Register the run's ``model/`` as a new version (creating the registered model on first use)."""
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(self.name)
        except MlflowException as exc:
            if _error_code(exc) not in _NOT_FOUND:
                raise RegistryError(f"MLflow could not read registered model {self.name}: {exc.message}") from exc
            with _translated(f"create registered model {self.name}"):
                self.client.create_registered_model(self.name, description="batch-translate model; see retrain")
        with _translated(f"register run {run_id} as a version of {self.name}"):
            created = self.client.create_model_version(
                self.name,
                source=f"runs:/{run_id}/{MODEL_ARTIFACT}",
                run_id=run_id,
                tags={k: _clip(v) for k, v in tags.items()},
                await_creation_for=VERSION_READY_TIMEOUT_S,
            )
        log.info("registered %s version %s from run %s", self.name, created.version, run_id)
        return self._info(created)

    def tag_version(self, version: str, tags: Mapping[str, str]) -> None:
        with _translated(f"tag {self.name} version {version}"):
            for key, value in tags.items():
                self.client.set_model_version_tag(self.name, version, key, _clip(value))

    def set_champion(self, version: str) -> None:
        """Point the alias at ``version``: workers following it switch to that version."""
        with _translated(f"set {self.name}@{self.alias}"):
            self.client.set_registered_model_alias(self.name, self.alias, version)
        log.info("%s@%s -> version %s", self.name, self.alias, version)


def _clip(value: object) -> str:
    text = str(value)
    return text if len(text) <= MAX_TAG_CHARS else text[: MAX_TAG_CHARS - 1] + "…"

"""One retrain run of a language pair: decide → train → export → evaluate both → register → gate → alias.

:func:`run` is what the CronJob's ``retrain run --pair <src>-<tgt>`` does:

1. **Data.** Read the pairs uploaded to the store and the files of ``<data_dir>/<pair>/``, de-duplicate by
   normalized source, hash-split (:mod:`retrain.split`) and describe the result as a
   :class:`retrain.snapshot.DataSnapshot`.
2. **Decide.** Compare with the champion's snapshot (its version tags): fewer new training pairs than
   ``min_new_pairs`` *and* than ``min_new_share`` of the champion's → log it, return :attr:`Outcome.SKIPPED`,
   nothing changed.
3. **Train** from the champion's ``checkpoint/`` artifact, else from ``base_model_dir``, else from scratch with the
   preset's recipe; bounded by ``max_steps`` and ``max_time_s``.
4. **Export** to a CTranslate2 model directory (:mod:`retrain.export`).
5. **Evaluate** the candidate *and* the current champion on today's test split, through the worker's
   ``Translator`` (what is measured is what serves; :func:`retrain.evaluate.score_model`).
6. **Register** the candidate as a new version (params, metrics, snapshot, code version on its MLflow run), then
   **gate**: the alias moves only if the candidate beats the champion by ``gate_margin`` on ``gate_metric``;
   otherwise the version is tagged with why not.

:func:`retrain.importer.import_model` registers a model built elsewhere instead. The registry layout both write
is documented in :mod:`retrain.registry`.
"""

from __future__ import annotations

import enum
import importlib.metadata
import logging
import subprocess
import tempfile
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jobs.errors import BatchTranslateError
from jobs.model_dir import ModelInfo
from jobs.parallel_corpus import split_pair
from retrain.build import Recipe, recipe
from retrain.evaluate import (
    MAX_POSITIONS_KEY,
    Scores,
    max_positions,
    score_model,
    translator_config,
    usable_config,
)
from retrain.registry import CHECKPOINT_ARTIFACT, MODEL_ARTIFACT, Registry, VersionInfo
from retrain.settings import RetrainSettings
from retrain.snapshot import load_corpus, new_data
from retrain.split import SplitPairs

log = logging.getLogger(__name__)

#: Where training may start from (``retrain run --start``).
STARTS = ("auto", "champion", "base", "scratch")


class PipelineError(BatchTranslateError):
    """A run cannot go on (no test split, no checkpoint to start from, an unreadable model directory...)."""


class Outcome(enum.StrEnum):
    SKIPPED = "skipped"  #: not enough new data; nothing changed
    PROMOTED = "promoted"  #: registered and made champion
    REJECTED = "rejected"  #: registered, not promoted (tagged with why)


# --- the gate ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reason: str
    candidate_score: float
    champion_score: float | None


def gate(
    candidate: Scores, champion: Scores | None, settings: RetrainSettings, champion_version: str | None = None
) -> GateDecision:
    """Promote when the candidate beats the champion by the margin on the gate metric (or, without a champion,
    reaches the minimum score)."""
    metric = settings.gate_metric
    label = {"chrf": "chrF", "bleu": "BLEU"}[metric]
    score = float(getattr(candidate, metric))
    if champion is None:
        promote = score >= settings.gate_min_score
        verdict = ">=" if promote else "<"
        return GateDecision(
            promote, f"no champion yet; {label} {score:.2f} {verdict} minimum {settings.gate_min_score}", score, None
        )
    best = float(getattr(champion, metric))
    difference = score - best
    promote = difference >= settings.gate_margin
    reason = (
        f"{label} {score:.2f} vs champion version {champion_version} {best:.2f} on the same test split: "
        f"{difference:+.2f} {'>=' if promote else '<'} margin {settings.gate_margin}"
    )
    return GateDecision(promote, reason, score, best)


# --- the run -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunResult:
    """What ``retrain run`` did (printed as JSON by the CLI)."""

    pair: str
    outcome: Outcome
    reason: str
    new_pairs: int
    version: str | None = None
    run_id: str | None = None
    trained_from: str | None = None
    candidate: Scores | None = None
    champion: Scores | None = None
    champion_version: str | None = None
    test_pairs: int = 0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["outcome"] = self.outcome.value
        return data


def code_version(settings: RetrainSettings) -> str:
    """The configured code version, else the git commit of this checkout (``-dirty`` if modified), else the
    installed package version."""
    if settings.code_version:
        return settings.code_version
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, timeout=10
        )
        if commit.returncode == 0:
            dirty = subprocess.run(
                ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout.strip()
            return commit.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.TimeoutExpired):
        pass
    try:
        return f"batch-translate {importlib.metadata.version('batch-translate')}"
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def run_recipe(settings: RetrainSettings, max_steps: int | None = None) -> Recipe:
    """The preset's recipe with this run's bounds and knobs."""
    chosen = recipe(settings.preset)
    overrides: dict[str, Any] = {"seed": settings.seed, "threads": settings.threads}
    for key, value in (
        ("max_steps", max_steps or settings.max_steps),
        ("max_time_s", settings.max_time_s),
        ("learning_rate", settings.learning_rate),
    ):
        if value is not None:
            overrides[key] = value
    return replace(chosen, train=replace(chosen.train, **overrides))


def _start_point(
    start: str, settings: RetrainSettings, registry: Registry, champion: VersionInfo | None, work: Path
) -> tuple[Path | None, str]:
    """The checkpoint to fine-tune from (None: from scratch) and how to describe it."""
    if start in ("auto", "champion") and champion is not None and champion.run_id:
        checkpoint = registry.download_checkpoint(champion.run_id, work / "champion-checkpoint")
        if checkpoint is not None:
            return checkpoint, f"champion:{champion.version}"
    if start == "champion":
        raise PipelineError(f"--start champion: {registry.name} has no champion with a {CHECKPOINT_ARTIFACT}/")
    if start in ("auto", "base") and settings.base_model_dir is not None:
        if not (settings.base_model_dir / "config.json").is_file():
            raise PipelineError(f"base model {settings.base_model_dir} is not a Hugging Face checkpoint")
        return settings.base_model_dir, f"base:{settings.base_model_dir}"
    if start == "base":
        raise PipelineError("--start base: set BT_RETRAIN_BASE_MODEL_DIR to a Hugging Face Marian checkpoint")
    return None, "scratch"


def train_device(settings: RetrainSettings) -> str:
    """Where torch trains: the GPU when asked for (or ``auto`` and torch sees one), else the CPU."""
    import torch

    if settings.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return settings.device


def train_candidate(
    parts: SplitPairs, checkpoint: Path, chosen: Recipe, start_from: Path | None, device: str = "cpu"
) -> Any:
    """Train on the train split into ``checkpoint``: from ``start_from`` (a Hugging Face checkpoint), or from
    scratch with a new vocabulary. ``device`` is torch's default device for the run (``retrain.train`` builds its
    model and batches with torch's factories, so they land there)."""
    import torch

    from retrain.train import train
    from retrain.vocabulary import build_vocabulary

    with torch.device(device):
        if start_from is None:
            sources, targets = (p.source for p in parts.train), (p.target for p in parts.train)
            build_vocabulary(sources, targets, checkpoint, chosen.vocabulary)
            return train(parts.train, checkpoint, chosen.train, spec=chosen.spec)
        return train(parts.train, checkpoint, chosen.train, init_checkpoint=start_from)


def _run_params(
    settings: RetrainSettings, chosen: Recipe, force: bool, device: str, from_scratch: bool
) -> dict[str, object]:
    """What an MLflow run records about how it trained and how it is judged."""
    return {
        "preset": settings.preset,
        "recipe": chosen.key(),
        **{f"train.{k}": v for k, v in asdict(chosen.train).items()},
        **({f"model.{k}": v for k, v in asdict(chosen.spec).items()} if from_scratch else {}),
        "quantization": chosen.quantization,
        "forced": force,
        "gate.metric": settings.gate_metric,
        "gate.margin": settings.gate_margin,
        "min_new_pairs": settings.min_new_pairs,
        "min_new_share": settings.min_new_share,
        "train.device": device,
    }


def _unless_champion_moved(decision: GateDecision, registry: Registry, champion: VersionInfo | None) -> GateDecision:
    """Refuse the promotion when the alias moved while this run trained (an operator's import, say): the candidate
    was compared with a champion that no longer serves, and must not replace the one that does."""
    now = registry.champion()
    before = champion.version if champion else None
    if (now.version if now else None) == before:
        return decision
    reason = (
        f"the champion moved from version {before} to {now.version if now else None} during this run; {decision.reason}"
    )
    return replace(decision, promote=False, reason=reason)


def _gate_tags(decision: GateDecision, settings: RetrainSettings, champion: VersionInfo | None) -> dict[str, str]:
    return {
        "gate.decision": Outcome.PROMOTED.value if decision.promote else Outcome.REJECTED.value,
        "gate.reason": decision.reason,
        "gate.metric": settings.gate_metric,
        "gate.margin": str(settings.gate_margin),
        "gate.candidate_score": f"{decision.candidate_score:.4f}",
        "gate.champion_score": "" if decision.champion_score is None else f"{decision.champion_score:.4f}",
        "gate.champion_version": champion.version if champion else "",
    }


def run(
    settings: RetrainSettings, pair: str, *, force: bool = False, start: str = "auto", max_steps: int | None = None
) -> RunResult:
    """One retrain run of ``pair`` (see the module docstring). ``force`` trains whatever the new data;
    ``start`` picks the starting point (:data:`STARTS`); ``max_steps`` overrides the settings' bound."""
    from retrain.export import export

    if start not in STARTS:
        raise ValueError(f"{start!r} is not a start point (accepted: {', '.join(STARTS)})")
    source_lang, target_lang = split_pair(pair)
    registry = Registry(settings.tracking_uri, settings.model_name(pair), settings.alias)
    corpus = load_corpus(settings, pair)
    champion = registry.champion()
    arrived = new_data(corpus.snapshot, champion, settings)
    if not arrived.enough and not force:
        log.info("%s: not retraining: %s", pair, arrived.reason)
        return RunResult(
            pair, Outcome.SKIPPED, arrived.reason, arrived.new_pairs, test_pairs=corpus.snapshot.test_pairs
        )
    if not corpus.parts.test:
        raise PipelineError(f"the test split of {pair} is empty: the gate needs held-out pairs, add more data")
    log.info("%s: retraining: %s%s", pair, arrived.reason, " (forced)" if force else "")
    chosen = run_recipe(settings, max_steps)
    config = translator_config(settings)
    device = train_device(settings)
    version_code = code_version(settings)
    if settings.work_dir is not None:
        settings.work_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"retrain-{pair}-", dir=settings.work_dir) as scratch:
        work = Path(scratch)
        start_from, trained_from = _start_point(start, settings, registry, champion, work)
        base_tags = {"pair": pair, "code_version": version_code, "trained_from": trained_from, **corpus.snapshot.tags()}
        run_id = registry.start_run(f"{pair}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}", base_tags)
        with registry.recorded(run_id):
            registry.log(
                run_id,
                params=_run_params(settings, chosen, force, device, start_from is None),
                metrics={"new_pairs": arrived.new_pairs},
            )
            checkpoint = work / "checkpoint"
            trained = train_candidate(corpus.parts, checkpoint, chosen, start_from, device)
            info = ModelInfo(
                name=registry.name,
                version=run_id,
                source_lang=source_lang,
                target_lang=target_lang,
                data_fingerprint=corpus.snapshot.train_fingerprint,
                extra={
                    "trained_from": trained_from,
                    "steps": trained.steps,
                    "code_version": version_code,
                    "data": asdict(corpus.snapshot),
                    MAX_POSITIONS_KEY: max_positions(checkpoint),
                },
            )
            model_dir = export(checkpoint, work / "model", info, quantization=chosen.quantization)
            config = usable_config(config, model_dir, settings)
            candidate = score_model(model_dir, corpus.parts.test, config)
            best = None
            if champion is not None:
                champion_dir = registry.download_model(champion.version, work / "champion")
                best = score_model(champion_dir, corpus.parts.test, config)
            metrics = {f"test_{k}": v for k, v in candidate.to_dict().items() if k != "segments"}
            if best is not None:
                metrics |= {f"champion_test_{k}": v for k, v in best.to_dict().items() if k != "segments"}
            metrics |= {
                "train_steps": trained.steps,
                "train_seconds": trained.train_seconds,
                "final_loss": trained.loss,
            }
            registry.log(run_id, metrics=metrics, params={"eval.device": config.device})
            registry.log_dir(run_id, model_dir, MODEL_ARTIFACT)
            registry.log_dir(run_id, checkpoint, CHECKPOINT_ARTIFACT)
            decision = gate(candidate, best, settings, champion.version if champion else None)
            if decision.promote:
                decision = _unless_champion_moved(decision, registry, champion)
            gate_tags = _gate_tags(decision, settings, champion)
            registered = registry.register(run_id, {**base_tags, **gate_tags})
            registry.log(run_id, tags={**gate_tags, "registered_version": registered.version})
            if decision.promote:
                registry.set_champion(registered.version)
            log.info(
                "%s: version %s %s: %s",
                pair,
                registered.version,
                "promoted" if decision.promote else "not promoted",
                decision.reason,
            )
    return RunResult(
        pair=pair,
        outcome=Outcome.PROMOTED if decision.promote else Outcome.REJECTED,
        reason=decision.reason,
        new_pairs=arrived.new_pairs,
        version=registered.version,
        run_id=run_id,
        trained_from=trained_from,
        candidate=candidate,
        champion=best,
        champion_version=champion.version if champion else None,
        test_pairs=corpus.snapshot.test_pairs,
    )

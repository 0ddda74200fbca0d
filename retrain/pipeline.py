"""One retrain run of a language pair: decide → train → export → evaluate both → register → gate → alias.

:func:`run` is what the CronJob's ``retrain run --pair <src>-<tgt>`` does:

1. **Data.** Read the pairs uploaded to the store and the files of ``<data_dir>/<pair>/``, de-duplicate by
   normalized source, hash-split (:mod:`retrain.split`) and describe the result as a :class:`DataSnapshot`.
2. **Decide.** Compare with the champion's snapshot (its version tags): fewer new training pairs than
   ``min_new_pairs`` *and* than ``min_new_share`` of the champion's → log it, return :attr:`Outcome.SKIPPED`,
   nothing changed.
3. **Train** from the champion's ``checkpoint/`` artifact, else from ``base_model_dir``, else from scratch with the
   preset's recipe; bounded by ``max_steps`` and ``max_time_s``.
4. **Export** to a CTranslate2 model directory (:mod:`retrain.export`).
5. **Evaluate** the candidate *and* the current champion on today's test split, through the worker's
   ``Translator`` (what is measured is what serves).
6. **Register** the candidate as a new version (params, metrics, snapshot, code version on its MLflow run), then
   **gate**: the alias moves only if the candidate beats the champion by ``gate_margin`` on ``gate_metric``;
   otherwise the version is tagged with why not.

:func:`import_model` registers a model built elsewhere (CTranslate2 directory or Hugging Face Marian checkpoint).
The registry layout both write is documented in :mod:`retrain.registry`.
"""

from __future__ import annotations

import enum
import importlib.metadata
import json
import logging
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jobs.errors import BatchTranslateError
from jobs.model_dir import MODEL_INFO_FILE, SOURCE_SPM, TARGET_SPM, ModelInfo
from jobs.parallel_corpus import ParallelCorpus, split_pair
from jobs.schemas import TranslationOptions
from retrain.build import Recipe, recipe
from retrain.corpus import Pair, dedupe, fingerprint, read_directory
from retrain.evaluate import Scores, evaluate
from retrain.registry import CHECKPOINT_ARTIFACT, MODEL_ARTIFACT, Registry, VersionInfo
from retrain.settings import RetrainSettings
from retrain.split import SplitPairs, split_pairs
from worker.translator import Translator, TranslatorConfig

log = logging.getLogger(__name__)

#: Where training may start from (``retrain run --start``).
STARTS = ("auto", "champion", "base", "scratch")
#: ``model_info.json`` key holding the length of the model's position table (longest sequence, in tokens).
MAX_POSITIONS_KEY = "max_positions"


class PipelineError(BatchTranslateError):
    """A run cannot go on (no test split, no checkpoint to start from, an unreadable model directory...)."""


class Outcome(enum.StrEnum):
    SKIPPED = "skipped"  #: not enough new data; nothing changed
    PROMOTED = "promoted"  #: registered and made champion
    REJECTED = "rejected"  #: registered, not promoted (tagged with why)


# --- data --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DataSnapshot:
    """What a model was (or would be) trained and tested on: enough to tell later how much data is new."""

    train_pairs: int
    dev_pairs: int
    test_pairs: int
    train_fingerprint: str
    test_fingerprint: str
    max_arrival_id: int  #: last store row included (0: none)
    max_arrival_time: str  #: its arrival time, ISO 8601 ("" if none)

    def tags(self) -> dict[str, str]:
        return {f"data.{k}": str(v) for k, v in asdict(self).items()}

    @classmethod
    def from_tags(cls, tags: dict[str, str]) -> DataSnapshot | None:
        """The snapshot recorded in version tags; None for versions without one (imported models)."""
        try:
            return cls(
                train_pairs=int(tags["data.train_pairs"]),
                dev_pairs=int(tags["data.dev_pairs"]),
                test_pairs=int(tags["data.test_pairs"]),
                train_fingerprint=tags["data.train_fingerprint"],
                test_fingerprint=tags["data.test_fingerprint"],
                max_arrival_id=int(tags["data.max_arrival_id"]),
                max_arrival_time=tags.get("data.max_arrival_time", ""),
            )
        except (KeyError, ValueError):
            return None


@dataclass(frozen=True)
class Corpus:
    """A pair's current corpus, split, with its snapshot."""

    parts: SplitPairs
    snapshot: DataSnapshot


def load_corpus(settings: RetrainSettings, pair: str) -> Corpus:
    """Uploaded pairs (arrival order) then directory files (path order), de-duplicated and hash-split."""
    source_lang, target_lang = split_pair(pair)
    store = ParallelCorpus.from_url(settings.store_url)
    try:
        store.create_schema()
        stored = list(store.segments(pair))
    finally:
        store.engine.dispose()
    pairs = [Pair(s.source, s.target, origin=f"store:{s.id}") for s in stored]
    from_files = list(read_directory(settings.pair_data_dir(pair), source_lang, target_lang))
    corpus = dedupe([*pairs, *from_files])
    parts = split_pairs(corpus)
    last = stored[-1] if stored else None
    snapshot = DataSnapshot(
        train_pairs=len(parts.train),
        dev_pairs=len(parts.dev),
        test_pairs=len(parts.test),
        train_fingerprint=fingerprint(parts.train),
        test_fingerprint=fingerprint(parts.test),
        max_arrival_id=last.id if last else 0,
        max_arrival_time=last.created_at.isoformat() if last else "",
    )
    log.info(
        "corpus %s: %d stored + %d from files -> %d sentences (train %d, dev %d, test %d)",
        pair,
        len(pairs),
        len(from_files),
        len(corpus),
        snapshot.train_pairs,
        snapshot.dev_pairs,
        snapshot.test_pairs,
    )
    return Corpus(parts, snapshot)


@dataclass(frozen=True)
class NewData:
    """How much training data arrived since the champion's snapshot, and whether that is enough to train."""

    new_pairs: int
    enough: bool
    reason: str


def new_data(current: DataSnapshot, champion: VersionInfo | None, settings: RetrainSettings) -> NewData:
    """New training pairs = today's train split minus the champion's (the corpus is append-only)."""
    before = DataSnapshot.from_tags(champion.tags) if champion is not None else None
    need = f"need {settings.min_new_pairs}"
    if champion is None or before is None:
        whose = "no champion yet" if champion is None else f"champion version {champion.version} has no data snapshot"
        enough = current.train_pairs >= settings.min_new_pairs and current.train_pairs > 0
        return NewData(current.train_pairs, enough, f"{current.train_pairs} training pairs, {whose}; {need}")
    if current.train_fingerprint == before.train_fingerprint:
        return NewData(0, False, f"the training data is unchanged since champion version {champion.version}")
    new = max(current.train_pairs - before.train_pairs, 0)
    share = new / before.train_pairs if before.train_pairs else float("inf")
    enough = new > 0 and (new >= settings.min_new_pairs or share >= settings.min_new_share)
    return NewData(
        new,
        enough,
        f"{new} new training pairs since champion version {champion.version} "
        f"({share:.1%} of {before.train_pairs}); {need} or {settings.min_new_share:.1%}",
    )


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


def translator_config(settings: RetrainSettings) -> TranslatorConfig:
    """Evaluation placement: the GPU when asked for (or ``auto`` and one is visible), else the CPU."""
    device = settings.device
    if device == "auto":
        import ctranslate2

        device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    compute_type = "int8_float16" if device == "cuda" else "int8"
    return TranslatorConfig(device=device, compute_type=compute_type, inter_threads=settings.threads, intra_threads=1)


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


def max_positions(checkpoint_dir: Path) -> int | None:
    """Length of a Hugging Face checkpoint's position table (None if its config does not say)."""
    config = Path(checkpoint_dir) / "config.json"
    value = json.loads(config.read_text()).get("max_position_embeddings") if config.is_file() else None
    return value if isinstance(value, int) else None


def eval_options(model_dir: Path) -> TranslationOptions:
    """The served decoding defaults, with the length bounded by the model's position table when
    ``model_info.json`` records it: CTranslate2 fails on the first token past the table (a weak candidate that
    babbles up to the default 256 tokens would crash a model trained with 64 positions)."""
    defaults = TranslationOptions()
    limit = ModelInfo.read(model_dir).extra.get(MAX_POSITIONS_KEY)
    if isinstance(limit, int) and 0 < limit < defaults.max_decoding_length:
        return defaults.model_copy(update={"max_decoding_length": limit})
    return defaults


def usable_config(config: TranslatorConfig, model_dir: Path, settings: RetrainSettings) -> TranslatorConfig:
    """``config``, or the CPU when ``device`` is ``auto`` and CTranslate2 sees a GPU but cannot load on it.

    Measured on an H100 whose image had only CUDA 13: ``get_cuda_device_count()`` was 1 and loading failed with
    "libcublas.so.12 is not found" (CTranslate2 4.x wheels need cuBLAS 12). An explicit ``cuda`` fails instead.
    """
    if config.device != "cuda" or settings.device != "auto":
        return config
    try:
        Translator(model_dir, config).close()
    except RuntimeError as exc:
        log.warning("CTranslate2 cannot use the GPU (%s); evaluating on the CPU", exc)
        return replace(config, device="cpu", compute_type="int8")
    return config


def score_model(model_dir: Path, test: list[Pair], config: TranslatorConfig) -> Scores:
    """Score a model directory on ``test`` through the worker's ``Translator``."""
    translator = Translator(model_dir, config)
    try:
        return evaluate(translator, test, eval_options(model_dir))
    finally:
        translator.close()


@contextmanager
def _recorded(registry: Registry, run_id: str) -> Iterator[None]:
    """End the MLflow run FINISHED, or FAILED when the block raises."""
    try:
        yield
    except BaseException:
        registry.end_run(run_id, failed=True)
        raise
    registry.end_run(run_id)


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
        with _recorded(registry, run_id):
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


# --- import ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportResult:
    pair: str
    version: str
    run_id: str
    kind: str  #: "ctranslate2" or "marian"
    champion: bool
    scores: Scores | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def model_kind(model_dir: Path) -> str:
    """``"ctranslate2"`` for a CTranslate2 directory, ``"marian"`` for a Hugging Face Marian checkpoint."""
    if (model_dir / "model.bin").is_file() and (model_dir / "config.json").is_file():
        return "ctranslate2"
    config = model_dir / "config.json"
    weights = ("model.safetensors", "pytorch_model.bin")
    if config.is_file() and any((model_dir / w).is_file() for w in weights):
        model_type = json.loads(config.read_text()).get("model_type")
        if model_type == "marian":
            return "marian"
        raise PipelineError(f"{model_dir} is a Hugging Face {model_type!r} checkpoint; only Marian models convert")
    raise PipelineError(
        f"{model_dir} is neither a CTranslate2 model (model.bin + config.json) nor a Hugging Face Marian "
        f"checkpoint (config.json + {' or '.join(weights)})"
    )


def import_model(
    settings: RetrainSettings,
    pair: str,
    model_dir: Path,
    *,
    make_champion: bool = False,
    quantization: str | None = "int8",
) -> ImportResult:
    """Register ``model_dir`` as a new version of ``pair``'s model; with ``make_champion`` point the alias at it.

    A Marian checkpoint is converted to CTranslate2 and kept as the version's ``checkpoint/`` (the next
    ``retrain run`` fine-tunes from it). The model is loaded through the worker's ``Translator`` before it is
    registered, and scored on the pair's current test split when there is one (metrics only: importing is an
    operator's decision, recorded in ``gate.decision``, not a gate).
    """
    from retrain.export import export

    model_dir = Path(model_dir)
    source_lang, target_lang = split_pair(pair)
    kind = model_kind(model_dir)
    registry = Registry(settings.tracking_uri, settings.model_name(pair), settings.alias)
    with tempfile.TemporaryDirectory(prefix=f"import-{pair}-", dir=settings.work_dir) as scratch:
        work = Path(scratch)
        previous = ModelInfo.read(model_dir)
        run_id = registry.start_run(
            f"{pair}-import-{datetime.now(UTC):%Y%m%dT%H%M%SZ}",
            {"pair": pair, "code_version": code_version(settings), "trained_from": f"import:{kind}"},
        )
        with _recorded(registry, run_id):
            info = ModelInfo(
                name=registry.name,
                version=run_id,
                source_lang=source_lang,
                target_lang=target_lang,
                data_fingerprint=previous.data_fingerprint,
                extra={**previous.extra, "imported_from": str(model_dir.resolve()), "imported_name": previous.name},
            )
            if kind == "marian":
                info.extra[MAX_POSITIONS_KEY] = max_positions(model_dir)
            staged = work / "model"
            if kind == "marian":
                export(model_dir, staged, info, quantization=quantization)
            else:
                for name in (SOURCE_SPM, TARGET_SPM):
                    if not (model_dir / name).is_file():
                        raise PipelineError(f"{model_dir} has no {name}: the model directory convention needs it")
                shutil.copytree(model_dir, staged, ignore=shutil.ignore_patterns(".*", MODEL_INFO_FILE))
                info.write(staged)
            test = load_corpus(settings, pair).parts.test
            config = usable_config(translator_config(settings), staged, settings)
            scores: Scores | None = None
            if test:
                scores = score_model(staged, test, config)
            else:  # still prove it loads before anyone can serve it
                Translator(staged, config).close()
            if scores is not None:
                registry.log(run_id, metrics={f"test_{k}": v for k, v in scores.to_dict().items() if k != "segments"})
            registry.log(run_id, params={"imported_from": str(model_dir.resolve()), "kind": kind})
            registry.log_dir(run_id, staged, MODEL_ARTIFACT)
            if kind == "marian":
                registry.log_dir(run_id, model_dir, CHECKPOINT_ARTIFACT)
            decision = "imported-champion" if make_champion else "imported"
            reason = (
                "retrain import --champion: an operator made it champion without the gate"
                if make_champion
                else "imported by retrain import; not champion"
            )
            version = registry.register(
                run_id,
                {"pair": pair, "trained_from": f"import:{kind}", "gate.decision": decision, "gate.reason": reason},
            )
            if make_champion:
                registry.set_champion(version.version)
    return ImportResult(pair, version.version, run_id, kind, make_champion, scores)

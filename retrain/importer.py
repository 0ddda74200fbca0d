"""``retrain import``: register a model built elsewhere (CTranslate2 directory or Hugging Face Marian checkpoint).

The registry layout it writes is documented in :mod:`retrain.registry`.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jobs.model_dir import MODEL_INFO_FILE, SOURCE_SPM, TARGET_SPM, ModelInfo
from jobs.parallel_corpus import split_pair
from retrain.evaluate import MAX_POSITIONS_KEY, Scores, max_positions, score_model, translator_config, usable_config
from retrain.pipeline import PipelineError, code_version
from retrain.registry import CHECKPOINT_ARTIFACT, MODEL_ARTIFACT, Registry
from retrain.settings import RetrainSettings
from retrain.snapshot import load_corpus
from worker.translator import Translator


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
        with registry.recorded(run_id):
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

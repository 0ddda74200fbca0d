"""One model build, end to end: pairs → hash split → vocabulary → training → CTranslate2 export → evaluation.

A :class:`Recipe` says how (model size, optimisation, vocabulary, split shares); :func:`build_model` does it and
leaves a served model directory whose ``model_info.json`` records the data fingerprint and the held-out scores.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from jobs.model_dir import ModelInfo
from retrain.corpus import Pair, dedupe, fingerprint
from retrain.evaluate import evaluate
from retrain.export import export, refuse_foreign_dir, replace_dir
from retrain.marian import DEMO_SPEC, TEST_SPEC, ModelSpec
from retrain.split import SplitShares, split_pairs
from retrain.train import TrainConfig, train
from retrain.vocabulary import VocabularyConfig, build_vocabulary
from worker.translator import Translator

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recipe:
    """Everything that decides what model a build produces, besides the data."""

    spec: ModelSpec
    train: TrainConfig
    vocabulary: VocabularyConfig = field(default_factory=VocabularyConfig)
    shares: SplitShares = field(default_factory=SplitShares)
    quantization: str | None = "int8"

    def key(self) -> str:
        """A digest of the settings that change the model (thread count excluded)."""
        settings = asdict(replace(self, train=replace(self.train, threads=0)))
        return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


#: Named recipes (``--preset``). "test" builds in well under a minute on 2 CPU cores; "demo" in a few minutes.
RECIPES: dict[str, Recipe] = {
    "test": Recipe(
        spec=TEST_SPEC,
        train=TrainConfig(learning_rate=3e-3, warmup_steps=100, batch_size=64, max_steps=300, max_time_s=120),
        vocabulary=VocabularyConfig(source_vocab_size=1_000, target_vocab_size=1_000),
    ),
    "demo": Recipe(
        spec=DEMO_SPEC,
        train=TrainConfig(learning_rate=1e-3, warmup_steps=400, batch_size=64, max_steps=1_200, max_time_s=240),
        vocabulary=VocabularyConfig(source_vocab_size=1_000, target_vocab_size=1_000),
    ),
}


def recipe(preset: str) -> Recipe:
    """The :class:`Recipe` named ``preset``."""
    try:
        return RECIPES[preset]
    except KeyError:
        raise ValueError(f"{preset!r} is not a preset (accepted presets: {', '.join(RECIPES)})") from None


def build_model(
    pairs: Iterable[Pair],
    out_dir: Path,
    recipe: Recipe,
    *,
    name: str,
    source_lang: str,
    target_lang: str,
    version: str = "local",
    checkpoint_dir: Path | None = None,
    init_checkpoint: Path | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Build a served model directory at ``out_dir`` from ``pairs``; return ``out_dir``.

    Trains on the train split only and scores on the test split through the worker's ``Translator``; the scores,
    step count and training time go into ``model_info.json``. The Hugging Face checkpoint is kept in
    ``checkpoint_dir`` when given (to fine-tune from later), discarded otherwise. With ``init_checkpoint`` the
    model is fine-tuned from that checkpoint and keeps its vocabulary.
    """
    out_dir = Path(out_dir)
    refuse_foreign_dir(out_dir)
    corpus = dedupe(pairs)
    parts = split_pairs(corpus, recipe.shares)
    log.info(
        "corpus %s-%s: %d pairs (train %d, dev %d, test %d)",
        source_lang,
        target_lang,
        len(corpus),
        len(parts.train),
        len(parts.dev),
        len(parts.test),
    )
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{out_dir.name}-build-", dir=out_dir.parent) as work:
        checkpoint = Path(checkpoint_dir) if checkpoint_dir is not None else Path(work) / "checkpoint"
        if init_checkpoint is None:
            build_vocabulary(
                (p.source for p in parts.train), (p.target for p in parts.train), checkpoint, recipe.vocabulary
            )
        trained = train(parts.train, checkpoint, recipe.train, spec=recipe.spec, init_checkpoint=init_checkpoint)
        info = ModelInfo(
            name=name,
            version=version,
            source_lang=source_lang,
            target_lang=target_lang,
            data_fingerprint=fingerprint(corpus),
            extra={
                **(extra or {}),
                "recipe": recipe.key(),
                "model_spec": asdict(recipe.spec),
                "train_pairs": len(parts.train),
                "test_pairs": len(parts.test),
                "steps": trained.steps,
                "train_seconds": round(trained.train_seconds, 1),
                "stopped_by": trained.stopped_by,
                "final_loss": round(trained.loss, 4),
                "fine_tuned_from": str(init_checkpoint) if init_checkpoint is not None else None,
            },
        )
        staged = export(checkpoint, Path(work) / "model", info, quantization=recipe.quantization)
        if parts.test:
            translator = Translator(staged)
            try:
                scores = evaluate(translator, parts.test)
            finally:
                translator.close()
            info.extra.update(
                chrf=round(scores.chrf, 2), bleu=round(scores.bleu, 2), exact_match=round(scores.exact_match, 4)
            )
            info.write(staged)
        else:
            log.warning("no pair fell in the test split: %s is not evaluated", out_dir)
        replace_dir(staged, out_dir)
    log.info("built %s version %s at %s", name, version, out_dir)
    return out_dir

"""The demo model: an English→French number-phrase translator built from the demo corpus, offline.

``build_demo_model`` is what ``make demo`` and the test fixtures call. A directory already holding a model built
from the same corpus with the same recipe and seed is returned as is.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, replace
from pathlib import Path

from jobs.model_dir import ModelInfo
from retrain import demo_corpus
from retrain.build import Recipe, build_model, recipe
from retrain.corpus import Pair, fingerprint

log = logging.getLogger(__name__)

#: Seed of the demo corpus: fixed, so models trained with different seeds are scored on the same test split.
CORPUS_SEED = 0


@dataclass(frozen=True)
class DemoCorpus:
    """How much of the number-phrase space a preset draws."""

    count: int
    max_number: int


#: Demo corpus size per preset.
DEMO_CORPORA: dict[str, DemoCorpus] = {
    "test": DemoCorpus(count=4_000, max_number=999),
    "demo": DemoCorpus(count=20_000, max_number=9_999),
}


def demo_pairs(preset: str = "demo") -> list[Pair]:
    """The demo corpus of ``preset`` (deterministic)."""
    try:
        size = DEMO_CORPORA[preset]
    except KeyError:
        raise ValueError(f"{preset!r} is not a preset (accepted presets: {', '.join(DEMO_CORPORA)})") from None
    return demo_corpus.generate_pairs(count=size.count, max_number=size.max_number, seed=CORPUS_SEED)


def _build_key(preset: str, built_with: Recipe, corpus_fingerprint: str) -> str:
    text = f"{preset}:{built_with.key()}:{corpus_fingerprint}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def build_demo_model(
    out_dir: Path,
    preset: str = "demo",
    seed: int = 0,
    *,
    threads: int = 1,
    max_time_s: float | None = None,
    checkpoint_dir: Path | None = None,
    force: bool = False,
) -> Path:
    """Build (or reuse) the demo model of ``preset`` at ``out_dir``; return ``out_dir``.

    ``seed`` seeds training (the corpus is fixed); ``threads`` is the torch thread count; ``max_time_s`` overrides
    the preset's training time bound. ``force`` rebuilds even when ``out_dir`` already holds this model.
    """
    out_dir = Path(out_dir)
    chosen = recipe(preset)
    train_config = replace(chosen.train, seed=seed, threads=threads)
    if max_time_s is not None:
        train_config = replace(train_config, max_time_s=max_time_s)
    chosen = replace(chosen, train=train_config)
    pairs = demo_pairs(preset)
    key = _build_key(preset, chosen, fingerprint(pairs))
    if not force and _holds_build(out_dir, key):
        log.info("demo model %s already built at %s", preset, out_dir)
        return out_dir
    return build_model(
        pairs,
        out_dir,
        chosen,
        name=f"demo-{demo_corpus.SOURCE_LANG}-{demo_corpus.TARGET_LANG}",
        source_lang=demo_corpus.SOURCE_LANG,
        target_lang=demo_corpus.TARGET_LANG,
        version=f"{preset}-{key[:8]}",
        checkpoint_dir=checkpoint_dir,
        extra={"preset": preset, "seed": seed, "build_key": key},
    )


def _holds_build(out_dir: Path, key: str) -> bool:
    if not (out_dir / "model.bin").is_file():
        return False
    return ModelInfo.read(out_dir).extra.get("build_key") == key

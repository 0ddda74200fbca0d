"""Scoring a served model on reference pairs: chrF, BLEU and exact match (sacrebleu).

Candidates are translated through ``worker.translator.Translator``, the class the worker serves with, so the
score is the score of what will serve. chrF is the headline figure: word BLEU means little when many references
are one or two words long.

Scores depend on the decoding options. With a length penalty (CTranslate2's default) CTranslate2 ends a beam search
once ``beam_size`` hypotheses have finished, even poor ones, so a confident model can lose a word under beam 4 that
greedy search keeps: measured on the demo model's test split, beam 4 gave chrF 97.9 / exact match 94.2 %, greedy
chrF 99.96 / 99.8 % (``length_penalty=0`` or ``patience=2`` recover the greedy figures).

:func:`score_model` is how a retrain run or an import scores a model directory: placed by
:func:`translator_config` / :func:`usable_config`, decoded with the served defaults of :func:`eval_options`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import sacrebleu

from jobs.model_dir import ModelInfo
from jobs.schemas import TranslationOptions
from retrain.corpus import Pair
from retrain.settings import RetrainSettings
from worker.translator import Translator, TranslatorConfig

log = logging.getLogger(__name__)

#: ``model_info.json`` key holding the length of the model's position table (longest sequence, in tokens).
MAX_POSITIONS_KEY = "max_positions"


@dataclass(frozen=True)
class Scores:
    """Corpus-level scores of one model on one set of pairs (chrF and BLEU on sacrebleu's 0-100 scale)."""

    chrf: float
    bleu: float
    exact_match: float  #: fraction of hypotheses equal to their reference, 0-1
    segments: int

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def score(hypotheses: Sequence[str], references: Sequence[str]) -> Scores:
    """Score hypotheses against references, position by position."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    if not references:
        raise ValueError("nothing to score: no reference pairs")
    chrf = sacrebleu.corpus_chrf(list(hypotheses), [list(references)]).score
    bleu = sacrebleu.corpus_bleu(list(hypotheses), [list(references)]).score
    exact = sum(h.strip() == r.strip() for h, r in zip(hypotheses, references, strict=True)) / len(references)
    return Scores(chrf=chrf, bleu=bleu, exact_match=exact, segments=len(references))


def evaluate(
    translator: Translator,
    pairs: Sequence[Pair],
    options: TranslationOptions | None = None,
) -> Scores:
    """Translate the sources of ``pairs`` with ``translator`` and score them against the targets."""
    started = time.monotonic()
    hypotheses = translator.translate([p.source for p in pairs], options)
    scores = score(hypotheses, [p.target for p in pairs])
    log.info(
        "evaluated %s version %s on %d pairs in %.1f s: chrF %.1f BLEU %.1f exact %.1f%%",
        translator.info.name,
        translator.info.version,
        scores.segments,
        time.monotonic() - started,
        scores.chrf,
        scores.bleu,
        100 * scores.exact_match,
    )
    return scores


def translator_config(settings: RetrainSettings) -> TranslatorConfig:
    """Evaluation placement: the GPU when asked for (or ``auto`` and one is visible), else the CPU."""
    device = settings.device
    if device == "auto":
        import ctranslate2

        device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    compute_type = "int8_float16" if device == "cuda" else "int8"
    return TranslatorConfig(device=device, compute_type=compute_type, inter_threads=settings.threads, intra_threads=1)


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

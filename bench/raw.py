"""The rows without the service: L (raw CTranslate2 at its best batch settings), naive (one segment per call, as a
per-request server translates) and HF (Hugging Face Transformers ``generate``).

Every row translates the same tokenized sentences with the same beam size and a fixed output length, so rows
differ only in how the work reaches the model.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from jobs.schemas import TranslationOptions
from worker.translator import Translator, TranslatorConfig

log = logging.getLogger(__name__)

#: Concurrent callers of the naive row (DESIGN.md: four callers was the best per-request layout on 2 cores).
NAIVE_CALLERS = 4
#: Sentences per ``generate`` call in the HF row.
HF_BATCH_SIZE = 32


@dataclass(frozen=True)
class Decoding:
    """Beam width and the fixed number of target tokens every segment gets."""

    beam_size: int
    length: int

    def options(self) -> TranslationOptions:
        return TranslationOptions(
            beam_size=self.beam_size, min_decoding_length=self.length, max_decoding_length=self.length
        )

    def job_options(self) -> dict[str, int]:
        """The same decoding as a job's ``options`` (what ``POST /v1/jobs`` accepts)."""
        return self.options().model_dump()


@dataclass(frozen=True)
class Layout:
    """How CTranslate2 uses the cores: replicas times threads each, and examples per sub-batch."""

    inter_threads: int
    intra_threads: int
    max_batch_size: int

    def config(self, device: str = "cpu", compute_type: str = "int8") -> TranslatorConfig:
        return TranslatorConfig(
            device=device,
            compute_type=compute_type,
            inter_threads=self.inter_threads,
            intra_threads=self.intra_threads,
            max_batch_size=self.max_batch_size,
        )

    def label(self) -> str:
        return f"inter {self.inter_threads} / intra {self.intra_threads}, batches of {self.max_batch_size}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Timing:
    """One timed pass over the sentences."""

    seconds: float
    segments: int
    target_tokens: int

    @property
    def tokens_per_s(self) -> float:
        return self.target_tokens / self.seconds

    @property
    def segments_per_s(self) -> float:
        return self.segments / self.seconds


def warm_up(translator: Translator, tokens: Sequence[Sequence[str]], decoding: Decoding) -> None:
    """One small call so allocations and lazy initialisation stay out of the timings."""
    translator.translate_tokens(tokens[:4], decoding.options())


def limit_row(translator: Translator, tokens: Sequence[Sequence[str]], decoding: Decoding) -> Timing:
    """L: every sentence in one ``translate_batch`` call; CTranslate2 sorts, cuts and spreads the sub-batches."""
    started = time.perf_counter()
    outputs = translator.translate_tokens(tokens, decoding.options())
    seconds = time.perf_counter() - started
    return Timing(seconds, len(outputs), sum(len(o) for o in outputs))


def naive_row(
    translator: Translator, tokens: Sequence[Sequence[str]], decoding: Decoding, callers: int = NAIVE_CALLERS
) -> Timing:
    """naive: one sentence per call from ``callers`` threads, as a per-request server would."""
    options = decoding.options()
    lock = threading.Lock()
    next_index = 0
    produced = 0
    errors: list[BaseException] = []

    def caller() -> None:
        nonlocal next_index, produced
        try:
            while True:
                with lock:
                    index = next_index
                    next_index += 1
                if index >= len(tokens):
                    return
                output = translator.translate_tokens([tokens[index]], options)
                with lock:
                    produced += len(output[0])
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=caller, name=f"naive-{i}") for i in range(callers)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    if errors:
        raise errors[0]
    return Timing(seconds, len(tokens), produced)


def search_layout(
    model_dir: Path,
    tokens: Sequence[Sequence[str]],
    decodings: Sequence[Decoding],
    candidates: Sequence[Layout],
) -> tuple[Layout, list[dict[str, Any]]]:
    """Time L once per candidate layout; the best is the one with the least total time over ``decodings``."""
    results: list[dict[str, Any]] = []
    best: tuple[float, Layout] | None = None
    for layout in candidates:
        translator = Translator(model_dir, layout.config())
        try:
            total = 0.0
            row: dict[str, Any] = {"layout": layout.to_dict()}
            for decoding in decodings:
                warm_up(translator, tokens, decoding)
                timing = limit_row(translator, tokens, decoding)
                total += timing.seconds
                row[f"beam{decoding.beam_size}_tokens_per_s"] = round(timing.tokens_per_s, 1)
            results.append(row)
            log.info("layout %s: %s", layout.label(), row)
        finally:
            translator.close()
        if best is None or total < best[0]:
            best = (total, layout)
    assert best is not None
    return best[1], results


class HfGenerator:
    """The HF row: ``MarianMTModel.generate`` in float32 on ``threads`` torch threads."""

    def __init__(self, checkpoint_dir: Path, threads: int) -> None:
        import torch
        from transformers import MarianMTModel, MarianTokenizer

        torch.set_num_threads(threads)
        self._torch = torch
        self.tokenizer = MarianTokenizer.from_pretrained(str(checkpoint_dir))
        self.model = MarianMTModel.from_pretrained(str(checkpoint_dir)).eval()

    def run(self, sentences: Sequence[str], decoding: Decoding, batch_size: int = HF_BATCH_SIZE) -> Timing:
        """Translate ``sentences`` in length-sorted batches (as CTranslate2 sorts its sub-batches)."""
        order = sorted(range(len(sentences)), key=lambda i: len(self.tokenizer(sentences[i]).input_ids))
        batches = [
            self.tokenizer([sentences[i] for i in order[start : start + batch_size]], return_tensors="pt", padding=True)
            for start in range(0, len(order), batch_size)
        ]
        produced = 0
        started = time.perf_counter()
        with self._torch.inference_mode():
            for batch in batches:
                output = self.model.generate(
                    **batch,
                    num_beams=decoding.beam_size,
                    do_sample=False,
                    min_new_tokens=decoding.length,
                    max_new_tokens=decoding.length,
                    forced_eos_token_id=None,
                    early_stopping=True,
                )
                produced += (output.shape[1] - 1) * output.shape[0]  # minus the decoder start token
        seconds = time.perf_counter() - started
        return Timing(seconds, len(sentences), produced)

    def warm_up(self, sentences: Sequence[str], decoding: Decoding) -> None:
        self.run(sentences[:2], Decoding(decoding.beam_size, 4), batch_size=2)

"""CTranslate2 + sentencepiece behind the project's own words.

The worker serves with this class and ``retrain`` evaluates candidates with it, so what is measured is what serves.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import ctranslate2
import sentencepiece as spm

from jobs.model_dir import SOURCE_SPM, TARGET_SPM, ModelInfo
from jobs.schemas import ModelRef, TranslationOptions

log = logging.getLogger(__name__)

#: End-of-sentence token appended to every source, as MarianTokenizer does.
EOS = "</s>"
#: Length bound when model_info.json does not record the position table (CTranslate2's max_input_length default).
DEFAULT_MAX_POSITIONS = 1024


@dataclass(frozen=True)
class TranslatorConfig:
    """How a model is placed on the hardware.

    ``inter_threads`` is the number of batches translated in parallel (CTranslate2 ``inter_threads``);
    ``intra_threads`` the threads each of them uses (``intra_threads``). On small CPUs ``inter=cores, intra=1``
    was measured fastest for int8 batches.
    """

    device: str = "cpu"
    compute_type: str = "int8"
    inter_threads: int = 2
    intra_threads: int = 1
    max_batch_size: int = 32  #: examples per CTranslate2 sub-batch


class Translator:
    """A loaded translation model: tokenize, translate in batches, detokenize."""

    def __init__(
        self, model_dir: Path | str, config: TranslatorConfig | None = None, model: ModelRef | None = None
    ) -> None:
        """Load ``model_dir``; ``model`` names it (e.g. the registry's name and version), else model_info.json."""
        self.model_dir = Path(model_dir)
        self.config = config or TranslatorConfig()
        self.info = ModelInfo.read(self.model_dir)
        if model is not None:
            self.info.name, self.info.version = model.name, model.version
        self._source = spm.SentencePieceProcessor(model_file=str(self.model_dir / SOURCE_SPM))
        self._target = spm.SentencePieceProcessor(model_file=str(self.model_dir / TARGET_SPM))
        self._ct2: ctranslate2.Translator | None = ctranslate2.Translator(
            str(self.model_dir),
            device=self.config.device,
            compute_type=self.config.compute_type,
            inter_threads=self.config.inter_threads,
            intra_threads=self.config.intra_threads,
        )
        log.info(
            "loaded model %s version %s from %s (%s, %s)",
            self.info.name,
            self.info.version,
            self.model_dir,
            self.config.device,
            self.config.compute_type,
        )

    @property
    def max_positions(self) -> int:
        """Longest sequence the model's position table holds (CTranslate2 fails past it); 1024 if unrecorded."""
        value = self.info.extra.get("max_positions")
        return value if isinstance(value, int) and value > 0 else DEFAULT_MAX_POSITIONS

    @property
    def model(self) -> ModelRef:
        return ModelRef(name=self.info.name, version=self.info.version)

    def tokenize(self, texts: Sequence[str]) -> list[list[str]]:
        pieces: list[list[str]] = self._source.encode(list(texts), out_type=str)
        return [[*p, EOS] for p in pieces]

    def detokenize(self, tokens: Sequence[Sequence[str]]) -> list[str]:
        return [self._target.decode(list(t)) for t in tokens]

    def translate_tokens(self, sources: Sequence[Sequence[str]], options: TranslationOptions) -> list[list[str]]:
        """Beam-search ``sources`` (already tokenized); return the best hypothesis' tokens for each."""
        if self._ct2 is None:
            raise RuntimeError("translator was closed")
        if not sources:
            return []
        results = self._ct2.translate_batch(
            [list(s) for s in sources],
            beam_size=options.beam_size,
            patience=options.patience,
            length_penalty=options.length_penalty,
            max_decoding_length=min(options.max_decoding_length, self.max_positions),
            min_decoding_length=min(options.min_decoding_length, self.max_positions),
            max_input_length=self.max_positions,
            max_batch_size=self.sub_batch_size(len(sources)),
            batch_type="examples",
        )
        return [r.hypotheses[0] for r in results]

    def sub_batch_size(self, count: int) -> int:
        """Examples per CTranslate2 sub-batch for a call of ``count``: ``max_batch_size``, except that a call
        too small to give every replica a full sub-batch is split evenly between them (10 segments on 2 replicas:
        two sub-batches of 5 in parallel rather than one of 10 while the other replica idles)."""
        replicas = max(1, self.config.inter_threads)
        if count >= replicas * self.config.max_batch_size:
            return self.config.max_batch_size
        return max(1, -(-count // replicas))

    def translate(self, texts: Sequence[str], options: TranslationOptions | None = None) -> list[str]:
        """Translate plain texts (tokenize → beam search → detokenize)."""
        tokens = self.translate_tokens(self.tokenize(texts), options or TranslationOptions())
        return self.detokenize(tokens)

    def close(self) -> None:
        """Release the model and give its memory back to the OS (RSS otherwise creeps on every swap)."""
        if self._ct2 is None:
            return
        self._ct2.unload_model()
        self._ct2 = None
        gc.collect()
        release_freed_memory()


def release_freed_memory() -> None:
    """Call glibc's ``malloc_trim(0)`` where it exists (measured: without it RSS grows ~100 MB per model swap)."""
    name = ctypes.util.find_library("c")
    if not name:
        return
    try:
        libc = ctypes.CDLL(name)
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        log.debug("malloc_trim not available")

"""Sentencepiece models and the joint vocabulary of a Marian model, laid out like OPUS-MT.

One sentencepiece model per side (``source.spm``, ``target.spm``) cuts text into pieces; one joint ``vocab.json``
numbers the pieces of both sides: ``</s>`` = 0, ``<unk>`` = 1, the pieces, ``<pad>`` last. The directory then holds
a ``MarianTokenizer`` (``save_pretrained``), which training reads and the CTranslate2 converter copies.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import sentencepiece as spm
from transformers import MarianTokenizer

from jobs.model_dir import SOURCE_SPM, TARGET_SPM

log = logging.getLogger(__name__)

#: The joint vocabulary file, as OPUS-MT names it.
VOCAB_FILE = "vocab.json"
EOS = "</s>"
UNK = "<unk>"
PAD = "<pad>"


@contextmanager
def quiet_marian_tokenizer() -> Iterator[None]:
    """Silence MarianTokenizer's "pip install sacremoses" warning: its Moses punctuation normalizer is never applied
    when tokenizing (nor by the worker), so the warning is noise in every build log."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Recommended: pip install sacremoses")
        yield


def load_tokenizer(directory: Path) -> MarianTokenizer:
    """The ``MarianTokenizer`` saved in ``directory`` (local files only)."""
    with quiet_marian_tokenizer():
        return MarianTokenizer.from_pretrained(str(directory), local_files_only=True)


@dataclass(frozen=True)
class VocabularyConfig:
    """How the sentencepiece models are trained.

    ``*_vocab_size`` is an upper bound: with ``hard_vocab_limit=False`` a tiny domain gets fewer pieces instead of
    an error.
    """

    source_vocab_size: int = 8_000
    target_vocab_size: int = 8_000
    #: "bpe" or "unigram". Measured on the demo corpus: unigram stopped at 103 pieces and spelled "page" letter by
    #: letter; bpe kept whole words (352 pieces) and made sentences 24 % shorter.
    model_type: str = "bpe"
    character_coverage: float = 1.0
    max_sentences: int = 2_000_000  #: sentences per side sampled for sentencepiece training


def train_sentencepiece(texts: Iterable[str], model_file: Path, vocab_size: int, config: VocabularyConfig) -> None:
    """Train one sentencepiece model on ``texts`` and write it to ``model_file``."""
    with tempfile.TemporaryDirectory(prefix="spm-") as work:
        prefix = Path(work) / "spm"
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(texts),
            model_prefix=str(prefix),
            vocab_size=vocab_size,
            hard_vocab_limit=False,
            model_type=config.model_type,
            character_coverage=config.character_coverage,
            input_sentence_size=config.max_sentences,
            shuffle_input_sentence=True,
            num_threads=1,  # deterministic, and fast enough for the corpora trained here
            minloglevel=2,
        )
        shutil.copyfile(prefix.with_suffix(".model"), model_file)


def pieces_of(model_file: Path) -> list[str]:
    """The ordinary pieces of a sentencepiece model (no control or unknown symbols), in id order."""
    processor = spm.SentencePieceProcessor(model_file=str(model_file))
    return [
        processor.id_to_piece(i)
        for i in range(processor.get_piece_size())
        if not (processor.is_control(i) or processor.is_unknown(i))
    ]


def joint_vocabulary(source_model: Path, target_model: Path) -> dict[str, int]:
    """OPUS-MT layout: ``</s>`` = 0, ``<unk>`` = 1, source then new target pieces, ``<pad>`` = last."""
    vocab: dict[str, int] = {EOS: 0, UNK: 1}
    for piece in [*pieces_of(source_model), *pieces_of(target_model)]:
        vocab.setdefault(piece, len(vocab))
    vocab[PAD] = len(vocab)
    return vocab


def build_vocabulary(
    sources: Iterable[str],
    targets: Iterable[str],
    out_dir: Path,
    config: VocabularyConfig | None = None,
) -> int:
    """Train both sentencepiece models, write ``source.spm``, ``target.spm``, ``vocab.json`` and the
    ``MarianTokenizer`` files into ``out_dir``; return the joint vocabulary size."""
    config = config or VocabularyConfig()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    source_model, target_model = out_dir / SOURCE_SPM, out_dir / TARGET_SPM
    train_sentencepiece(sources, source_model, config.source_vocab_size, config)
    train_sentencepiece(targets, target_model, config.target_vocab_size, config)
    vocab = joint_vocabulary(source_model, target_model)
    vocab_file = out_dir / VOCAB_FILE
    vocab_file.write_text(json.dumps(vocab, ensure_ascii=False, indent=0))
    with quiet_marian_tokenizer():
        tokenizer = MarianTokenizer(str(source_model), str(target_model), str(vocab_file))
    tokenizer.save_pretrained(str(out_dir))
    log.info(
        "vocabulary: %d source pieces, %d target pieces, %d joint entries",
        len(pieces_of(source_model)),
        len(pieces_of(target_model)),
        len(vocab),
    )
    return len(vocab)

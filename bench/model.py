"""The benchmark model: an OPUS-MT-sized Marian with random weights, built offline and cached under ``var/bench``.

d_model 512, 6+6 layers, 8 heads, FFN 2048, one ~32k sentencepiece vocabulary trained on the generated corpus of
:mod:`bench.corpus` (copied to both sides, joint ``vocab.json`` laid out like OPUS-MT). Random weights make the
output meaningless, so every row decodes a fixed number of tokens (``min_decoding_length`` =
``max_decoding_length``) and does the same work.

Three stages, each cached by a key of everything that shapes it:

* ``vocab/``       ``source.spm``, ``target.spm``, ``vocab.json`` and the ``MarianTokenizer`` files;
* ``checkpoint/``  the Hugging Face checkpoint (what the HF row runs);
* ``ct2-int8/``    the CTranslate2 model directory the worker serves (what every other row runs).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.corpus import CorpusSpec, PseudoLanguage
from jobs.model_dir import SOURCE_SPM, TARGET_SPM, ModelInfo
from retrain.marian import ModelSpec

log = logging.getLogger(__name__)

#: OPUS-MT's size (Helsinki-NLP/opus-mt-*): what the benchmark measures.
OPUS_MT_SPEC = ModelSpec(
    d_model=512,
    encoder_layers=6,
    decoder_layers=6,
    attention_heads=8,
    ffn_dim=2048,
    max_positions=512,
    dropout=0.1,
)
#: Name of the benchmark model (``model_info.json``).
MODEL_NAME = "bench-marian-512"
#: Bumped when the way the model is built changes, so stale caches are rebuilt.
RECIPE_VERSION = 1


@dataclass(frozen=True)
class BenchModelSpec:
    """Everything that decides the benchmark model."""

    spec: ModelSpec = OPUS_MT_SPEC
    corpus: CorpusSpec = field(default_factory=CorpusSpec)
    vocab_size: int = 32_000  #: sentencepiece pieces (one model, used for both sides)
    spm_sentences: int = 60_000  #: generated sentences sentencepiece trains on
    weight_seed: int = 0

    def vocab_key(self) -> str:
        text = json.dumps([RECIPE_VERSION, asdict(self.corpus), self.vocab_size, self.spm_sentences], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def key(self) -> str:
        text = json.dumps([self.vocab_key(), asdict(self.spec), self.weight_seed], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class BenchModel:
    """Paths of a built benchmark model."""

    root: Path
    vocab_dir: Path
    checkpoint_dir: Path
    ct2_dir: Path


def model_paths(cache_dir: Path, spec: BenchModelSpec) -> BenchModel:
    root = Path(cache_dir) / f"model-{spec.key()}"
    return BenchModel(
        root=root,
        vocab_dir=Path(cache_dir) / f"vocab-{spec.vocab_key()}",
        checkpoint_dir=root / "checkpoint",
        ct2_dir=root / "ct2-int8",
    )


def build_vocabulary_dir(out_dir: Path, spec: BenchModelSpec) -> Path:
    """Train the sentencepiece model and write the tokenizer files to ``out_dir`` (cached)."""
    if (out_dir / "vocab.json").is_file():
        return out_dir
    import sentencepiece as spm
    from transformers import MarianTokenizer

    from retrain.vocabulary import VOCAB_FILE, joint_vocabulary

    log.info("training a %d-piece sentencepiece model on %d generated sentences", spec.vocab_size, spec.spm_sentences)
    sentences = PseudoLanguage(spec.corpus).sentences(spec.spm_sentences, seed=spec.corpus.seed + 1)
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences),
        model_writer=model,
        vocab_size=spec.vocab_size,
        hard_vocab_limit=False,
        model_type="unigram",
        character_coverage=1.0,
        input_sentence_size=spec.spm_sentences,
        num_threads=2,
        minloglevel=2,
    )
    staged = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(staged, ignore_errors=True)
    staged.mkdir(parents=True)
    for name in (SOURCE_SPM, TARGET_SPM):
        (staged / name).write_bytes(model.getvalue())
    vocab = joint_vocabulary(staged / SOURCE_SPM, staged / TARGET_SPM)
    (staged / VOCAB_FILE).write_text(json.dumps(vocab, ensure_ascii=False, indent=0))
    MarianTokenizer(str(staged / SOURCE_SPM), str(staged / TARGET_SPM), str(staged / VOCAB_FILE)).save_pretrained(
        str(staged)
    )
    shutil.rmtree(out_dir, ignore_errors=True)
    staged.rename(out_dir)
    log.info("vocabulary: %d joint entries in %s", len(vocab), out_dir)
    return out_dir


def build_checkpoint(vocab_dir: Path, out_dir: Path, spec: BenchModelSpec) -> Path:
    """A Hugging Face Marian checkpoint with seeded random weights over the vocabulary in ``vocab_dir``."""
    import torch

    from retrain.marian import build_model

    vocab_size = len(json.loads((vocab_dir / "vocab.json").read_text()))
    torch.manual_seed(spec.weight_seed)
    model = build_model(spec.spec, vocab_size)
    staged = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(staged, ignore_errors=True)
    shutil.copytree(vocab_dir, staged)
    model.save_pretrained(str(staged))
    for path in staged.iterdir():
        path.chmod(0o644)  # transformers writes model.safetensors 0600
    shutil.rmtree(out_dir, ignore_errors=True)
    staged.rename(out_dir)
    return out_dir


def build_bench_model(cache_dir: Path, spec: BenchModelSpec | None = None) -> BenchModel:
    """Build (or reuse) the benchmark model under ``cache_dir``; return its paths."""
    from retrain.export import export

    spec = spec or BenchModelSpec()
    paths = model_paths(cache_dir, spec)
    if (paths.ct2_dir / "model.bin").is_file() and (paths.checkpoint_dir / "config.json").is_file():
        log.info("benchmark model %s already built", paths.root)
        return paths
    build_vocabulary_dir(paths.vocab_dir, spec)
    build_checkpoint(paths.vocab_dir, paths.checkpoint_dir, spec)
    info = ModelInfo(
        name=MODEL_NAME,
        version=spec.key(),
        source_lang="en",
        target_lang="fr",
        extra={"model_spec": asdict(spec.spec), "random_weights": True, "weight_seed": spec.weight_seed},
    )
    export(paths.checkpoint_dir, paths.ct2_dir, info, quantization="int8")
    return paths

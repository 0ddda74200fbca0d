"""The shape of a Marian model (:class:`ModelSpec`) and how to build a fresh one from it.

The model is OPUS-MT-like — post-norm transformer, swish, scaled and shared embeddings, sinusoidal positions — so
that ``ct2-transformers-converter`` and the worker treat a model trained here exactly like a downloaded OPUS-MT one.
Token ids follow the joint vocabulary of :mod:`retrain.vocabulary`: ``</s>`` = 0 ends every sentence (and is forced
last), ``<pad>`` = ``V - 1`` pads and starts decoding.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

from transformers import MarianConfig, MarianMTModel

log = logging.getLogger(__name__)

#: Id of ``</s>`` in the joint vocabulary (OPUS-MT layout).
EOS_ID = 0


@dataclass(frozen=True)
class ModelSpec:
    """Size and regularisation of a Marian encoder-decoder."""

    d_model: int = 256
    encoder_layers: int = 3
    decoder_layers: int = 3
    attention_heads: int = 4
    ffn_dim: int = 1024
    max_positions: int = 256  #: longest sequence, in tokens (sinusoidal table size)
    dropout: float = 0.1
    attention_dropout: float = 0.0
    activation: str = "swish"

    def __post_init__(self) -> None:
        if self.d_model % self.attention_heads:
            raise ValueError(f"d_model {self.d_model} is not divisible by attention_heads {self.attention_heads}")

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


#: Small enough to build (corpus → sentencepiece → train → convert) in well under a minute on 2 CPU cores.
#: Keeps the demo's 256 positions: CTranslate2 refuses inputs longer than the position table.
TEST_SPEC = ModelSpec(d_model=128, encoder_layers=2, decoder_layers=2, attention_heads=4, ffn_dim=256, dropout=0.0)
#: The size measured in DESIGN.md: 5.8M parameters with the demo corpus' 675-entry vocabulary; high quality in a
#: few minutes.
DEMO_SPEC = ModelSpec(d_model=256, encoder_layers=3, decoder_layers=3, attention_heads=4, ffn_dim=1024)

#: Named model sizes (``--preset``).
MODEL_PRESETS: dict[str, ModelSpec] = {"test": TEST_SPEC, "demo": DEMO_SPEC}


def model_spec(preset: str) -> ModelSpec:
    """The :class:`ModelSpec` named ``preset``."""
    try:
        return MODEL_PRESETS[preset]
    except KeyError:
        raise ValueError(f"{preset!r} is not a model preset (accepted presets: {', '.join(MODEL_PRESETS)})") from None


def marian_config(spec: ModelSpec, vocab_size: int) -> MarianConfig:
    """The ``MarianConfig`` for ``spec`` over a joint vocabulary of ``vocab_size`` entries (``<pad>`` last)."""
    pad_id = vocab_size - 1
    return MarianConfig(
        vocab_size=vocab_size,
        decoder_vocab_size=vocab_size,
        d_model=spec.d_model,
        encoder_layers=spec.encoder_layers,
        decoder_layers=spec.decoder_layers,
        encoder_attention_heads=spec.attention_heads,
        decoder_attention_heads=spec.attention_heads,
        encoder_ffn_dim=spec.ffn_dim,
        decoder_ffn_dim=spec.ffn_dim,
        max_position_embeddings=spec.max_positions,
        dropout=spec.dropout,
        attention_dropout=spec.attention_dropout,
        activation_function=spec.activation,
        scale_embedding=True,
        share_encoder_decoder_embeddings=True,
        tie_word_embeddings=True,
        pad_token_id=pad_id,
        decoder_start_token_id=pad_id,
        eos_token_id=EOS_ID,
        forced_eos_token_id=EOS_ID,
    )


def build_model(spec: ModelSpec, vocab_size: int) -> MarianMTModel:
    """A freshly initialised Marian model (weights from the current torch RNG state: seed it first)."""
    model = MarianMTModel(marian_config(spec, vocab_size))
    parameters = sum(p.numel() for p in model.parameters())
    log.info("new Marian model: %s, vocabulary %d, %.2fM parameters", spec, vocab_size, parameters / 1e6)
    return model

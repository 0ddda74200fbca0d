"""Training a Marian model: a plain PyTorch loop over a list of pairs, into a Hugging Face checkpoint directory.

AdamW, inverse-square-root warm-up, label-smoothed cross-entropy, random batches of padded sentences; stops at
``max_steps`` or ``max_time_s``, whichever comes first. From scratch it needs a vocabulary already written into the
output directory (:func:`retrain.vocabulary.build_vocabulary`) and a :class:`~retrain.marian.ModelSpec`; to
fine-tune, pass ``init_checkpoint``: weights and vocabulary then come from that checkpoint.
"""

from __future__ import annotations

import logging
import math
import os
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import MarianMTModel, MarianTokenizer

from jobs.errors import BatchTranslateError
from retrain.corpus import Pair
from retrain.marian import ModelSpec, build_model
from retrain.vocabulary import VOCAB_FILE, load_tokenizer

log = logging.getLogger(__name__)

#: Label value ignored by the loss (padding of the targets).
IGNORE_INDEX = -100
#: File mode of the saved weights: transformers writes 0600, other users (the worker, CI) must read them.
WEIGHTS_MODE = 0o644
#: Width of the progress bar, in characters.
_BAR_WIDTH = 30


class TrainingError(BatchTranslateError, ValueError):
    """Training cannot start with these inputs (no pairs, no vocabulary, no model to start from)."""


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and stopping knobs. Training stops at ``max_steps`` or ``max_time_s``, whichever comes first."""

    learning_rate: float = 1e-3
    warmup_steps: int = 400  #: optimizer steps of linear warm-up before the inverse-square-root decay
    batch_size: int = 64  #: sentence pairs per step
    label_smoothing: float = 0.1
    weight_decay: float = 0.0
    clip_grad_norm: float = 1.0
    max_steps: int = 1_000
    max_time_s: float = 600.0
    max_tokens: int = 128  #: sentences are truncated to this many tokens
    seed: int = 0
    #: torch intra-op threads. Measured on the shared 2-core machine: idle, 2 threads were 1.3x faster than 1; under
    #: load (~3.5), 1 thread ran the test preset's 500 steps in 26 s while 2 threads managed 149 steps in 120 s
    #: (oversubscribed OpenMP threads stall each other). 1 is the safe default there; raise it on dedicated cores.
    threads: int = 1
    log_every: int = 100  #: steps between loss lines in the log


@dataclass(frozen=True)
class TrainResult:
    """What a training run did."""

    checkpoint_dir: Path
    steps: int
    train_seconds: float
    loss: float  #: mean training loss over the last logging interval
    stopped_by: str  #: ``"max_steps"`` or ``"max_time"``


def inverse_sqrt_factor(step: int, warmup_steps: int) -> float:
    """Learning-rate multiplier: linear warm-up to 1 at ``warmup_steps``, then ``sqrt(warmup / step)``."""
    step = max(step, 1)
    warmup_steps = max(warmup_steps, 1)
    return min(step / warmup_steps, math.sqrt(warmup_steps / step))


def _encode(tokenizer: MarianTokenizer, pairs: Sequence[Pair], max_tokens: int) -> list[tuple[list[int], list[int]]]:
    encoded = tokenizer(
        [p.source for p in pairs],
        text_target=[p.target for p in pairs],
        truncation=True,
        max_length=max_tokens,
    )
    return list(zip(encoded["input_ids"], encoded["labels"], strict=True))


def _pad(rows: Sequence[Sequence[int]], value: int) -> torch.Tensor:
    width = max(len(r) for r in rows)
    return torch.tensor([list(r) + [value] * (width - len(r)) for r in rows], dtype=torch.long)


def _batches(count: int, batch_size: int, rng: random.Random) -> list[list[int]]:
    order = list(range(count))
    rng.shuffle(order)
    return [order[i : i + batch_size] for i in range(0, count, batch_size)]


class _Progress:
    """A one-line progress bar on stderr, drawn only when stderr is a terminal."""

    def __init__(self, total_steps: int, max_time_s: float) -> None:
        self.total_steps = total_steps
        self.max_time_s = max_time_s
        self.enabled = sys.stderr.isatty()

    def update(self, step: int, loss: float, elapsed_s: float) -> None:
        if not self.enabled:
            return
        done = max(step / self.total_steps, elapsed_s / self.max_time_s)
        filled = int(_BAR_WIDTH * min(done, 1.0))
        bar = "#" * filled + "." * (_BAR_WIDTH - filled)
        sys.stderr.write(f"\r[{bar}] step {step}/{self.total_steps} loss {loss:.3f} {elapsed_s:.0f}s ")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _load_start(
    out_dir: Path, spec: ModelSpec | None, init_checkpoint: Path | None
) -> tuple[MarianTokenizer, MarianMTModel]:
    if init_checkpoint is not None:
        init_checkpoint = Path(init_checkpoint)
        log.info("fine-tuning from %s", init_checkpoint)
        tokenizer = load_tokenizer(init_checkpoint)
        model = MarianMTModel.from_pretrained(str(init_checkpoint), local_files_only=True)
        return tokenizer, model
    if spec is None:
        raise TrainingError("training from scratch needs a ModelSpec (or pass init_checkpoint to fine-tune)")
    if not (out_dir / VOCAB_FILE).exists():
        raise TrainingError(
            f"no vocabulary in {out_dir}: build one first with retrain.vocabulary.build_vocabulary(..., {out_dir})"
        )
    tokenizer = load_tokenizer(out_dir)
    return tokenizer, build_model(spec, len(tokenizer))


def _start_embeddings(model: MarianMTModel) -> list[torch.nn.Parameter]:
    """The embedding tables whose ``<pad>`` row the decoder starts from (one when encoder and decoder share)."""
    tables = [model.get_input_embeddings().weight, model.get_decoder().embed_tokens.weight]
    return list({id(t): t for t in tables}.values())


def _zero_start_row(tables: Sequence[torch.nn.Parameter], pad_id: int, *, grad: bool) -> None:
    """Keep the ``<pad>`` row at zero: CTranslate2 starts Marian decoding from a zero embedding, so training must
    too (the tied output layer would otherwise move the row, and the served model would lose its first word)."""
    with torch.no_grad():
        for table in tables:
            target = table.grad if grad else table
            if target is not None:
                target[pad_id].zero_()


def train(
    pairs: Sequence[Pair],
    out_dir: Path,
    config: TrainConfig | None = None,
    *,
    spec: ModelSpec | None = None,
    init_checkpoint: Path | None = None,
) -> TrainResult:
    """Train on ``pairs`` and save a Hugging Face checkpoint (model and tokenizer) into ``out_dir``.

    From scratch: ``spec`` gives the model size and ``out_dir`` must already hold the vocabulary. Fine-tuning:
    ``init_checkpoint`` gives the starting weights and the vocabulary (``spec`` is ignored).
    """
    config = config or TrainConfig()
    out_dir = Path(out_dir)
    if not pairs:
        raise TrainingError("no training pairs")
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        torch.manual_seed(config.seed)
        tokenizer, model = _load_start(out_dir, spec, init_checkpoint)
        result = _run(model, tokenizer, pairs, out_dir, config)
    finally:
        torch.set_num_threads(previous_threads)
    return result


def _run(
    model: MarianMTModel,
    tokenizer: MarianTokenizer,
    pairs: Sequence[Pair],
    out_dir: Path,
    config: TrainConfig,
) -> TrainResult:
    pad_id, start_id = model.config.pad_token_id, model.config.decoder_start_token_id
    if pad_id is None or start_id is None:
        raise TrainingError("the model config names no pad_token_id / decoder_start_token_id")
    examples = _encode(tokenizer, pairs, config.max_tokens)
    rng = random.Random(config.seed)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, betas=(0.9, 0.98), eps=1e-9, weight_decay=config.weight_decay
    )
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: inverse_sqrt_factor(step + 1, config.warmup_steps)
    )
    log.info(
        "training on %d pairs: batch %d, at most %d steps or %.0f s, %d threads",
        len(examples),
        config.batch_size,
        config.max_steps,
        config.max_time_s,
        config.threads,
    )
    start_tables = _start_embeddings(model)
    _zero_start_row(start_tables, pad_id, grad=False)
    model.train()
    progress = _Progress(config.max_steps, config.max_time_s)
    started = time.monotonic()
    step, stopped_by = 0, "max_steps"
    window_loss, window_steps, last_loss = 0.0, 0, float("nan")
    while step < config.max_steps and stopped_by == "max_steps":
        for batch in _batches(len(examples), config.batch_size, rng):
            sources = _pad([examples[i][0] for i in batch], pad_id)
            labels = _pad([examples[i][1] for i in batch], IGNORE_INDEX)
            decoder_inputs = torch.cat([torch.full((len(batch), 1), start_id, dtype=torch.long), labels[:, :-1]], dim=1)
            decoder_inputs = decoder_inputs.masked_fill(decoder_inputs.eq(IGNORE_INDEX), pad_id)
            logits = model(
                input_ids=sources,
                attention_mask=sources.ne(pad_id),
                decoder_input_ids=decoder_inputs,
            ).logits
            loss = F.cross_entropy(
                logits.reshape(-1, logits.size(-1)),
                labels.reshape(-1),
                ignore_index=IGNORE_INDEX,
                label_smoothing=config.label_smoothing,
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            _zero_start_row(start_tables, pad_id, grad=True)
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad_norm)
            optimizer.step()
            schedule.step()
            step += 1
            loss_value = loss.item()
            window_loss += loss_value
            window_steps += 1
            elapsed = time.monotonic() - started
            progress.update(step, loss_value, elapsed)
            if step % config.log_every == 0:
                last_loss = window_loss / window_steps
                log.info(
                    "step %d loss %.4f lr %.2e (%.1f steps/s)",
                    step,
                    last_loss,
                    schedule.get_last_lr()[0],
                    step / elapsed,
                )
                window_loss, window_steps = 0.0, 0
            if step >= config.max_steps:
                break
            if elapsed >= config.max_time_s:
                stopped_by = "max_time"
                break
    progress.close()
    train_seconds = time.monotonic() - started
    if window_steps:
        last_loss = window_loss / window_steps
    log.info("stopped by %s after %d steps in %.1f s, loss %.4f", stopped_by, step, train_seconds, last_loss)
    save_checkpoint(model, tokenizer, out_dir)
    return TrainResult(out_dir, step, train_seconds, last_loss, stopped_by)


def save_checkpoint(model: MarianMTModel, tokenizer: MarianTokenizer, out_dir: Path) -> None:
    """Write model and tokenizer as a Hugging Face checkpoint, readable by every user."""
    out_dir.mkdir(parents=True, exist_ok=True)
    model.eval()
    model.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    for weights in out_dir.glob("*.safetensors"):
        os.chmod(weights, WEIGHTS_MODE)
    log.info("saved checkpoint to %s", out_dir)

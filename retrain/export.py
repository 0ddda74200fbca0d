"""From a Hugging Face checkpoint to a served model directory (see :mod:`jobs.model_dir`).

CTranslate2 conversion (int8 by default) plus the two sentencepiece models and ``model_info.json``: exactly what
``worker.translator.Translator`` loads.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from pathlib import Path

from ctranslate2.converters import TransformersConverter

from jobs.errors import BatchTranslateError
from jobs.model_dir import MODEL_INFO_FILE, SOURCE_SPM, TARGET_SPM, ModelInfo
from retrain.vocabulary import quiet_marian_tokenizer

log = logging.getLogger(__name__)

#: Weight types accepted by CTranslate2's converter (``None`` keeps the checkpoint's float32).
QUANTIZATIONS = ("int8", "int8_float32", "int8_float16", "int8_bfloat16", "int16", "float16", "bfloat16", "float32")


class ExportError(BatchTranslateError):
    """A checkpoint could not be turned into a model directory."""


def export(
    checkpoint_dir: Path,
    out_dir: Path,
    info: ModelInfo,
    *,
    quantization: str | None = "int8",
) -> Path:
    """Convert ``checkpoint_dir`` to a CTranslate2 model directory at ``out_dir`` and describe it with ``info``.

    ``out_dir`` is replaced as a whole: the new directory is built beside it and moved into place, so a reader
    never sees a half-written model. Returns ``out_dir``.
    """
    checkpoint_dir, out_dir = Path(checkpoint_dir), Path(out_dir)
    if quantization is not None and quantization not in QUANTIZATIONS:
        raise ValueError(f"{quantization!r} is not a valid quantization (accepted: {', '.join(QUANTIZATIONS)})")
    for name in (SOURCE_SPM, TARGET_SPM):
        if not (checkpoint_dir / name).is_file():
            raise ExportError(f"{checkpoint_dir} has no {name}: is it a Marian checkpoint with its tokenizer?")
    refuse_foreign_dir(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f".{out_dir.name}-", dir=out_dir.parent) as work:
        staged = Path(work) / "model"
        converter = TransformersConverter(str(checkpoint_dir), copy_files=[SOURCE_SPM, TARGET_SPM])
        try:
            with quiet_marian_tokenizer():
                converter.convert(str(staged), quantization=quantization, force=True)
        except (ValueError, RuntimeError, OSError) as exc:
            raise ExportError(f"CTranslate2 conversion of {checkpoint_dir} failed: {exc}") from exc
        info.write(staged)
        staged.chmod(0o755)
        replace_dir(staged, out_dir)
    log.info(
        "exported %s version %s to %s (%s) in %.1f s",
        info.name,
        info.version,
        out_dir,
        quantization or "float32",
        time.monotonic() - started,
    )
    return out_dir


def refuse_foreign_dir(out_dir: Path) -> None:
    """Refuse to replace a non-empty directory that is not a model directory (a typo in ``--out`` must not
    delete someone's home)."""
    looks_like_model = (out_dir / "model.bin").exists() or (out_dir / MODEL_INFO_FILE).exists()
    if out_dir.is_dir() and any(out_dir.iterdir()) and not looks_like_model:
        raise ExportError(f"{out_dir} is not empty and holds no model: refusing to replace it")


def replace_dir(new: Path, target: Path) -> None:
    """Move directory ``new`` to ``target``, replacing whatever directory was there."""
    if target.exists():
        old = target.with_name(f".{target.name}.old-{time.monotonic_ns()}")
        target.rename(old)
        new.rename(target)
        shutil.rmtree(old)
    else:
        new.rename(target)

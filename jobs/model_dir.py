"""The model directory convention (OPUS-MT layout plus a small metadata file).

::

    model.bin, config.json, shared_vocabulary.json | source_vocabulary.json + target_vocabulary.json
    source.spm, target.spm        sentencepiece models of each side
    model_info.json               {"name", "version", "source_lang", "target_lang", "data_fingerprint", ...}

``model_info.json`` is optional for imported models; without it the directory name is the model name and the
version is ``"local"``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

MODEL_INFO_FILE = "model_info.json"
SOURCE_SPM = "source.spm"
TARGET_SPM = "target.spm"


@dataclass
class ModelInfo:
    """What a model directory says about itself."""

    name: str
    version: str = "local"
    source_lang: str | None = None
    target_lang: str | None = None
    data_fingerprint: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def read(cls, model_dir: Path) -> ModelInfo:
        path = Path(model_dir) / MODEL_INFO_FILE
        if not path.exists():
            return cls(name=Path(model_dir).resolve().name)
        raw = json.loads(path.read_text())
        known = {
            k: raw.pop(k) for k in ("name", "version", "source_lang", "target_lang", "data_fingerprint") if k in raw
        }
        known.setdefault("name", Path(model_dir).resolve().name)
        known["version"] = str(known.get("version", "local"))
        return cls(**known, extra=raw)

    def write(self, model_dir: Path) -> None:
        data = asdict(self)
        extra = data.pop("extra")
        (Path(model_dir) / MODEL_INFO_FILE).write_text(json.dumps({**data, **extra}, indent=2, sort_keys=True))

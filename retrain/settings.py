"""Settings of the retrain job (env prefix ``BT_RETRAIN_``; shared ones are ``BT_*``).

Built once in ``retrain.__main__`` and passed down; command-line options override single fields.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import SettingsConfigDict

from jobs.settings import SharedSettings

#: Placeholder of the pair in :attr:`RetrainSettings.model_name_template`.
PAIR_PLACEHOLDER = "{pair}"


class RetrainSettings(SharedSettings):
    """Everything ``retrain run`` and ``retrain import`` read."""

    model_config = SettingsConfigDict(env_prefix="BT_RETRAIN_", populate_by_name=True, extra="ignore")

    tracking_uri: str = Field(
        "sqlite:///var/mlflow.db",
        validation_alias=AliasChoices("BT_RETRAIN_TRACKING_URI", "MLFLOW_TRACKING_URI", "tracking_uri"),
        description="MLflow tracking and registry URI (BT_RETRAIN_TRACKING_URI, else MLFLOW_TRACKING_URI); "
        "the embedded default is a local SQLite file.",
    )
    model_name_template: str = Field(
        "batch-translate-{pair}",
        description="Registered model name of a pair; {pair} becomes <src>-<tgt>. Workers follow the same name.",
    )
    alias: str = Field("champion", description="Registry alias that marks the served version of a pair.")
    data_dir: Path = Field(
        Path("var/corpus"),
        description="Directory of corpus files: <data_dir>/<src>-<tgt>/**/*.tsv|.tmx|.jsonl, read besides the "
        "pairs uploaded to the store.",
    )
    work_dir: Path | None = Field(
        None, description="Scratch space for checkpoints and downloads (default: the system's temporary directory)."
    )
    min_new_pairs: int = Field(
        1_000, ge=0, description="Train when at least this many new training pairs arrived since the champion's data."
    )
    min_new_share: float = Field(
        0.1,
        ge=0,
        description="... or when the new training pairs are at least this share of the champion's training pairs.",
    )
    gate_metric: Literal["chrf", "bleu"] = Field(
        "chrf", description="Metric the promotion gate compares (sacrebleu chrF or BLEU on the test split)."
    )
    gate_margin: float = Field(
        0.5, description="Points (0-100 scale) by which a candidate must beat the champion to be promoted."
    )
    gate_min_score: float = Field(
        0.0, ge=0, le=100, description="Lowest gate metric a first model (no champion yet) may be promoted with."
    )
    preset: Literal["test", "demo"] = Field(
        "demo", description="Model size and training recipe for models trained from scratch (retrain.build)."
    )
    base_model_dir: Path | None = Field(
        None,
        description="Hugging Face Marian checkpoint (e.g. an OPUS-MT model on disk) to fine-tune when the champion "
        "has no checkpoint, or there is no champion yet.",
    )
    max_steps: int | None = Field(None, ge=1, description="Most optimizer steps per run (default: the preset's).")
    max_time_s: float | None = Field(None, gt=0, description="Most training seconds per run (default: the preset's).")
    learning_rate: float | None = Field(None, gt=0, description="Peak learning rate (default: the preset's).")
    seed: int = Field(0, description="Training seed.")
    threads: int = Field(2, ge=1, description="CPU threads for training and evaluation.")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto",
        description="Where candidates train (torch) and are evaluated (CTranslate2); auto picks cuda for each "
        "that sees a GPU.",
    )
    code_version: str | None = Field(
        None, description="Code version recorded with every run (default: git commit, else the package version)."
    )

    @field_validator("model_name_template")
    @classmethod
    def _has_pair(cls, value: str) -> str:
        if PAIR_PLACEHOLDER not in value:
            raise ValueError(f"model_name_template {value!r} must contain {PAIR_PLACEHOLDER}")
        return value

    def model_name(self, pair: str) -> str:
        """The registered model name of ``pair``."""
        return self.model_name_template.replace(PAIR_PLACEHOLDER, pair)

    def pair_data_dir(self, pair: str) -> Path:
        """Where the corpus files of ``pair`` live."""
        return self.data_dir / pair

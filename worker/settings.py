"""Settings of the translation worker (env prefix ``BT_WORKER_``; shared ones are ``BT_*``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from jobs.settings import SharedSettings


class WorkerSettings(SharedSettings):
    """Everything the translation worker reads. Built in ``worker.__main__`` and passed down."""

    model_config = SettingsConfigDict(env_prefix="BT_WORKER_", populate_by_name=True, extra="ignore")

    pair: str = Field(
        "en-fr",
        pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*-[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$",
        description="Language pair this worker serves, <src>-<tgt>; it consumes <prefix>.<pair>.",
    )
    model_dir: Path | None = Field(None, description="Local CTranslate2 model directory (used without a registry).")
    device: str = Field("cpu", description="CTranslate2 device: cpu or cuda.")
    compute_type: str = Field("int8", description="CTranslate2 compute type: int8, int8_float16, float16, float32…")
    inter_threads: int = Field(2, ge=1, description="Batches translated in parallel (CTranslate2 inter_threads).")
    intra_threads: int = Field(1, ge=0, description="Threads per batch (CTranslate2 intra_threads; 0 = default).")
    max_batch_size: int = Field(32, ge=1, description="Examples per CTranslate2 sub-batch.")
    max_batch_tokens: int = Field(2048, ge=16, description="Source tokens packed into one translation step.")
    max_wait_ms: int = Field(20, ge=0, description="How long a short queue waits to fill a batch, in ms.")
    prefetch: int = Field(
        256, ge=1, description="Unacked messages the broker hands this worker at once (room for several steps)."
    )
    metrics_port: int = Field(9100, ge=0, description="Port of the worker's /metrics, /healthz, /readyz (0 = off).")
    registry_uri: str | None = Field(
        None, description="MLflow tracking/registry URI; when set the worker serves <model_name>@<model_alias>."
    )
    model_name: str | None = Field(None, description="Registered model name (default batch-translate-<pair>).")
    model_alias: str = Field("champion", description="Registry alias the worker follows.")
    model_poll_interval_s: float = Field(30.0, gt=0, description="How often the alias is checked, in seconds.")
    model_cache_dir: Path = Field(Path("var/models"), description="Where downloaded model versions are kept.")
    dead_letter_sweep_s: float = Field(
        60.0, ge=0, description="How often dead-lettered jobs still open in the store are failed, in s (0 = off)."
    )
    drain_timeout_s: float = Field(60.0, ge=1, description="How long SIGTERM waits for in-flight work.")

    @property
    def registered_name(self) -> str:
        """The registry name of this pair's model."""
        return self.model_name or f"batch-translate-{self.pair}"

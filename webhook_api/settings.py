"""Settings of the HTTP API (env prefix ``BT_API_``; shared ones are ``BT_*``)."""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from jobs.settings import CommaList, SharedSettings, shared

#: Placeholder values that must never reach production.
_PLACEHOLDER_KEYS = {"changeme", "change-me", "secret", "xxx"}


class ApiSettings(SharedSettings):
    """Everything the API reads. Built once in ``create_app``/``main`` and passed down."""

    model_config = SettingsConfigDict(env_prefix="BT_API_", populate_by_name=True, extra="ignore")

    host: str = Field("0.0.0.0", description="Address the HTTP server binds.")
    port: int = Field(8000, description="Port the HTTP server listens on.")
    api_keys: CommaList = Field(
        default_factory=list,
        description="Accepted API keys as client:key pairs, comma separated (e.g. acme:s3cr3t,beta:k2).",
    )
    pairs: CommaList = shared(
        "PAIRS",
        default_factory=lambda: ["en-fr"],
        description="Language pairs served, e.g. en-fr,en-es (each needs a worker).",
    )
    max_segments: int = Field(10_000, ge=1, description="Most segments one job may carry.")
    max_segment_chars: int = Field(5_000, ge=1, description="Longest segment accepted, in characters.")
    max_body_bytes: int = Field(10_000_000, ge=1024, description="Largest request body accepted, in bytes.")
    max_metadata_bytes: int = Field(4_096, ge=0, description="Largest metadata object, in bytes of JSON.")
    result_retention_days: float = Field(
        30.0, ge=0, description="Days a finished job and its result stay retrievable (0 = forever)."
    )
    publisher_pool_size: int = Field(8, ge=1, description="Broker connections kept for publishing.")

    @field_validator("api_keys")
    @classmethod
    def _keys_are_pairs(cls, value: list[str]) -> list[str]:
        for item in value:
            client, sep, key = item.partition(":")
            if not sep or not client or not key:
                raise ValueError(f"api key entry {item!r} must look like client:key")
            if key.lower() in _PLACEHOLDER_KEYS:
                raise ValueError(f"api key of client {client!r} is a placeholder; set a real secret")
        return value

    def keys_by_token(self) -> dict[str, str]:
        """Map each bearer token to its client name."""
        return {key: client for client, _, key in (item.partition(":") for item in self.api_keys)}

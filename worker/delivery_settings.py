"""Settings of the delivery worker (env prefix ``BT_DELIVERY_``; shared ones are ``BT_*``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from jobs.settings import CommaList, SharedSettings
from worker.signing import InvalidSecret, WebhookSecret

#: The specification's example schedule (after the first, immediate attempt): 5 s, 5 min, 30 min, 2 h, 5 h,
#: 10 h, 14 h, 20 h, 24 h — ten attempts over about three days.
DEFAULT_RETRY_SCHEDULE_S = [5, 300, 1_800, 7_200, 18_000, 36_000, 50_400, 72_000, 86_400]


def _split_numbers(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.replace(" ", ",").split(",") if item.strip()]
    return value


class DeliverySettings(SharedSettings):
    """Everything the delivery worker reads. Built in ``worker.delivery.main`` and passed down."""

    model_config = SettingsConfigDict(env_prefix="BT_DELIVERY_", populate_by_name=True, extra="ignore")

    webhook_secrets: CommaList = Field(
        description=(
            "Signing secrets per API client as client:whsec_<base64> pairs, comma separated; list a client "
            "twice while rotating (every event then carries one signature per secret). Required."
        ),
    )
    retry_schedule_s: Annotated[list[int], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_RETRY_SCHEDULE_S),
        description="Delay before each retry in seconds (5,300,1800,...): its length is the retry count.",
    )
    retry_jitter: float = Field(
        0.2, ge=0, le=1, description="Random spread of each retry delay: ±this fraction of the delay."
    )
    max_retry_after_s: int = Field(
        86_400, ge=1, description="Longest Retry-After honoured, in seconds (longer answers are capped)."
    )
    timeout_s: float = Field(15.0, gt=0, le=120, description="Time a receiver has to answer one attempt.")
    max_inline_bytes: int = Field(
        20_000,
        ge=0,
        description="Largest event body carrying translations inline; above it the event carries result_url.",
    )
    public_api_url: str = Field(
        "http://127.0.0.1:8000",
        pattern=r"^https?://",
        description="Base URL of the public API, used to build result_url.",
    )
    ca_file: Path | None = Field(
        None,
        description="Extra CA certificates (PEM) trusted for https receivers on a private PKI, besides public CAs.",
    )
    concurrency: int = Field(4, ge=1, le=256, description="Deliveries in flight per worker process (threads)")

    @field_validator("retry_schedule_s", mode="before")
    @classmethod
    def _split_schedule(cls, value: Any) -> Any:
        return _split_numbers(value)

    @field_validator("retry_schedule_s")
    @classmethod
    def _positive_delays(cls, value: list[int]) -> list[int]:
        if any(delay < 1 for delay in value):
            raise ValueError("retry delays are whole seconds, at least 1")
        return value

    @field_validator("webhook_secrets")
    @classmethod
    def _secrets_are_valid(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("no webhook secret configured: set client:whsec_<base64> pairs")
        for item in value:
            client, sep, secret = item.partition(":")
            if not sep or not client.strip():
                raise ValueError("each webhook secret entry must look like client:whsec_<base64>")
            try:
                WebhookSecret.parse(secret)
            except InvalidSecret as exc:
                # Never echo the value: it may be a real secret with a typo.
                raise ValueError(f"webhook secret of client {client.strip()!r} is invalid: {exc}") from None
        return value

    def secrets_by_client(self) -> dict[str, list[WebhookSecret]]:
        """Each client's secrets, in the configured order."""
        secrets: dict[str, list[WebhookSecret]] = {}
        for item in self.webhook_secrets:
            client, _, secret = item.partition(":")
            secrets.setdefault(client.strip(), []).append(WebhookSecret.parse(secret))
        return secrets

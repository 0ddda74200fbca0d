"""Standard Webhooks signing: ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` headers.

``webhook-signature`` is ``v1,<base64 HMAC-SHA256 over "{id}.{timestamp}.{body}">``, one entry per secret
of the client, space-separated: during a rotation the client holds old and new secrets and every event
verifies with either. Secrets are written ``whsec_<base64 of 24 to 64 random bytes>``. Every attempt is signed
anew with its own timestamp, since receivers reject timestamps older than a few minutes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

#: Prefix of a serialized symmetric secret.
SECRET_PREFIX = "whsec_"
#: Shortest and longest secret accepted, in bytes (the specification asks for at least 24).
MIN_SECRET_BYTES = 24
MAX_SECRET_BYTES = 64


class InvalidSecret(ValueError):
    """A webhook secret is not ``whsec_<base64>`` of 24 to 64 bytes."""


@dataclass(frozen=True, repr=False)
class WebhookSecret:
    """One signing key (its repr never shows the key)."""

    key: bytes

    @classmethod
    def parse(cls, text: str) -> WebhookSecret:
        text = text.strip()
        if not text.startswith(SECRET_PREFIX):
            raise InvalidSecret("webhook secret must start with whsec_")
        try:
            key = base64.b64decode(text[len(SECRET_PREFIX) :], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidSecret("webhook secret is not valid base64 after whsec_") from exc
        if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
            raise InvalidSecret(
                f"webhook secret holds {len(key)} bytes; use {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} random bytes"
            )
        return cls(key)

    def __repr__(self) -> str:
        return "WebhookSecret(***)"

    def sign(self, webhook_id: str, timestamp: int, body: bytes) -> str:
        """One ``v1,<base64>`` signature entry."""
        signed = f"{webhook_id}.{timestamp}.".encode() + body
        digest = hmac.new(self.key, signed, hashlib.sha256).digest()
        return "v1," + base64.b64encode(digest).decode()


class UnknownClient(KeyError):
    """No webhook secret is configured for this API client."""


class WebhookSigner:
    """Signs events with the secrets of the client that owns the job."""

    def __init__(self, secrets: Mapping[str, Sequence[WebhookSecret]]) -> None:
        self._secrets = {client: tuple(keys) for client, keys in secrets.items() if keys}

    def headers(self, client: str, webhook_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
        """The three Standard Webhooks headers for one attempt (``timestamp`` defaults to now)."""
        keys = self._secrets.get(client)
        if not keys:
            raise UnknownClient(client)
        stamp = int(time.time()) if timestamp is None else timestamp
        return {
            "webhook-id": webhook_id,
            "webhook-timestamp": str(stamp),
            "webhook-signature": " ".join(key.sign(webhook_id, stamp, body) for key in keys),
        }

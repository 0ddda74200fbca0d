"""Standard Webhooks signing, checked with the reference ``standardwebhooks`` package (never our own code)."""

from __future__ import annotations

import base64
import os
import time

import pytest
from pydantic import ValidationError
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from worker.delivery_settings import DeliverySettings
from worker.signing import InvalidSecret, UnknownClient, WebhookSecret, WebhookSigner

BODY = b'{"type":"job.succeeded","timestamp":"2024-05-01T12:00:00Z","data":{"id":"j1"}}'


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


def test_signer_headers_verify_with_standardwebhooks_when_client_has_one_secret() -> None:
    # Given
    secret = new_secret()
    signer = WebhookSigner({"acme": [WebhookSecret.parse(secret)]})

    # When
    headers = signer.headers("acme", "msg_abc123", BODY)

    # Then
    assert Webhook(secret).verify(BODY, headers) == {
        "type": "job.succeeded",
        "timestamp": "2024-05-01T12:00:00Z",
        "data": {"id": "j1"},
    }
    assert headers["webhook-id"] == "msg_abc123"
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 5
    assert headers["webhook-signature"].startswith("v1,")


def test_signer_sends_one_valid_signature_per_secret_when_client_rotates() -> None:
    # Given
    old, new = new_secret(), new_secret()
    signer = WebhookSigner({"acme": [WebhookSecret.parse(old), WebhookSecret.parse(new)]})

    # When
    headers = signer.headers("acme", "msg_rot", BODY)

    # Then
    assert len(headers["webhook-signature"].split(" ")) == 2
    Webhook(old).verify(BODY, headers)
    Webhook(new).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(BODY, headers)


def test_signer_signature_fails_verification_when_body_is_altered() -> None:
    # Given
    secret = new_secret()
    headers = WebhookSigner({"acme": [WebhookSecret.parse(secret)]}).headers("acme", "msg_x", BODY)

    # When / Then
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY.replace(b"j1", b"j2"), headers)


def test_signer_signs_each_attempt_anew_when_the_first_timestamp_is_too_old() -> None:
    # Given: an attempt signed 10 minutes ago (receivers reject timestamps older than 5 minutes)
    secret = new_secret()
    signer = WebhookSigner({"acme": [WebhookSecret.parse(secret)]})
    stale = signer.headers("acme", "msg_retry", BODY, timestamp=int(time.time()) - 600)

    # When
    fresh = signer.headers("acme", "msg_retry", BODY)

    # Then
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY, stale)
    Webhook(secret).verify(BODY, fresh)
    assert fresh["webhook-id"] == stale["webhook-id"]


def test_signer_raises_when_client_has_no_secret() -> None:
    signer = WebhookSigner({"acme": [WebhookSecret.parse(new_secret())]})
    with pytest.raises(UnknownClient):
        signer.headers("beta", "msg_x", BODY)


@pytest.mark.parametrize(
    "text",
    ["changeme", "whsec_changeme", "whsec_", "whsec_not base64!", "whsec_" + base64.b64encode(b"short").decode()],
)
def test_secret_parse_refuses_when_value_is_placeholder_or_malformed(text: str) -> None:
    with pytest.raises(InvalidSecret):
        WebhookSecret.parse(text)


def test_secret_repr_hides_key_when_logged() -> None:
    secret = WebhookSecret.parse(new_secret())
    assert "***" in repr(secret)
    assert base64.b64encode(secret.key).decode() not in repr(secret)


def test_delivery_settings_group_secrets_by_client_when_one_client_rotates() -> None:
    # Given
    a1, a2, b1 = new_secret(), new_secret(), new_secret()

    # When
    settings = DeliverySettings(webhook_secrets=f"acme:{a1},acme:{a2},beta:{b1}")

    # Then
    grouped = settings.secrets_by_client()
    assert [len(grouped["acme"]), len(grouped["beta"])] == [2, 1]
    assert grouped["acme"][1] == WebhookSecret.parse(a2)


@pytest.mark.parametrize("value", ["", "acme:whsec_changeme", "whsec_only", f"acme:{new_secret()},beta:xxx"])
def test_delivery_settings_fail_closed_when_secrets_are_missing_or_invalid(value: str) -> None:
    with pytest.raises(ValidationError):
        DeliverySettings(webhook_secrets=value)


def test_delivery_settings_fail_closed_when_no_secret_is_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BT_DELIVERY_WEBHOOK_SECRETS", raising=False)
    with pytest.raises(ValidationError, match="webhook_secrets"):
        DeliverySettings()


def test_delivery_settings_read_schedule_from_environment_when_comma_separated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given
    monkeypatch.setenv("BT_DELIVERY_WEBHOOK_SECRETS", f"acme:{new_secret()}")
    monkeypatch.setenv("BT_DELIVERY_RETRY_SCHEDULE_S", "5, 300,1800")

    # When
    settings = DeliverySettings()

    # Then
    assert settings.retry_schedule_s == [5, 300, 1800]

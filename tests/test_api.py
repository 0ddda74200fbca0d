"""The HTTP API against a real RabbitMQ vhost and a real store (SQLite and PostgreSQL)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pika
import pytest
from fastapi.testclient import TestClient

from jobs.store import JobStore
from jobs.topology import Topology
from webhook_api.main import create_app
from webhook_api.settings import ApiSettings

KEY_A = "key-of-acme-0123456789"
KEY_B = "key-of-beta-0123456789"
AUTH_A = {"Authorization": f"Bearer {KEY_A}"}
AUTH_B = {"Authorization": f"Bearer {KEY_B}"}


def api_settings(broker_url: str, store_url: str, **overrides: Any) -> ApiSettings:
    values: dict[str, Any] = {
        "broker_url": broker_url,
        "store_url": store_url,
        "queue_prefix": f"t{uuid.uuid4().hex[:8]}",
        "api_keys": [f"acme:{KEY_A}", f"beta:{KEY_B}"],
        "pairs": ["en-fr"],
        "max_segments": 5,
        "max_segment_chars": 50,
        "max_body_bytes": 4096,
        "max_metadata_bytes": 64,
        "callback_allowlist": ["127.0.0.1"],
    }
    values.update(overrides)
    return ApiSettings(**values)


@pytest.fixture
def settings(broker_url: str, store_url: str) -> ApiSettings:
    return api_settings(broker_url, store_url)


@pytest.fixture
def client(settings: ApiSettings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def queued_messages(settings: ApiSettings, pair: str = "en-fr") -> int:
    connection = pika.BlockingConnection(pika.URLParameters(settings.broker_url))
    try:
        channel = connection.channel()
        queue = Topology(prefix=settings.queue_prefix).declare(channel, pair)
        return int(channel.queue_declare(queue, passive=True).method.message_count)
    finally:
        connection.close()


def job_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"source_lang": "en", "target_lang": "fr", "segments": ["one", "two"]}
    body.update(overrides)
    return body


def test_submit_stores_and_publishes_when_broker_confirms(client: TestClient, settings: ApiSettings) -> None:
    # When
    answer = client.post("/v1/jobs", json=job_body(metadata={"project": "X-42"}), headers=AUTH_A)

    # Then
    assert answer.status_code == 202, answer.text
    accepted = answer.json()
    assert accepted["status"] == "queued"
    assert accepted["segments"] == 2
    assert accepted["links"]["self"] == f"/v1/jobs/{accepted['id']}"
    assert queued_messages(settings) == 1
    job = client.get(accepted["links"]["self"], headers=AUTH_A).json()
    assert job["status"] == "queued"
    assert job["progress"] == {"done": 0, "total": 2}
    assert job["metadata"] == {"project": "X-42"}


def test_submit_returns_first_job_when_idempotency_key_is_reused(client: TestClient, settings: ApiSettings) -> None:
    # Given
    headers = {**AUTH_A, "Idempotency-Key": "order-17"}
    first = client.post("/v1/jobs", json=job_body(), headers=headers)

    # When
    again = client.post("/v1/jobs", json=job_body(), headers=headers)
    different = client.post("/v1/jobs", json=job_body(segments=["three"]), headers=headers)
    other_client = client.post("/v1/jobs", json=job_body(), headers={**AUTH_B, "Idempotency-Key": "order-17"})

    # Then
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert different.status_code == 409
    assert different.json()["field"] == "Idempotency-Key"
    assert other_client.status_code == 202 and other_client.json()["id"] != first.json()["id"]
    assert queued_messages(settings) == 2


def test_submit_answers_503_and_stores_nothing_when_broker_is_unreachable(store_url: str) -> None:
    # Given: a broker URL on a port where nothing listens
    settings = api_settings("amqp://guest:guest@127.0.0.1:1/%2F", store_url)
    with TestClient(create_app(settings)) as client:
        # When
        answer = client.post("/v1/jobs", json=job_body(), headers={**AUTH_A, "Idempotency-Key": "k1"})
        ready = client.get("/readyz")

    # Then
    assert answer.status_code == 503
    assert answer.json()["code"] == "broker_unavailable"
    assert ready.status_code == 503
    store = JobStore.from_url(store_url)
    from jobs.store import backlog

    assert backlog(store.engine).get("en-fr") is None


@pytest.mark.parametrize(
    ("body", "status", "field", "words"),
    [
        (job_body(target_lang="de"), 422, "target_lang", "not served"),
        (job_body(segments=[]), 422, "segments", "at least 1"),
        (job_body(segments=["s"] * 6), 422, "segments", "limit is 5"),
        (job_body(segments=["ok", "x" * 51]), 422, "segments.1", "limit is 50"),
        (job_body(metadata={"k": "v" * 100}), 422, "metadata", "limit is 64"),
        (job_body(options={"beam_size": 99}), 422, "options.beam_size", "less than or equal to 8"),
        (job_body(source_lang="English"), 422, "source_lang", "pattern"),
        (job_body(colour="red"), 422, "colour", "Extra inputs"),
        (job_body(segments=["x" * 40] * 5, metadata={"pad": "y" * 4000}), 413, "body", "4096 bytes"),
        (job_body(callback_url="ftp://127.0.0.1/hook"), 422, "callback_url", "scheme"),
    ],
)
def test_submit_names_field_and_limit_when_input_is_bad(
    client: TestClient, settings: ApiSettings, body: dict[str, Any], status: int, field: str, words: str
) -> None:
    # When
    answer = client.post("/v1/jobs", json=body, headers=AUTH_A)

    # Then
    assert answer.status_code == status, answer.text
    error = answer.json()
    assert error["field"] == field
    assert words in error["message"]
    assert queued_messages(settings) == 0


def test_jobs_are_invisible_to_other_clients_when_keys_differ(client: TestClient) -> None:
    # Given
    job_id = client.post("/v1/jobs", json=job_body(), headers=AUTH_A).json()["id"]

    # When / Then
    assert client.get(f"/v1/jobs/{job_id}", headers=AUTH_B).status_code == 404
    assert client.get(f"/v1/jobs/{job_id}/result", headers=AUTH_B).status_code == 404
    assert client.delete(f"/v1/jobs/{job_id}", headers=AUTH_B).status_code == 404
    assert client.get(f"/v1/jobs/{job_id}", headers=AUTH_A).status_code == 200
    assert client.get(f"/v1/jobs/{job_id}").status_code == 401
    assert client.get(f"/v1/jobs/{job_id}", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_cancel_marks_queued_job_cancelled_and_refuses_twice(client: TestClient) -> None:
    # Given
    job_id = client.post("/v1/jobs", json=job_body(), headers=AUTH_A).json()["id"]

    # When
    cancelled = client.delete(f"/v1/jobs/{job_id}", headers=AUTH_A)
    again = client.delete(f"/v1/jobs/{job_id}", headers=AUTH_A)
    result = client.get(f"/v1/jobs/{job_id}/result", headers=AUTH_A)

    # Then
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["finished_at"] is not None
    assert again.status_code == 409
    assert result.status_code == 409


def test_operational_endpoints_report_pairs_readiness_and_backlog(client: TestClient) -> None:
    # Given
    client.post("/v1/jobs", json=job_body(segments=["a", "b", "c"]), headers=AUTH_A)

    # When
    models = client.get("/v1/models", headers=AUTH_A)
    ready = client.get("/readyz")
    backlog = client.get("/backlog")

    # Then
    assert models.status_code == 200
    assert [m["pair"] for m in models.json()] == ["en-fr"]
    assert ready.status_code == 200, ready.text
    assert backlog.json()["pairs"]["en-fr"] == {"queued_jobs": 1, "queued_segments": 3}
    assert client.get("/healthz").status_code == 200
    assert "python_info" in client.get("/metrics").text
    assert client.get("/openapi.json").json()["paths"]["/v1/jobs"]["post"]


def test_results_are_purged_when_retention_period_has_passed(client: TestClient, settings: ApiSettings) -> None:
    # Given: one job finished 40 days ago and one finished now
    from datetime import timedelta

    from sqlalchemy import update

    from jobs.retention import purge_finished
    from jobs.store import jobs_table, utcnow

    old = client.post("/v1/jobs", json=job_body(), headers=AUTH_A).json()["id"]
    recent = client.post("/v1/jobs", json=job_body(), headers=AUTH_A).json()["id"]
    store = JobStore.from_url(settings.store_url)
    with store.engine.begin() as conn:
        for job_id, age in ((old, timedelta(days=40)), (recent, timedelta(0))):
            conn.execute(
                update(jobs_table)
                .where(jobs_table.c.id == job_id)
                .values(status="succeeded", translations=["un", "deux"], finished_at=utcnow() - age)
            )

    # When: the purge the API runs hourly, with the default retention of 30 days
    purged = purge_finished(store.engine, utcnow() - timedelta(days=settings.result_retention_days))

    # Then
    assert purged == 1
    assert client.get(f"/v1/jobs/{old}/result", headers=AUTH_A).status_code == 404
    assert client.get(f"/v1/jobs/{recent}/result", headers=AUTH_A).json()["translations"] == ["un", "deux"]

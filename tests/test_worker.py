"""The translation worker as a real process: RabbitMQ → pack → CTranslate2 → store → ack."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pika
import pytest
from fastapi.testclient import TestClient

from jobs.topology import Topology
from tests.faulty_worker import POISON
from tests.plugins.workers import WorkerProcess
from webhook_api.main import create_app
from webhook_api.settings import ApiSettings
from worker.translator import Translator

KEY = "worker-test-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
SENTENCES = ["twenty-one", "three hundred and five", "forty-two apples", "one thousand and nine", "seven"]


@pytest.fixture
def prefix() -> str:
    return f"w{uuid.uuid4().hex[:8]}"


@pytest.fixture
def api(broker_url: str, sqlite_url: str, prefix: str) -> Iterator[TestClient]:
    settings = ApiSettings(
        broker_url=broker_url,
        store_url=sqlite_url,
        queue_prefix=prefix,
        api_keys=[f"acme:{KEY}"],
        pairs=["en-fr"],
    )
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture
def worker_env(broker_url: str, sqlite_url: str, prefix: str, tiny_model_dir: Path) -> dict[str, str]:
    return {
        "BT_BROKER_URL": broker_url,
        "BT_STORE_URL": sqlite_url,
        "BT_QUEUE_PREFIX": prefix,
        "BT_WORKER_PAIR": "en-fr",
        "BT_WORKER_MODEL_DIR": str(tiny_model_dir),
        "BT_WORKER_MAX_WAIT_MS": "200",
    }


def submit(api: TestClient, segments: list[str], **extra: Any) -> str:
    answer = api.post(
        "/v1/jobs",
        json={"source_lang": "en", "target_lang": "fr", "segments": segments, **extra},
        headers=AUTH,
    )
    assert answer.status_code == 202, answer.text
    return str(answer.json()["id"])


def wait_terminal(api: TestClient, job_ids: list[str], timeout_s: float = 90.0) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    jobs: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        jobs = {job_id: api.get(f"/v1/jobs/{job_id}", headers=AUTH).json() for job_id in job_ids}
        if all(job["status"] in ("succeeded", "failed", "cancelled") for job in jobs.values()):
            return jobs
        time.sleep(0.2)
    raise AssertionError(f"jobs not finished in {timeout_s}s: {[j['status'] for j in jobs.values()]}")


def queue_depth(broker_url: str, queue: str) -> int:
    connection = pika.BlockingConnection(pika.URLParameters(broker_url))
    try:
        return int(connection.channel().queue_declare(queue, passive=True).method.message_count)
    finally:
        connection.close()


def settled_depth(broker_url: str, queue: str, expected: int, timeout_s: float = 10.0) -> int:
    """The queue's depth once it equals ``expected`` (or the last seen after ``timeout_s``): dead-lettering and
    acks reach the broker asynchronously."""
    deadline = time.monotonic() + timeout_s
    depth = queue_depth(broker_url, queue)
    while depth != expected and time.monotonic() < deadline:
        time.sleep(0.1)
        depth = queue_depth(broker_url, queue)
    return depth


def histogram_counts(metrics: str, name: str) -> dict[str, float]:
    """``{le: cumulative count}`` of a Prometheus histogram in a /metrics page."""
    pattern = re.compile(rf'^{name}_bucket{{le="([^"]+)",pair="en-fr"}} ([0-9.e+]+)$', re.M)
    return {le: float(value) for le, value in pattern.findall(metrics)}


def test_worker_translates_job_exactly_as_translator_does_when_submitted_over_http(
    api: TestClient,
    worker_env: dict[str, str],
    tiny_model_dir: Path,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    # Given
    worker = start_worker(worker_env)

    # When
    job_id = submit(api, SENTENCES, metadata={"project": "X-42"})
    job = wait_terminal(api, [job_id])[job_id]
    result = api.get(f"/v1/jobs/{job_id}/result", headers=AUTH).json()

    # Then
    direct = Translator(tiny_model_dir)
    assert job["status"] == "succeeded"
    assert job["progress"] == {"done": 5, "total": 5}
    assert result["translations"] == direct.translate(SENTENCES)
    assert result["model"] == {"name": direct.model.name, "version": direct.model.version}
    assert job["started_at"] and job["finished_at"]
    models = api.get("/v1/models", headers=AUTH).json()
    assert models[0]["model"] == result["model"]
    assert worker.terminate() == 0


def test_worker_packs_segments_of_several_jobs_into_one_step_when_they_queue_together(
    api: TestClient, worker_env: dict[str, str], start_worker: Callable[..., WorkerProcess]
) -> None:
    # Given: eight small jobs queued before any worker runs
    job_ids = [submit(api, [sentence]) for sentence in [*SENTENCES, "eight", "nine", "ten"]]

    # When
    worker = start_worker({**worker_env, "BT_WORKER_MAX_BATCH_TOKENS": "4096"})
    jobs = wait_terminal(api, job_ids)

    # Then
    assert {job["status"] for job in jobs.values()} == {"succeeded"}
    jobs_per_step = histogram_counts(worker.metrics(), "bt_worker_step_jobs")
    steps = jobs_per_step["+Inf"]
    assert steps < len(job_ids), f"{steps} steps for {len(job_ids)} jobs: no packing"
    assert jobs_per_step["1.0"] < steps, "no step carried more than one job"


def test_worker_finishes_or_returns_everything_when_sigterm_arrives_mid_stream(
    api: TestClient,
    worker_env: dict[str, str],
    start_worker: Callable[..., WorkerProcess],
) -> None:
    # Given: a worker busy with a stream of jobs, with a small batch budget so it takes many steps
    env = {**worker_env, "BT_WORKER_MAX_BATCH_TOKENS": "64", "BT_WORKER_MAX_WAIT_MS": "0"}
    job_ids = [submit(api, SENTENCES * 4) for _ in range(30)]
    first = start_worker(env)
    deadline = time.monotonic() + 60
    while not any(api.get(f"/v1/jobs/{j}", headers=AUTH).json()["status"] == "succeeded" for j in job_ids):
        assert time.monotonic() < deadline, first.log()
        time.sleep(0.05)

    # When
    exit_code = first.terminate(timeout_s=60)
    start_worker(env)
    jobs = wait_terminal(api, job_ids)

    # Then
    assert exit_code == 0, first.log()
    assert {job["status"] for job in jobs.values()} == {"succeeded"}
    assert "stopping: no new messages" in first.log()


def test_worker_dead_letters_poison_job_while_batch_mates_succeed(
    api: TestClient,
    worker_env: dict[str, str],
    broker_url: str,
    prefix: str,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    # Given: a poison job queued between good ones, so they share steps
    good_before = submit(api, ["twelve", "thirteen"])
    poison = submit(api, ["fourteen", POISON])
    good_after = submit(api, ["fifteen"])

    # When
    start_worker(worker_env, module="tests.faulty_worker")
    jobs = wait_terminal(api, [good_before, poison, good_after])

    # Then
    assert jobs[good_before]["status"] == jobs[good_after]["status"] == "succeeded"
    assert jobs[poison]["status"] == "failed"
    assert jobs[poison]["error"]["code"] == "translation_error"
    assert "injected fault" in jobs[poison]["error"]["message"]
    dead = Topology(prefix=prefix).dead_letter_queue("en-fr")
    assert settled_depth(broker_url, dead, 1) == 1
    assert api.get(f"/v1/jobs/{poison}/result", headers=AUTH).status_code == 409


def test_worker_skips_job_when_cancelled_while_queued(
    api: TestClient,
    worker_env: dict[str, str],
    broker_url: str,
    prefix: str,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    # Given
    cancelled = submit(api, ["sixteen"])
    kept = submit(api, ["seventeen"])
    assert api.delete(f"/v1/jobs/{cancelled}", headers=AUTH).status_code == 200

    # When
    start_worker(worker_env)
    jobs = wait_terminal(api, [cancelled, kept])

    # Then
    assert jobs[cancelled]["status"] == "cancelled"
    assert jobs[cancelled]["model"] is None
    assert jobs[kept]["status"] == "succeeded"
    assert settled_depth(broker_url, f"{prefix}.en-fr", 0) == 0


def test_dead_letters_cli_replays_failed_job_when_operator_asks(
    api: TestClient,
    worker_env: dict[str, str],
    broker_url: str,
    prefix: str,
    sqlite_url: str,
    start_worker: Callable[..., WorkerProcess],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given: a job that failed for good on a faulty model and sits in the dead-letter queue
    job_id = submit(api, ["eighteen", POISON])
    faulty = start_worker(worker_env, module="tests.faulty_worker")
    assert wait_terminal(api, [job_id])[job_id]["status"] == "failed"
    assert faulty.terminate() == 0
    for name, value in {"BT_BROKER_URL": broker_url, "BT_STORE_URL": sqlite_url, "BT_QUEUE_PREFIX": prefix}.items():
        monkeypatch.setenv(name, value)
    from worker import dead_letters

    # When: the operator lists, then replays it to a healthy worker
    assert dead_letters.main(["list", "--pair", "en-fr"]) == 0
    listed = capsys.readouterr().out
    assert dead_letters.main(["replay", "--pair", "en-fr", "--job", job_id]) == 0
    start_worker(worker_env)
    job = wait_terminal(api, [job_id])[job_id]

    # Then
    assert f'"job_id": "{job_id}"' in listed and '"reason": "rejected"' in listed
    assert job["status"] == "succeeded" and job["error"] is None
    assert queue_depth(broker_url, Topology(prefix=prefix).dead_letter_queue("en-fr")) == 0


def test_worker_fails_job_when_broker_dead_letters_it_after_repeated_crashes(
    api: TestClient,
    worker_env: dict[str, str],
    broker_url: str,
    prefix: str,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    # Given: a job whose every delivery was lost (as when workers die mid-batch) until the broker dead-lettered it
    job_id = submit(api, ["nineteen"])
    topology = Topology(prefix=prefix)
    connection = pika.BlockingConnection(pika.URLParameters(broker_url))
    channel = connection.channel()
    for _ in range(topology.delivery_limit + 1):
        method, _, _ = channel.basic_get(topology.queue("en-fr"))
        assert method is not None
        channel.basic_nack(method.delivery_tag, requeue=True)
    connection.close()
    dead = topology.dead_letter_queue("en-fr")
    assert settled_depth(broker_url, dead, 1) == 1
    assert api.get(f"/v1/jobs/{job_id}", headers=AUTH).json()["status"] == "queued"

    # When: a worker runs its dead-letter sweep
    start_worker({**worker_env, "BT_WORKER_DEAD_LETTER_SWEEP_S": "0.5"})
    job = wait_terminal(api, [job_id], timeout_s=30)[job_id]

    # Then: the job is failed with the broker's reason, and the message stays parked for replay
    assert job["status"] == "failed"
    assert job["error"]["code"] == "dead_lettered"
    assert "delivery_limit" in job["error"]["message"]
    assert queue_depth(broker_url, dead) == 1

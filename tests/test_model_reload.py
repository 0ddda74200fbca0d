"""Workers follow the registry's ``champion`` alias and swap models without a restart or a failed job."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from mlflow import MlflowClient

from tests.plugins.workers import WorkerProcess
from webhook_api.main import create_app
from webhook_api.settings import ApiSettings

KEY = "reload-test-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}


def register_version(client: MlflowClient, name: str, model_dir: Path, alias: str | None = "champion") -> str:
    """Register ``model_dir`` as a new version the way ``retrain`` does (run artifact ``model/``)."""
    experiment = client.get_experiment_by_name("reload-test") or None
    experiment_id = experiment.experiment_id if experiment else client.create_experiment("reload-test")
    run = client.create_run(experiment_id)
    client.log_artifacts(run.info.run_id, str(model_dir), artifact_path="model")
    client.set_terminated(run.info.run_id)
    if not client.search_registered_models(filter_string=f"name = '{name}'"):
        client.create_registered_model(name)
    version = client.create_model_version(name, source=f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
    if alias:
        client.set_registered_model_alias(name, alias, version.version)
    return str(version.version)


@pytest.fixture
def api(broker_url: str, sqlite_url: str) -> Iterator[tuple[TestClient, str]]:
    prefix = f"r{uuid.uuid4().hex[:8]}"
    settings = ApiSettings(
        broker_url=broker_url, store_url=sqlite_url, queue_prefix=prefix, api_keys=[f"acme:{KEY}"], pairs=["en-fr"]
    )
    with TestClient(create_app(settings)) as client:
        yield client, prefix


def test_worker_switches_to_new_champion_without_failing_jobs_when_alias_moves(
    api: tuple[TestClient, str],
    broker_url: str,
    sqlite_url: str,
    mlflow_uri: str,
    tiny_model_dir: Path,
    tmp_path: Path,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    # Given: v1 is champion and a worker serves it from the registry
    client, prefix = api
    registry = MlflowClient(tracking_uri=mlflow_uri, registry_uri=mlflow_uri)
    name = f"batch-translate-en-fr-{uuid.uuid4().hex[:6]}"
    v1 = register_version(registry, name, tiny_model_dir)
    worker = start_worker(
        {
            "BT_BROKER_URL": broker_url,
            "BT_STORE_URL": sqlite_url,
            "BT_QUEUE_PREFIX": prefix,
            "BT_WORKER_PAIR": "en-fr",
            "BT_WORKER_REGISTRY_URI": mlflow_uri,
            "BT_WORKER_MODEL_NAME": name,
            "BT_WORKER_MODEL_POLL_INTERVAL_S": "0.5",
            "BT_WORKER_MODEL_CACHE_DIR": str(tmp_path / "cache"),
            "BT_WORKER_MAX_WAIT_MS": "10",
        }
    )
    job_ids: list[str] = []
    streaming = threading.Event()
    streaming.set()

    def stream() -> None:
        while streaming.is_set():
            answer = client.post(
                "/v1/jobs",
                json={"source_lang": "en", "target_lang": "fr", "segments": ["twenty-one", "six", "forty"]},
                headers=AUTH,
            )
            assert answer.status_code == 202
            job_ids.append(answer.json()["id"])
            time.sleep(0.05)

    def status(job_id: str) -> dict[str, Any]:
        return dict(client.get(f"/v1/jobs/{job_id}", headers=AUTH).json())

    submitter = threading.Thread(target=stream)
    submitter.start()
    try:
        deadline = time.monotonic() + 60
        while not any(status(j)["status"] == "succeeded" for j in list(job_ids)[:5]):
            assert time.monotonic() < deadline, worker.log()
            time.sleep(0.1)

        # When: a new version becomes champion while jobs keep coming
        v2 = register_version(registry, name, tiny_model_dir)
        deadline = time.monotonic() + 60
        while True:
            recent = [status(j) for j in list(job_ids)[-3:]]
            if any(job["model"] and job["model"]["version"] == v2 for job in recent):
                break
            assert time.monotonic() < deadline, worker.log()
            time.sleep(0.2)
        time.sleep(1.0)
    finally:
        streaming.clear()
        submitter.join()

    # Then: every job succeeded, each names the version that produced it, v1 before the switch and v2 after
    deadline = time.monotonic() + 60
    jobs = [status(j) for j in job_ids]
    while any(job["status"] not in ("succeeded", "failed") for job in jobs):
        assert time.monotonic() < deadline
        time.sleep(0.2)
        jobs = [status(j) for j in job_ids]
    assert {job["status"] for job in jobs} == {"succeeded"}
    by_finish = sorted(jobs, key=lambda job: job["finished_at"])
    versions = [job["model"]["version"] for job in by_finish]
    assert versions[0] == v1 and versions[-1] == v2
    first_v2 = versions.index(v2)
    assert set(versions[first_v2:]) == {v2}, "a job finished on the old model after the switch"
    served = client.get("/v1/models", headers=AUTH).json()[0]["model"]
    assert served == {"name": name, "version": v2}
    assert "switched to model" in worker.log()
    assert worker.terminate() == 0

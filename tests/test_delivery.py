"""The delivery worker as a real process, against real RabbitMQ, PostgreSQL and a real HTTP receiver.

Signatures are verified with the reference ``standardwebhooks`` package, never with our signing code.
"""

from __future__ import annotations

import base64
import itertools
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pika
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fastapi.testclient import TestClient
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from jobs.deliveries import DeliveryLog, DeliveryStatus, DeliveryStore, delivery_summary
from jobs.events import EventAnnouncer
from jobs.schemas import JobCreate, JobStatus, ModelRef
from jobs.settings import SharedSettings
from jobs.store import Completion, JobRecord, JobStore
from tests.plugins.receiver import Answer, Receiver
from webhook_api.main import create_app
from webhook_api.settings import ApiSettings
from worker.delivery import Deliverer, parse_retry_after
from worker.delivery_settings import DeliverySettings

REPO = Path(__file__).resolve().parents[1]
#: Seconds a worker may take to start (imports, broker connection, delayed-delivery topology).
START_TIMEOUT_S = 60
#: Retry schedule of the module's workers: short, so retries are seen within seconds.
FAST_SCHEDULE = "1,1,2,2"
#: Largest body with inline translations in the module's workers.
MAX_INLINE_BYTES = 2_000
PUBLIC_API_URL = "https://api.example.test"
API_KEY = "key-of-acme-for-delivery-tests-01"


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


SECRET_ACME = new_secret()
SECRET_BETA_OLD = new_secret()
SECRET_BETA_NEW = new_secret()
SECRETS = f"acme:{SECRET_ACME},beta:{SECRET_BETA_OLD},beta:{SECRET_BETA_NEW}"


@dataclass
class DeliveryWorker:
    """A ``python -m worker.delivery`` process and the announcer that feeds its queue."""

    process: subprocess.Popen[bytes]
    log_path: Path
    queue: str
    announcer: EventAnnouncer

    def announce(self, *job_ids: str) -> None:
        self.announcer.announce(list(job_ids))

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while text not in self.log_text():
            if self.process.poll() is not None:
                raise AssertionError(f"delivery worker exited ({self.process.returncode}):\n{self.log_text()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not logged within {timeout_s} s:\n{self.log_text()[-3000:]}")
            time.sleep(0.1)

    def stop(self) -> None:
        self.announcer.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_worker(broker_url: str, store_url: str, log_dir: Path, **env: str) -> DeliveryWorker:
    """Start a delivery worker on its own queue and wait until it consumes."""
    queue = f"deliveries-{uuid.uuid4().hex[:8]}"
    variables = {
        **os.environ,
        "BT_BROKER_URL": broker_url,
        "BT_STORE_URL": store_url,
        "BT_DELIVERY_QUEUE": queue,
        "BT_CALLBACK_ALLOWLIST": "127.0.0.1",
        "BT_DELIVERY_WEBHOOK_SECRETS": SECRETS,
        "BT_DELIVERY_RETRY_SCHEDULE_S": FAST_SCHEDULE,
        "BT_DELIVERY_RETRY_JITTER": "0",
        "BT_DELIVERY_TIMEOUT_S": "3",
        "BT_DELIVERY_MAX_INLINE_BYTES": str(MAX_INLINE_BYTES),
        "BT_DELIVERY_PUBLIC_API_URL": PUBLIC_API_URL,
        "BT_DELIVERY_CONCURRENCY": "2",
        "BT_LOG_FORMAT": "text",
        **env,
    }
    log_path = log_dir / f"{queue}.log"
    with log_path.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "worker.delivery"], cwd=REPO, env=variables, stdout=out, stderr=subprocess.STDOUT
        )
    announcer = EventAnnouncer.from_settings(SharedSettings(broker_url=broker_url, delivery_queue=queue))
    worker = DeliveryWorker(process, log_path, queue, announcer)
    try:
        worker.wait_for_log(" ready.", START_TIMEOUT_S)
    except BaseException:
        worker.stop()
        raise
    return worker


@pytest.fixture(scope="module")
def store(postgres_url: str) -> JobStore:
    job_store = JobStore.from_url(postgres_url)
    job_store.create_schema()
    return job_store


@pytest.fixture(scope="module")
def deliveries(store: JobStore) -> DeliveryStore:
    return DeliveryStore(store.engine)


@pytest.fixture(scope="module")
def worker(
    broker_url: str, postgres_url: str, store: JobStore, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DeliveryWorker]:
    """A delivery worker that may call 127.0.0.1 (allow-listed), with a schedule of 1, 1, 2, 2 s."""
    running = start_worker(broker_url, postgres_url, tmp_path_factory.mktemp("delivery"))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def strict_worker(
    broker_url: str, postgres_url: str, store: JobStore, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DeliveryWorker]:
    """A delivery worker with an empty allow-list: the SSRF policy as production runs it."""
    running = start_worker(broker_url, postgres_url, tmp_path_factory.mktemp("strict"), BT_CALLBACK_ALLOWLIST="")
    yield running
    running.stop()


def finished_job(
    store: JobStore,
    callback_url: str,
    *,
    client: str = "acme",
    status: JobStatus = JobStatus.SUCCEEDED,
    segments: list[str] | None = None,
    metadata: dict[str, Any] | None = None,
) -> JobRecord:
    """A job stored as the API stores it (the callback URL is written as given), then finished."""
    sources = segments or ["Hello world.", "Good night."]
    job = JobCreate(
        source_lang="en",
        target_lang="fr",
        segments=sources,
        callback_url=callback_url,
        metadata=metadata if metadata is not None else {"project": "X-42"},
    )
    record, _ = store.create_job(client, job, None, lambda _record: None)
    model = ModelRef(name="opus-mt-en-fr", version="3")
    if status is JobStatus.SUCCEEDED:
        store.complete_many([Completion(record.id, [f"fr:{s}" for s in sources], model)])
    elif status is JobStatus.FAILED:
        store.fail(record.id, "poison_input", "the model failed on segment 0", model)
    else:
        store.cancel(record.id, client)
    return store.get(record.id)


def wait_for_delivery(
    deliveries: DeliveryStore, job_id: str, done: Callable[[DeliveryLog], bool], timeout_s: float
) -> DeliveryLog:
    deadline = time.monotonic() + timeout_s
    while True:
        log = deliveries.log(job_id)
        if log.deliveries and done(log):
            return log
        if time.monotonic() > deadline:
            raise AssertionError(f"delivery of job {job_id} not as expected after {timeout_s} s: {log}")
        time.sleep(0.1)


def settled(log: DeliveryLog) -> bool:
    return log.deliveries[0].status is not DeliveryStatus.PENDING


# -- the event and its signature -----------------------------------------------------------------------------
def test_delivery_posts_event_that_standardwebhooks_verifies_when_job_succeeds(
    worker: DeliveryWorker, receiver: Receiver, store: JobStore, deliveries: DeliveryStore
) -> None:
    # Given
    job = finished_job(store, receiver.url, metadata={"project": "X-42", "batch": 7})

    # When
    worker.announce(job.id)

    # Then
    [request] = receiver.wait_for(1, timeout_s=20)
    event = Webhook(SECRET_ACME).verify(request.body, request.headers)
    assert request.path == "/hooks"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["webhook-id"].startswith("msg_")
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 30
    assert event["type"] == "job.succeeded"
    data = event["data"]
    assert data["id"] == job.id
    assert data["status"] == "succeeded"
    assert data["metadata"] == {"project": "X-42", "batch": 7}
    assert data["model"] == {"name": "opus-mt-en-fr", "version": "3"}
    assert data["translations"] == ["fr:Hello world.", "fr:Good night."]
    assert "result_url" not in data
    assert set(data["timing"]) == {"created_at", "started_at", "finished_at", "wait_ms", "run_ms"}
    assert data["timing"]["finished_at"] is not None
    log = wait_for_delivery(deliveries, job.id, settled, timeout_s=10)
    [delivery] = log.deliveries
    assert delivery.webhook_id == request.headers["webhook-id"]
    assert delivery.status is DeliveryStatus.DELIVERED
    [attempt] = delivery.attempt_log
    assert (attempt.status_code, attempt.error, attempt.outcome.value) == (200, None, "delivered")
    assert attempt.latency_ms is not None and attempt.latency_ms >= 0


@pytest.mark.parametrize(
    ("status", "event_type"), [(JobStatus.FAILED, "job.failed"), (JobStatus.CANCELLED, "job.cancelled")]
)
def test_delivery_announces_terminal_state_when_job_fails_or_is_cancelled(
    worker: DeliveryWorker, receiver: Receiver, store: JobStore, status: JobStatus, event_type: str
) -> None:
    # Given
    job = finished_job(store, receiver.url, status=status)

    # When
    worker.announce(job.id)

    # Then
    [request] = receiver.wait_for(1, timeout_s=20)
    event = Webhook(SECRET_ACME).verify(request.body, request.headers)
    assert event["type"] == event_type
    assert event["data"]["status"] == status.value
    assert event["data"]["metadata"] == {"project": "X-42"}
    assert "translations" not in event["data"] and "result_url" not in event["data"]
    if status is JobStatus.FAILED:
        assert event["data"]["error"] == {"code": "poison_input", "message": "the model failed on segment 0"}


def test_delivery_signs_with_every_secret_when_client_rotates(
    worker: DeliveryWorker, receiver: Receiver, store: JobStore
) -> None:
    # Given: client beta holds an old and a new secret
    job = finished_job(store, receiver.url, client="beta")

    # When
    worker.announce(job.id)

    # Then
    [request] = receiver.wait_for(1, timeout_s=20)
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    assert Webhook(SECRET_BETA_OLD).verify(request.body, request.headers)["data"]["id"] == job.id
    assert Webhook(SECRET_BETA_NEW).verify(request.body, request.headers)["data"]["id"] == job.id
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET_ACME).verify(request.body, request.headers)


def test_delivery_sends_result_url_instead_of_translations_when_body_exceeds_max_inline_bytes(
    worker: DeliveryWorker, receiver: Receiver, store: JobStore
) -> None:
    # Given: one job just under the inline limit, one above it
    small = finished_job(store, receiver.url, segments=["x" * 200, "y" * 200])
    large = finished_job(store, receiver.url, segments=["x" * 900, "y" * 900])

    # When
    worker.announce(small.id, large.id)

    # Then
    bodies = {
        event["data"]["id"]: event
        for event in (Webhook(SECRET_ACME).verify(r.body, r.headers) for r in receiver.wait_for(2, timeout_s=20))
    }
    small_request = next(r for r in receiver.requests if small.id.encode() in r.body)
    assert len(small_request.body) <= MAX_INLINE_BYTES
    assert bodies[small.id]["data"]["translations"] == ["fr:" + "x" * 200, "fr:" + "y" * 200]
    assert "result_url" not in bodies[small.id]["data"]
    large_request = next(r for r in receiver.requests if large.id.encode() in r.body)
    assert len(large_request.body) <= MAX_INLINE_BYTES
    assert bodies[large.id]["data"]["result_url"] == f"{PUBLIC_API_URL}/v1/jobs/{large.id}/result"
    assert "translations" not in bodies[large.id]["data"]


# -- retries ------------------------------------------------------------------------------------------------
def test_delivery_retries_with_one_webhook_id_when_receiver_answers_500_500_200(
    worker: DeliveryWorker, receiver: Receiver, store: JobStore, deliveries: DeliveryStore
) -> None:
    # Given
    receiver.script(500, 500, 200)
    job = finished_job(store, receiver.url)

    # When
    worker.announce(job.id)

    # Then: three attempts, one webhook-id, each signed anew and valid
    requests = receiver.wait_for(3, timeout_s=30)
    assert [r.status for r in requests] == [500, 500, 200]
    assert len({r.headers["webhook-id"] for r in requests}) == 1
    for request in requests:
        Webhook(SECRET_ACME).verify(request.body, request.headers)
    gaps = [later.received_at - earlier.received_at for earlier, later in itertools.pairwise(requests)]
    assert all(gap >= 0.9 for gap in gaps), gaps  # the schedule's 1 s, waited in the broker
    log = wait_for_delivery(deliveries, job.id, settled, timeout_s=10)
    delivery = log.deliveries[0]
    assert delivery.status is DeliveryStatus.DELIVERED
    assert delivery.attempts == 3
    assert [(a.attempt, a.status_code, a.outcome.value) for a in delivery.attempt_log] == [
        (1, 500, "retry"),
        (2, 500, "retry"),
        (3, 200, "delivered"),
    ]
    summary = delivery_summary(store.engine, job.id)
    assert summary is not None and summary.model_dump() == {"status": "delivered", "attempts": 3}


def test_delivery_stops_when_receiver_answers_410(
    worker: DeliveryWorker, receiver: Receiver, store: JobStore, deliveries: DeliveryStore
) -> None:
    # Given
    receiver.script(410)
    job = finished_job(store, receiver.url)

    # When
    worker.announce(job.id)

    # Then: one attempt, the delivery is "gone", and nothing comes after the next slot of the schedule (1 s)
    receiver.wait_for(1, timeout_s=20)
    log = wait_for_delivery(deliveries, job.id, settled, timeout_s=10)
    assert log.deliveries[0].status is DeliveryStatus.GONE
    assert log.deliveries[0].next_attempt_at is None
    time.sleep(3)
    assert len(receiver.requests) == 1
    assert len(deliveries.log(job.id).deliveries[0].attempt_log) == 1


def test_delivery_reaches_receiver_when_it_comes_up_after_being_down(
    worker: DeliveryWorker,
    receiver_factory: Callable[[], Receiver],
    store: JobStore,
    deliveries: DeliveryStore,
) -> None:
    # Given: nothing listens on the callback port yet
    down = receiver_factory()
    job = finished_job(store, down.url)
    worker.announce(job.id)
    wait_for_delivery(deliveries, job.id, lambda log: log.deliveries[0].attempts >= 1, timeout_s=20)

    # When
    down.start()

    # Then
    [request] = down.wait_for(1, timeout_s=20)
    Webhook(SECRET_ACME).verify(request.body, request.headers)
    log = wait_for_delivery(deliveries, job.id, settled, timeout_s=10)
    delivery = log.deliveries[0]
    assert delivery.status is DeliveryStatus.DELIVERED
    assert delivery.webhook_id == request.headers["webhook-id"]
    first, last = delivery.attempt_log[0], delivery.attempt_log[-1]
    assert first.status_code is None and "ConnectError" in (first.error or "")
    assert last.status_code == 200


def test_delivery_fails_after_last_attempt_when_receiver_keeps_answering_503(
    worker: DeliveryWorker, receiver: Receiver, store: JobStore, deliveries: DeliveryStore
) -> None:
    # Given: the schedule allows 1 + 4 attempts
    receiver.script(*[503] * 10)
    job = finished_job(store, receiver.url)

    # When
    worker.announce(job.id)

    # Then
    log = wait_for_delivery(deliveries, job.id, settled, timeout_s=40)
    delivery = log.deliveries[0]
    assert delivery.status is DeliveryStatus.FAILED
    assert [a.status_code for a in delivery.attempt_log] == [503] * 5
    assert [a.outcome.value for a in delivery.attempt_log] == ["retry"] * 4 + ["failed"]
    assert len(receiver.requests) == 5
    assert store.get(job.id).translations == ["fr:Hello world.", "fr:Good night."]  # still fetchable


def test_delivery_waits_for_retry_after_when_receiver_answers_429(
    worker: DeliveryWorker, receiver: Receiver, store: JobStore
) -> None:
    # Given: the schedule says 1 s, the receiver asks for 3 s
    receiver.script(Answer(429, {"Retry-After": "3"}), 200)
    job = finished_job(store, receiver.url)

    # When
    worker.announce(job.id)

    # Then
    first, second = receiver.wait_for(2, timeout_s=30)
    assert second.received_at - first.received_at >= 2.9
    assert second.headers["webhook-id"] == first.headers["webhook-id"]


def test_delivery_ignores_duplicate_announcement_when_event_was_delivered(
    worker: DeliveryWorker, receiver: Receiver, store: JobStore
) -> None:
    # Given: a delivered event
    job = finished_job(store, receiver.url)
    worker.announce(job.id)
    [request] = receiver.wait_for(1, timeout_s=20)

    # When: the translation worker announces it again (e.g. its ack was lost and the job redelivered)
    worker.announce(job.id)

    # Then: the copy is dropped, or (if it came while the first attempt was in flight) put off until it can be
    webhook_id = request.headers["webhook-id"]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        text = worker.log_text()
        if f"job {job.id}: delivery {webhook_id} already under way" in text:
            break
        if f"job {job.id}: attempt 1 of round 0 is being made elsewhere" in text:
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"second announcement of job {job.id} not handled:\n{worker.log_text()[-2000:]}")
    assert len(receiver.requests) == 1


def test_redeliver_sends_event_again_with_same_webhook_id_when_client_asks(
    worker: DeliveryWorker,
    receiver: Receiver,
    store: JobStore,
    deliveries: DeliveryStore,
    broker_url: str,
    postgres_url: str,
) -> None:
    # Given: an event the receiver acknowledged, and the API wired to the worker's queue
    job = finished_job(store, receiver.url)
    worker.announce(job.id)
    [first] = receiver.wait_for(1, timeout_s=20)
    wait_for_delivery(deliveries, job.id, settled, timeout_s=10)
    settings = ApiSettings(
        broker_url=broker_url,
        store_url=postgres_url,
        api_keys=[f"acme:{API_KEY}"],
        delivery_queue=worker.queue,
        callback_allowlist=["127.0.0.1"],
    )
    app = create_app(
        settings, announce=worker.announcer.announce, delivery_summary=partial(delivery_summary, store.engine)
    )
    auth = {"Authorization": f"Bearer {API_KEY}"}

    with TestClient(app) as api:
        # When
        answer = api.post(f"/v1/jobs/{job.id}/redeliver", headers=auth)

        # Then
        assert answer.status_code == 202, answer.text
        assert answer.json()["webhook_id"] == first.headers["webhook-id"]
        [_, second] = receiver.wait_for(2, timeout_s=20)
        assert second.headers["webhook-id"] == first.headers["webhook-id"]
        Webhook(SECRET_ACME).verify(second.body, second.headers)
        wait_for_delivery(deliveries, job.id, lambda log: log.deliveries[0].attempts == 2, timeout_s=10)
        listed = api.get(f"/v1/jobs/{job.id}/deliveries", headers=auth).json()
        [delivery] = listed["deliveries"]
        assert [(a["round"], a["attempt"], a["status_code"]) for a in delivery["attempt_log"]] == [
            (0, 1, 200),
            (1, 1, 200),
        ]
        assert api.get(f"/v1/jobs/{job.id}", headers=auth).json()["delivery"] == {
            "status": "delivered",
            "attempts": 2,
        }
        other = finished_job(store, receiver.url, client="beta")
        assert api.get(f"/v1/jobs/{other.id}/deliveries", headers=auth).status_code == 404
        assert api.post(f"/v1/jobs/{other.id}/redeliver", headers=auth).status_code == 404


# -- SSRF at delivery time --------------------------------------------------------------------------------
#: Callback URLs as a job may hold them if DNS changed after submission; {port} is a live receiver's port.
REFUSED_AT_DELIVERY = [
    ("http://localhost:{port}/hooks", "host localhost resolves to loopback address 127.0.0.1"),
    ("http://127.0.0.1:{port}/hooks", "loopback address 127.0.0.1"),
    ("http://[::ffff:127.0.0.1]:{port}/hooks", "loopback address 127.0.0.1 (IPv4-mapped"),
    ("http://0.0.0.0:{port}/hooks", "unspecified address 0.0.0.0"),
    ("http://[::1]:{port}/hooks", "loopback address ::1"),
    ("http://10.0.0.1/hooks", "private address 10.0.0.1"),
    ("http://[fd12::1]/hooks", "private address fd12::1"),
    ("http://169.254.169.254/latest/meta-data/", "cloud metadata address 169.254.169.254"),
    ("http://[fd00:ec2::254]/latest/meta-data/", "cloud metadata address fd00:ec2::254"),
    ("http://169.254.10.10/hooks", "link-local address 169.254.10.10"),
    ("http://[fe80::1]/hooks", "link-local address fe80::1"),
    ("http://224.0.0.1/hooks", "multicast address 224.0.0.1"),
    ("http://[ff02::1]/hooks", "multicast address ff02::1"),
    ("http://240.0.0.1/hooks", "reserved address 240.0.0.1"),
    ("http://[::]:{port}/hooks", "unspecified address ::"),
    ("ftp://127.0.0.1:{port}/hooks", "scheme ftp not allowed"),
]


@pytest.mark.parametrize(("template", "reason"), REFUSED_AT_DELIVERY)
def test_delivery_refuses_without_sending_when_callback_address_is_forbidden(
    strict_worker: DeliveryWorker,
    receiver: Receiver,
    store: JobStore,
    deliveries: DeliveryStore,
    template: str,
    reason: str,
) -> None:
    # Given: a stored job whose callback URL now leads somewhere forbidden (a receiver listens on 127.0.0.1)
    job = finished_job(store, template.format(port=receiver.port))

    # When
    strict_worker.announce(job.id)

    # Then: failed at once, the reason logged, nothing sent
    log = wait_for_delivery(deliveries, job.id, settled, timeout_s=20)
    delivery = log.deliveries[0]
    assert delivery.status is DeliveryStatus.FAILED
    [attempt] = delivery.attempt_log
    assert attempt.status_code is None
    assert attempt.error is not None and reason in attempt.error
    assert receiver.requests == []


def deliver_in_process(store: JobStore, broker_url: str, job_id: str, **settings: Any) -> None:
    """Run one delivery attempt in this process (no retry: the schedule is empty)."""
    delivery_settings = DeliverySettings(
        broker_url=broker_url,
        store_url="sqlite://",
        webhook_secrets=SECRETS,
        callback_allowlist=["127.0.0.1"],
        retry_schedule_s=[],
        timeout_s=2,
        **settings,
    )
    announcer = EventAnnouncer.from_settings(delivery_settings)
    try:
        Deliverer(delivery_settings, store, announcer).run(job_id)
    finally:
        announcer.close()


def test_delivery_connects_to_checked_address_when_dns_answer_changes_after_check(
    receiver: Receiver, sqlite_url: str, broker_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given: a name that resolves to the allow-listed 127.0.0.1 once, and to a private black hole afterwards
    store = JobStore.from_url(sqlite_url)
    store.create_schema()
    job = finished_job(store, receiver.url_with_host("rebind.test"))
    answers = iter(["127.0.0.1"])
    real_getaddrinfo = socket.getaddrinfo

    def rebinding_getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "rebind.test":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers, "10.255.255.1"), port))]
        return real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding_getaddrinfo)

    # When
    deliver_in_process(store, broker_url, job.id)

    # Then: the request reached the address that was checked, addressed to the name
    [request] = receiver.requests
    assert request.headers["host"] == f"rebind.test:{receiver.port}"
    Webhook(SECRET_ACME).verify(request.body, request.headers)
    assert DeliveryStore(store.engine).log(job.id).deliveries[0].status is DeliveryStatus.DELIVERED


def self_signed_certificate(directory: Path, hostname: str) -> tuple[Path, Path]:
    """A certificate (and key) for ``hostname`` only (no IP address in it), signed by itself."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / f"{hostname}.pem", directory / f"{hostname}.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@pytest.mark.parametrize(("certificate_host", "delivered"), [("localhost", True), ("other.test", False)])
def test_delivery_verifies_certificate_against_url_hostname_when_connecting_to_checked_address(
    sqlite_url: str, broker_url: str, tmp_path: Path, certificate_host: str, delivered: bool
) -> None:
    # Given: an https receiver on 127.0.0.1 whose certificate names a host, not the address
    certificate, key = self_signed_certificate(tmp_path, certificate_host)
    https = Receiver(tls=(certificate, key)).start()
    try:
        store = JobStore.from_url(sqlite_url)
        store.create_schema()
        job = finished_job(store, https.url_with_host("localhost"))

        # When: the worker connects to the checked 127.0.0.1, trusting that certificate
        deliver_in_process(store, broker_url, job.id, ca_file=certificate)

        # Then: TLS is verified for "localhost" (the URL's host), so only the matching certificate passes
        [attempt] = DeliveryStore(store.engine).log(job.id).deliveries[0].attempt_log
        if delivered:
            assert attempt.status_code == 200, attempt
            Webhook(SECRET_ACME).verify(https.requests[0].body, https.requests[0].headers)
        else:
            assert attempt.status_code is None
            assert "CERTIFICATE_VERIFY_FAILED" in (attempt.error or ""), attempt
            assert https.requests == []
    finally:
        https.stop()


# -- delays wait in the broker ---------------------------------------------------------------------------
def _rabbit_env(name: str) -> str:
    out = subprocess.run(
        ["rabbitmqctl", "-q", "eval", f"application:get_env(rabbit, {name})."],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.strip()
    return out  # "{ok,1800000}" or "undefined"


def _set_rabbit_env(name: str, value: str) -> None:
    if value.startswith("{ok,"):
        expression = f"application:set_env(rabbit, {name}, {value[4:-1]})."
    elif value == "undefined":
        expression = f"application:unset_env(rabbit, {name})."
    else:
        expression = f"application:set_env(rabbit, {name}, {value})."
    subprocess.run(["rabbitmqctl", "-q", "eval", expression], check=True, capture_output=True, timeout=60)


@pytest.fixture
def short_consumer_timeout() -> Iterator[int]:
    """RabbitMQ closes any channel that holds a delivery unacked for more than 10 s, checked every second.

    Both settings are global (every vhost) and read at every channel tick, so they are restored at once
    afterwards; the window is the length of the test (about 30 s).
    """
    timeout_ms, tick_ms = 10_000, 1_000
    previous = {name: _rabbit_env(name) for name in ("consumer_timeout", "channel_tick_interval")}
    _set_rabbit_env("consumer_timeout", str(timeout_ms))
    _set_rabbit_env("channel_tick_interval", str(tick_ms))
    try:
        yield timeout_ms // 1000
    finally:
        for name, value in previous.items():
            _set_rabbit_env(name, value)


def _queue_counts(broker_url: str) -> dict[str, tuple[int, int]]:
    """``{queue: (ready + unacked, unacked)}`` of the test vhost."""
    vhost = unquote(urlsplit(broker_url).path.lstrip("/")) or "/"
    out = subprocess.run(
        ["rabbitmqctl", "-q", "list_queues", "-p", vhost, "name", "messages", "messages_unacknowledged"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    counts = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1].isdigit():
            counts[parts[0]] = (int(parts[1]), int(parts[2]))
    return counts


@pytest.mark.slow
def test_delivery_worker_keeps_retry_waiting_in_broker_when_delay_exceeds_consumer_timeout(
    short_consumer_timeout: int,
    broker_url: str,
    postgres_url: str,
    store: JobStore,
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    # Given: the broker kills held deliveries after 10 s; a worker whose only retry waits 20 s
    delay_s = 2 * short_consumer_timeout
    worker = start_worker(broker_url, postgres_url, tmp_path, BT_DELIVERY_RETRY_SCHEDULE_S=str(delay_s))
    # ... and a probe that holds one delivery unacked, to show the broker really enforces the timeout now
    probe = pika.BlockingConnection(pika.URLParameters(broker_url))
    probe_channel = probe.channel()
    probe_queue = f"probe-{uuid.uuid4().hex[:8]}"
    probe_channel.queue_declare(probe_queue, durable=True, arguments={"x-queue-type": "quorum"})
    probe_channel.basic_publish("", probe_queue, b"held")
    probe_channel.basic_qos(prefetch_count=1)
    probe_channel.basic_consume(probe_queue, lambda *_: None)  # never acks
    try:
        receiver.script(500)
        job = finished_job(store, receiver.url)

        # When: the first attempt fails and the retry is scheduled 20 s out
        worker.announce(job.id)
        receiver.wait_for(1, timeout_s=20)

        # Then: the retry waits in a delayed-delivery queue, not unacked in the worker
        deadline = time.monotonic() + 10
        while True:
            counts = _queue_counts(broker_url)
            delayed = sum(n for name, (n, _) in counts.items() if name.startswith("celery_delayed_"))
            if delayed >= 1 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert delayed >= 1, counts
        assert counts[worker.queue] == (0, 0), counts
        # ... the worker keeps working meanwhile: another job goes out at once
        other = finished_job(store, receiver.url)
        worker.announce(other.id)
        second = receiver.wait_for(2, timeout_s=10)[1]
        assert other.id.encode() in second.body
        # ... while the broker kills the probe's held delivery (the trap is armed)
        deadline = time.monotonic() + short_consumer_timeout + 10
        while probe_channel.is_open and time.monotonic() < deadline:
            probe.process_data_events(0.2)
        assert probe_channel.is_closed, "the broker did not enforce the consumer timeout"

        # When the delay is over
        third = receiver.wait_for(3, timeout_s=delay_s + 20)[2]

        # Then: the retry arrived, on time, and the same worker process is still up
        first = receiver.requests[0]
        assert third.headers["webhook-id"] == first.headers["webhook-id"]
        assert third.received_at - first.received_at >= delay_s - 0.1
        assert worker.process.poll() is None
        assert "PreconditionFailed" not in worker.log_text()
        assert "Unrecoverable error" not in worker.log_text()
    finally:
        if probe.is_open:
            probe.close()
        worker.stop()


# -- retry timing and start-up checks ---------------------------------------------------------------------
def unit_deliverer(**settings: Any) -> Deliverer:
    """A Deliverer for computing delays (its store and broker are never reached)."""
    values: dict[str, Any] = {"webhook_secrets": SECRETS, "broker_url": "amqp://guest:guest@127.0.0.1:9//"}
    values.update(settings)
    delivery_settings = DeliverySettings(**values)
    return Deliverer(delivery_settings, JobStore.from_url("sqlite://"), EventAnnouncer.from_settings(delivery_settings))


def test_retry_delay_follows_schedule_within_jitter_when_receiver_sends_no_retry_after() -> None:
    # Given: the default schedule, ±20 %
    deliverer = unit_deliverer()

    # When
    delays = {attempt: [deliverer.retry_delay_s(attempt, None) for _ in range(200)] for attempt in (1, 2, 9)}

    # Then
    assert min(delays[1]) >= 4 and max(delays[1]) <= 6
    assert min(delays[2]) >= 240 and max(delays[2]) <= 360
    assert min(delays[9]) >= 0.8 * 86_400 and max(delays[9]) <= 1.2 * 86_400
    assert len(set(delays[2])) > 10  # spread, not one value


def test_retry_delay_honours_retry_after_up_to_the_cap_when_receiver_asks_for_longer() -> None:
    deliverer = unit_deliverer(retry_jitter=0, max_retry_after_s=3_600)

    assert deliverer.retry_delay_s(1, 120.0) == 120  # longer than the schedule's 5 s: honoured
    assert deliverer.retry_delay_s(2, 1.0) == 300  # shorter than the schedule: the schedule wins
    assert deliverer.retry_delay_s(1, 7 * 86_400.0) == 3_600  # capped


def test_parse_retry_after_reads_seconds_and_http_dates_when_present() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after("120", now) == 120.0
    assert parse_retry_after("Tue, 14 Nov 2023 22:15:20 GMT", now) == 120.0
    assert parse_retry_after("Tue, 14 Nov 2023 22:00:00 GMT", now) == 0.0  # in the past
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


def test_delivery_worker_exits_without_echoing_secret_when_secret_is_invalid(tmp_path: Path) -> None:
    # Given: a secret with a typo (not base64) and a placeholder
    leaked = "whsec_ThisIsMyRealSecret!!"
    env = {**os.environ, "BT_DELIVERY_WEBHOOK_SECRETS": f"acme:{leaked},beta:whsec_changeme", "BT_LOG_FORMAT": "text"}

    # When
    done = subprocess.run(
        [sys.executable, "-m", "worker.delivery"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )

    # Then
    assert done.returncode == 2
    assert "webhook secret of client 'acme' is invalid" in done.stdout + done.stderr
    assert "ThisIsMyRealSecret" not in done.stdout + done.stderr

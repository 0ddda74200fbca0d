"""``/v1/jobs``: submit, inspect, fetch the result of and cancel translation jobs."""

from __future__ import annotations

import json
import logging
from typing import Annotated

from fastapi import APIRouter, Header, Response, status

from jobs.errors import BrokerUnavailable
from jobs.schemas import (
    ErrorBody,
    ErrorInfo,
    JobAccepted,
    JobCreate,
    JobLinks,
    JobMessage,
    JobPublic,
    JobResult,
    JobStatus,
    Progress,
    TranslationOptions,
)
from jobs.store import JobRecord
from webhook_api.deps import ClientDep, Services, ServicesDep, StoreDep
from webhook_api.problems import ApiProblem
from webhook_api.settings import ApiSettings

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

#: Longest Idempotency-Key accepted, in characters.
MAX_IDEMPOTENCY_KEY_CHARS = 256

_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorBody},
    404: {"model": ErrorBody},
    409: {"model": ErrorBody},
    413: {"model": ErrorBody},
    422: {"model": ErrorBody},
    503: {"model": ErrorBody},
}


def links(job_id: str) -> JobLinks:
    return JobLinks(self_=f"/v1/jobs/{job_id}", result=f"/v1/jobs/{job_id}/result")


def check_limits(job: JobCreate, settings: ApiSettings) -> None:
    """Limits that depend on settings: served pairs, segment count and length, metadata size."""
    if job.pair not in settings.pairs:
        raise ApiProblem(
            422,
            "unsupported_pair",
            f"language pair {job.pair!r} is not served (served: {', '.join(settings.pairs)})",
            "target_lang",
        )
    if len(job.segments) > settings.max_segments:
        raise ApiProblem(
            422,
            "too_many_segments",
            f"segments has {len(job.segments)} items; the limit is {settings.max_segments}",
            "segments",
        )
    for index, segment in enumerate(job.segments):
        if len(segment) > settings.max_segment_chars:
            raise ApiProblem(
                422,
                "segment_too_long",
                f"segments[{index}] has {len(segment)} characters; the limit is {settings.max_segment_chars}",
                f"segments.{index}",
            )
    if job.options.min_decoding_length > job.options.max_decoding_length:
        raise ApiProblem(
            422,
            "invalid_request",
            "options.min_decoding_length must not exceed options.max_decoding_length",
            "options.min_decoding_length",
        )
    metadata_bytes = len(json.dumps(job.metadata, separators=(",", ":")).encode())
    if metadata_bytes > settings.max_metadata_bytes:
        raise ApiProblem(
            422,
            "metadata_too_large",
            f"metadata is {metadata_bytes} bytes of JSON; the limit is {settings.max_metadata_bytes}",
            "metadata",
        )


def to_public(record: JobRecord, services: Services) -> JobPublic:
    done = record.segments_total if record.status is JobStatus.SUCCEEDED else record.segments_done
    error = ErrorInfo(code=record.error_code, message=record.error_message or "") if record.error_code else None
    return JobPublic(
        id=record.id,
        status=record.status,
        source_lang=record.source_lang,
        target_lang=record.target_lang,
        progress=Progress(done=done, total=record.segments_total),
        created_at=record.created_at,
        started_at=record.started_at,
        finished_at=record.finished_at,
        model=record.model,
        error=error,
        delivery=services.delivery_summary(record.id) if record.callback_url else None,
        metadata=record.metadata,
        links=links(record.id),
    )


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobAccepted,
    responses=_ERRORS,
    summary="Submit a translation job",
)
def submit_job(
    job: JobCreate,
    client: ClientDep,
    services: ServicesDep,
    response: Response,
    idempotency_key: Annotated[str | None, Header(max_length=MAX_IDEMPOTENCY_KEY_CHARS)] = None,
) -> JobAccepted:
    """Accept a job: ``202`` means it is stored **and** the broker confirmed its message.

    Retrying with the same ``Idempotency-Key`` and body returns the first job; a different body is ``409``.
    """
    check_limits(job, services.settings)
    if job.callback_url is not None:
        services.callback_policy.check(job.callback_url)

    def publish(record: JobRecord) -> None:
        services.publisher.publish(
            JobMessage(
                id=record.id,
                client=client,
                source_lang=record.source_lang,
                target_lang=record.target_lang,
                segments=record.segments,
                options=TranslationOptions(**record.options),
                has_callback=record.callback_url is not None,
            )
        )

    record, created = services.store.create_job(client, job, idempotency_key, publish)
    if created:
        log.info("job %s accepted: %s, %d segments", record.id, record.pair, record.segments_total)
    else:
        response.headers["Idempotent-Replayed"] = "true"
    return JobAccepted(id=record.id, status=record.status, segments=record.segments_total, links=links(record.id))


@router.get("/{job_id}", response_model=JobPublic, responses=_ERRORS, summary="Status of a job")
def get_job(job_id: str, client: ClientDep, store: StoreDep, services: ServicesDep) -> JobPublic:
    return to_public(store.get(job_id, client), services)


@router.get("/{job_id}/result", response_model=JobResult, responses=_ERRORS, summary="Translations of a job")
def get_result(job_id: str, client: ClientDep, store: StoreDep) -> JobResult:
    """The translations, in segment order; ``409`` while the job has not succeeded."""
    record = store.get(job_id, client)
    if record.status is not JobStatus.SUCCEEDED or record.translations is None:
        raise ApiProblem(409, "job_not_finished", f"job {job_id} is {record.status.value}; no result to fetch")
    return JobResult(id=record.id, translations=record.translations, model=record.model)


@router.delete("/{job_id}", response_model=JobPublic, responses=_ERRORS, summary="Cancel a queued job")
def cancel_job(job_id: str, client: ClientDep, store: StoreDep, services: ServicesDep) -> JobPublic:
    """Cancel a job that has not started; workers skip it. ``409`` once it runs or has finished."""
    record = store.cancel(job_id, client)
    log.info("job %s cancelled", job_id)
    if record.callback_url:
        try:
            services.announce([record.id])
        except BrokerUnavailable:
            # The cancel stands; the event can be sent later with POST /v1/jobs/{id}/redeliver.
            log.error("job %s cancelled but its event could not be enqueued (broker unavailable)", job_id)
    return to_public(record, services)

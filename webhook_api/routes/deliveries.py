"""``/v1/jobs/{id}/deliveries`` and ``/v1/jobs/{id}/redeliver``: the callback delivery log and replay."""

from __future__ import annotations

import logging

from fastapi import APIRouter, status

from jobs.deliveries import DeliveryLog, DeliveryPublic, DeliveryStore
from jobs.events import event_type
from jobs.schemas import ErrorBody
from webhook_api.deps import ClientDep, ServicesDep, StoreDep
from webhook_api.problems import ApiProblem

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/jobs", tags=["deliveries"])

_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorBody},
    404: {"model": ErrorBody},
    409: {"model": ErrorBody},
    503: {"model": ErrorBody},
}


@router.get(
    "/{job_id}/deliveries",
    response_model=DeliveryLog,
    responses=_ERRORS,
    summary="Callback deliveries of a job, with every attempt",
)
def list_deliveries(job_id: str, client: ClientDep, store: StoreDep) -> DeliveryLog:
    """Every attempt to POST the job's event: time, status code, latency, error. Empty before the job ends."""
    store.get(job_id, client)  # 404 unless this client owns the job
    return DeliveryStore(store.engine).log(job_id)


@router.post(
    "/{job_id}/redeliver",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=DeliveryPublic,
    responses=_ERRORS,
    summary="Send the job's event again",
)
def redeliver(job_id: str, client: ClientDep, store: StoreDep, services: ServicesDep) -> DeliveryPublic:
    """Start a new delivery round of the job's event, with the same ``webhook-id`` and a fresh retry schedule.

    ``409`` if the job has no ``callback_url`` or has not finished. A retry of the previous round that is still
    waiting is dropped when it comes due.
    """
    record = store.get(job_id, client)
    if not record.callback_url:
        raise ApiProblem(409, "no_callback_url", f"job {job_id} has no callback_url; there is nothing to deliver")
    if not record.status.terminal:
        raise ApiProblem(
            409, "job_not_finished", f"job {job_id} is {record.status.value}; its event does not exist yet"
        )
    deliveries = DeliveryStore(store.engine)
    delivery = deliveries.restart(record.id, record.client, event_type(record.status))
    services.announce([record.id])  # BrokerUnavailable answers 503; a later redeliver resumes this round
    log.info("job %s: redelivery of %s requested (round %d)", job_id, delivery.webhook_id, delivery.round)
    current = next(d for d in deliveries.log(record.id).deliveries if d.webhook_id == delivery.webhook_id)
    return current

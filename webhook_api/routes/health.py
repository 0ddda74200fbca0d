"""Operational endpoints: liveness, readiness, Prometheus metrics and the per-pair backlog (for KEDA)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from jobs.errors import BrokerUnavailable, StoreUnavailable
from jobs.store import backlog
from webhook_api.deps import ServicesDep

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Liveness: the process answers")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: the broker and the store are reachable")
def readyz(services: ServicesDep) -> JSONResponse:
    checks: dict[str, str] = {}
    try:
        services.store.ping()
        checks["store"] = "ok"
    except StoreUnavailable as exc:
        checks["store"] = f"unavailable: {exc}"
    try:
        services.publisher.ping()
        checks["broker"] = "ok"
    except BrokerUnavailable as exc:
        checks["broker"] = f"unavailable: {exc}"
    ready = all(value == "ok" for value in checks.values())
    return JSONResponse(status_code=200 if ready else 503, content={"ready": ready, "checks": checks})


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


@router.get("/backlog", summary="Queued work per language pair (KEDA metrics-api scaler)")
def get_backlog(services: ServicesDep) -> dict[str, dict[str, dict[str, int]]]:
    """``{"pairs": {"en-fr": {"queued_jobs": 3, "queued_segments": 1200}}}`` for every served pair."""
    counts = backlog(services.store.engine)
    return {
        "pairs": {
            pair: {"queued_jobs": counts.get(pair, (0, 0))[0], "queued_segments": counts.get(pair, (0, 0))[1]}
            for pair in sorted(set(services.settings.pairs) | set(counts))
        }
    }

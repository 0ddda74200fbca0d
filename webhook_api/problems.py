"""API errors: a stable ``code``, a human ``message`` and the offending ``field``, as JSON."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from jobs.errors import (
    BrokerUnavailable,
    CallbackUrlRefused,
    IdempotencyConflict,
    InvalidTransition,
    JobNotFound,
    StoreUnavailable,
)
from jobs.schemas import ErrorBody


class ApiProblem(Exception):
    """An error answer the API gives on purpose."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = ErrorBody(code=code, message=message, field=field)


def _json(status: int, code: str, message: str, field: str | None = None) -> JSONResponse:
    body = ErrorBody(code=code, message=message, field=field)
    return JSONResponse(status_code=status, content=body.model_dump())


def _field_path(loc: tuple[object, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def install_problem_handlers(app: FastAPI) -> None:
    """Translate the project's errors into JSON error answers."""

    @app.exception_handler(ApiProblem)
    async def _problem(_: Request, exc: ApiProblem) -> JSONResponse:
        return JSONResponse(status_code=exc.status, content=exc.body.model_dump())

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        field = _field_path(tuple(first.get("loc", ())))
        message = f"{field}: {first.get('msg', 'invalid value')}"
        if first.get("type") == "json_invalid":
            return _json(400, "invalid_json", f"request body is not valid JSON: {first.get('msg')}", "body")
        return _json(422, "invalid_request", message, field)

    @app.exception_handler(BrokerUnavailable)
    async def _broker(_: Request, exc: BrokerUnavailable) -> JSONResponse:
        return _json(503, "broker_unavailable", "the message broker is unavailable; nothing was stored, retry later")

    @app.exception_handler(StoreUnavailable)
    async def _store(_: Request, exc: StoreUnavailable) -> JSONResponse:
        return _json(503, "store_unavailable", "the job store is unavailable; retry later")

    @app.exception_handler(IdempotencyConflict)
    async def _conflict(_: Request, exc: IdempotencyConflict) -> JSONResponse:
        return _json(409, "idempotency_conflict", str(exc), "Idempotency-Key")

    @app.exception_handler(JobNotFound)
    async def _not_found(_: Request, exc: JobNotFound) -> JSONResponse:
        return _json(404, "job_not_found", f"no job {exc} for this API key")

    @app.exception_handler(InvalidTransition)
    async def _transition(_: Request, exc: InvalidTransition) -> JSONResponse:
        return _json(409, "invalid_state", str(exc))

    @app.exception_handler(CallbackUrlRefused)
    async def _callback(_: Request, exc: CallbackUrlRefused) -> JSONResponse:
        return _json(422, "callback_url_refused", f"callback_url refused: {exc.reason}", "callback_url")

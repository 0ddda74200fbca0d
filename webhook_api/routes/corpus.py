"""``/v1/corpus``: approved segment pairs in, for the retrain job to learn from.

``POST /v1/corpus/{pair}`` with either body:

* JSON lines (``application/x-ndjson`` or ``application/jsonl``): one ``{"source": "...", "target": "..."}`` per line;
* TMX (``application/x-tmx+xml``, ``text/xml`` or ``application/xml``): a translation memory as CAT tools export it.

The upload is validated completely, then stored in one transaction (all or nothing), de-duplicated by normalized
source text; the answer counts pairs received, stored and dropped as duplicates. Errors name the line (and side).
The API's body limit (``BT_API_MAX_BODY_BYTES``) applies: split larger memories into several uploads.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from fastapi import APIRouter, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from jobs.parallel_corpus import (
    CorpusInputError,
    IntakeResult,
    ParallelCorpus,
    SegmentPair,
    check_lengths,
    parse_jsonl,
    split_pair,
)
from jobs.schemas import ErrorBody
from jobs.tmx import parse_tmx
from webhook_api.deps import ClientDep, ServicesDep
from webhook_api.problems import ApiProblem

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/corpus", tags=["corpus"])

#: Media types of a JSON-lines upload.
JSONL_TYPES = ("application/x-ndjson", "application/jsonl")
#: Media types of a TMX upload.
TMX_TYPES = ("application/x-tmx+xml", "text/xml", "application/xml")
#: HTTP status per error code: a body that cannot be parsed is 400, a parsed one that breaks a rule is 422.
_STATUS_OF_CODE = {"malformed_jsonl": 400, "malformed_tmx": 400, "forbidden_xml": 400}

_ERRORS: dict[int | str, dict[str, object]] = {
    status: {"model": ErrorBody} for status in (400, 401, 413, 415, 422, 503)
}


class CorpusIntake(BaseModel):
    """Answer to an upload: what arrived and what was new."""

    pair: str
    received: int  #: pairs in the upload
    stored: int  #: pairs stored now (new sentences)
    duplicates: int  #: pairs whose normalized source was already stored (or repeated in the upload)
    upload_id: str


def _segments(body: bytes, media_type: str, source_lang: str, target_lang: str) -> Iterator[SegmentPair]:
    if media_type in TMX_TYPES:
        return parse_tmx([body], source_lang, target_lang)
    return parse_jsonl(body.splitlines())


def _ingest(
    corpus: ParallelCorpus,
    pair: str,
    segments: Iterator[SegmentPair],
    client: str,
    origin: str,
    max_chars: int,
) -> IntakeResult:
    checked = list(check_lengths(segments, max_chars))
    if not checked:
        raise CorpusInputError("the upload holds no segment pairs", code="empty_upload")
    return corpus.add(pair, checked, client=client, origin=origin)


@router.post(
    "/{pair}",
    response_model=CorpusIntake,
    responses=_ERRORS,
    summary="Add approved segment pairs (JSON lines or TMX)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                **{t: {"schema": {"type": "string"}} for t in JSONL_TYPES},
                **{t: {"schema": {"type": "string"}} for t in TMX_TYPES},
            },
        }
    },
)
async def add_corpus(pair: str, request: Request, client: ClientDep, services: ServicesDep) -> CorpusIntake:
    """Store the new sentences of the upload for ``pair``; nothing is stored if any line is invalid."""
    settings = services.settings
    if pair not in settings.pairs:
        raise ApiProblem(
            422,
            "unsupported_pair",
            f"language pair {pair!r} is not served (served: {', '.join(settings.pairs)})",
            "pair",
        )
    source_lang, target_lang = split_pair(pair)
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type not in (*JSONL_TYPES, *TMX_TYPES):
        raise ApiProblem(
            415,
            "unsupported_media_type",
            f"Content-Type {media_type or 'missing'!r} is not accepted "
            f"(JSON lines: {', '.join(JSONL_TYPES)}; TMX: {', '.join(TMX_TYPES)})",
            "Content-Type",
        )
    body = await request.body()
    origin = f"api:{'tmx' if media_type in TMX_TYPES else 'jsonl'}"
    segments = _segments(body, media_type, source_lang, target_lang)
    corpus = ParallelCorpus(services.store.engine)
    try:
        result = await run_in_threadpool(_ingest, corpus, pair, segments, client, origin, settings.max_segment_chars)
    except CorpusInputError as exc:
        raise ApiProblem(_STATUS_OF_CODE.get(exc.code, 422), exc.code, str(exc), exc.location) from exc
    return CorpusIntake(
        pair=pair,
        received=result.received,
        stored=result.stored,
        duplicates=result.duplicates,
        upload_id=result.upload_id,
    )

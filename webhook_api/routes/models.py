"""``/v1/models``: the language pairs served and the model version behind each."""

from __future__ import annotations

from fastapi import APIRouter

from jobs.schemas import ModelPublic
from webhook_api.deps import ClientDep, ServicesDep

router = APIRouter(prefix="/v1/models", tags=["models"])


@router.get("", response_model=list[ModelPublic], summary="Served language pairs")
def list_models(_: ClientDep, services: ServicesDep) -> list[ModelPublic]:
    """Every configured pair, with the model version its workers last reported (``null`` before any loaded)."""
    served = services.store.served_models()
    answer = []
    for pair in services.settings.pairs:
        source, _, target = pair.partition("-")
        model, updated = served.get(pair, (None, None))
        answer.append(ModelPublic(pair=pair, source_lang=source, target_lang=target, model=model, updated_at=updated))
    return answer

"""Dependencies shared by the routes, as ``Annotated`` aliases so signatures read like types."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from jobs.callback_urls import CallbackUrlPolicy
from jobs.publisher import JobPublisher
from jobs.schemas import DeliveryInfo
from jobs.store import JobStore
from webhook_api.problems import ApiProblem
from webhook_api.settings import ApiSettings

_bearer = HTTPBearer(auto_error=False, description="API key issued to your client")


@dataclass
class Services:
    """What the app built at start-up; routes reach it through the aliases below."""

    settings: ApiSettings
    store: JobStore
    publisher: JobPublisher
    callback_policy: CallbackUrlPolicy
    announce: Callable[[Sequence[str]], None]  #: announce terminal jobs to their callback URLs
    delivery_summary: Callable[[str], DeliveryInfo | None]  #: delivery status of a job's event


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def get_store(services: ServicesDep) -> JobStore:
    return services.store


def get_settings(services: ServicesDep) -> ApiSettings:
    return services.settings


StoreDep = Annotated[JobStore, Depends(get_store)]
SettingsDep = Annotated[ApiSettings, Depends(get_settings)]


def current_client(
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The client name behind the bearer token; 401 without a known one."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise ApiProblem(401, "unauthorized", "missing Authorization: Bearer <api key>", "Authorization")
    token = credentials.credentials.encode()
    client: str | None = None
    for key, name in services.settings.keys_by_token().items():
        if hmac.compare_digest(token, key.encode()):
            client = name
    if client is None:
        raise ApiProblem(401, "unauthorized", "unknown API key", "Authorization")
    return client


ClientDep = Annotated[str, Depends(current_client)]

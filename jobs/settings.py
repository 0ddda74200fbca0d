"""Settings shared by every component.

Each component has one pydantic-settings class (``ApiSettings``, ``WorkerSettings``, ...) that subclasses
:class:`SharedSettings` and is built in its entry point, then passed down. Shared fields are read from the same
environment variables (``BT_BROKER_URL``, ``BT_STORE_URL`` ...) whatever the component, so one ConfigMap serves all.
Nothing here reads the environment at import time.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AliasChoices, BeforeValidator, Field
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

#: Environment prefix of every setting.
ENV_PREFIX = "BT_"


def _split_commas(value: Any) -> Any:
    """Accept ``a,b,c`` (and JSON lists) for list settings read from the environment."""
    if isinstance(value, str):
        stripped = value.strip()
        if stripped.startswith("["):
            import json

            return json.loads(stripped)
        return [item.strip() for item in stripped.split(",") if item.strip()]
    return value


#: A list setting written as ``a,b,c`` in the environment.
CommaList = Annotated[list[str], NoDecode, BeforeValidator(_split_commas)]


def shared(env: str, **kwargs: Any) -> Any:
    """A field read from ``BT_<env>`` regardless of the component's own prefix."""
    return Field(validation_alias=AliasChoices(ENV_PREFIX + env, env.lower()), **kwargs)


class SharedSettings(BaseSettings):
    """Connection settings every component needs."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, populate_by_name=True, extra="ignore")

    broker_url: str = shared(
        "BROKER_URL",
        default="amqp://guest:guest@127.0.0.1:5672/%2F",
        description="AMQP URL of RabbitMQ (the vhost is part of the URL).",
    )
    store_url: str = shared(
        "STORE_URL",
        default="sqlite:///var/batch-translate.db",
        description="SQLAlchemy URL of the job store: a SQLite file or postgresql+psycopg://…",
    )
    queue_prefix: str = shared(
        "QUEUE_PREFIX",
        default="translate",
        description="Translation queues are named <prefix>.<src>-<tgt>.",
    )
    callback_allowlist: CommaList = shared(
        "CALLBACK_ALLOWLIST",
        default_factory=list,
        description="Hosts, IPs or CIDRs that callbacks may reach although the SSRF policy would refuse them.",
    )
    delivery_queue: str = shared(
        "DELIVERY_QUEUE",
        default="deliveries",
        description="Queue the delivery worker consumes callback deliveries from.",
    )


def environment_variables(cls: type[BaseSettings]) -> dict[str, str]:
    """``{ENV_VAR: field name}`` for every setting of ``cls`` (the documented and chart-rendered names)."""
    prefix = str(cls.model_config.get("env_prefix", ""))
    names: dict[str, str] = {}
    for field_name, field in cls.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            env = next(choice for choice in alias.choices if isinstance(choice, str))
        elif isinstance(alias, str):
            env = alias
        else:
            env = prefix + field_name
        names[env.upper()] = field_name
    return names

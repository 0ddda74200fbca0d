"""The environment variables the code reads, taken from its pydantic-settings classes (never from a copied list)."""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

from pydantic import AliasChoices, AliasPath
from pydantic_settings import BaseSettings

#: Which settings class each chart component's container is built from: component -> (module, class).
SETTINGS_OF_COMPONENT = {
    "api": ("webhook_api.settings", "ApiSettings"),
    "worker": ("worker.settings", "WorkerSettings"),
    "delivery": ("worker.delivery_settings", "DeliverySettings"),
    "retrain": ("retrain.settings", "RetrainSettings"),
}


def settings_class(component: str) -> type[BaseSettings] | None:
    """The component's settings class, or None while its module does not exist yet."""
    module_name, class_name = SETTINGS_OF_COMPONENT[component]
    if importlib.util.find_spec(module_name) is None:
        return None
    cls: type[BaseSettings] = getattr(importlib.import_module(module_name), class_name)
    return cls


def env_names(cls: type[BaseSettings]) -> set[str]:
    """Every environment variable name ``cls`` reads (upper case; pydantic-settings is case-insensitive here)."""
    prefix = str(cls.model_config.get("env_prefix", ""))
    names: set[str] = set()
    for field_name, field in cls.model_fields.items():
        alias: Any = field.validation_alias or field.alias
        if isinstance(alias, AliasChoices):
            names.update(choice for choice in alias.choices if isinstance(choice, str))
        elif isinstance(alias, str):
            names.add(alias)
        elif isinstance(alias, AliasPath):
            names.add(str(alias.path[0]))
        else:
            names.add(prefix + field_name)
    return {name.upper() for name in names}

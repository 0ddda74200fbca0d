"""The configuration table of README.md, from the settings classes.

``python -m scripts.settings_doc`` prints it; ``python -m scripts.settings_doc --update`` rewrites README.md.

The README's table between the ``settings-table`` markers is this output; ``tests/test_docs.py`` keeps them equal.
"""

from __future__ import annotations

import importlib
import json
import sys

from pydantic_core import PydanticUndefined
from pydantic_settings import BaseSettings

from jobs.settings import SharedSettings, environment_variables

#: Component → settings class, in README order.
COMPONENTS: dict[str, str] = {
    "all components": "jobs.settings:SharedSettings",
    "API (`python -m webhook_api`)": "webhook_api.settings:ApiSettings",
    "translation worker (`python -m worker`)": "worker.settings:WorkerSettings",
    "delivery worker (`python -m worker.delivery`)": "worker.delivery_settings:DeliverySettings",
    "retrain (`python -m retrain`)": "retrain.settings:RetrainSettings",
}


def _load(path: str) -> type[BaseSettings]:
    module, _, name = path.partition(":")
    cls: type[BaseSettings] = getattr(importlib.import_module(module), name)
    return cls


def _default(field: object) -> str:
    default = getattr(field, "default", PydanticUndefined)
    factory = getattr(field, "default_factory", None)
    if default is PydanticUndefined and factory is None:
        return "*(required)*"
    value = factory() if factory is not None else default  # type: ignore[operator]
    if value is None or value == [] or value == {}:
        return "—"
    if isinstance(value, list):
        return "`" + ",".join(str(v) for v in value) + "`"
    return f"`{json.dumps(value) if isinstance(value, bool) else value}`"


def table() -> str:
    shared = set(environment_variables(SharedSettings))
    lines = ["| variable | component | default | meaning |", "| --- | --- | --- | --- |"]
    for component, path in COMPONENTS.items():
        cls = _load(path)
        for env, field_name in environment_variables(cls).items():
            if env in shared and cls is not SharedSettings:
                continue
            field = cls.model_fields[field_name]
            meaning = (field.description or "").replace("|", "\\|")
            lines.append(f"| `{env}` | {component} | {_default(field)} | {meaning} |")
    return "\n".join(lines)


START, END = "<!-- settings-table:start -->", "<!-- settings-table:end -->"


def update(path: str) -> None:
    """Replace the table between the markers of ``path`` (README.md)."""
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(f"{head}{START}\n{table()}\n{END}{tail}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--update"]:
        update(sys.argv[2] if len(sys.argv) > 2 else "README.md")
    else:
        sys.stdout.write(table() + "\n")

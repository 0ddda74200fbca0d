"""Validate custom resources (KEDA's) against their CRD schemas as the API server does, unknown fields refused.

The folder of CRDs comes from ``BT_KEDA_CRDS_DIR``; by default ``../shared/k8s/keda-crds`` beside the repository,
where CI keeps KEDA's CustomResourceDefinitions.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from tests.chart.manifests import REPO_ROOT

#: Environment variable naming the folder of KEDA CRDs.
CRDS_DIR_ENV = "BT_KEDA_CRDS_DIR"
#: Where CI keeps them, relative to the repository root.
DEFAULT_CRDS_DIR = Path("..") / "shared" / "k8s" / "keda-crds"

Schema = dict[str, Any]

#: libyaml's loader when PyYAML has it: the CRDs are large.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def keda_crds_dir() -> Path:
    configured = os.environ.get(CRDS_DIR_ENV)
    return Path(configured) if configured else (REPO_ROOT / DEFAULT_CRDS_DIR).resolve()


def refuse_unknown_fields(schema: Schema) -> Schema:
    """A copy of ``schema`` with ``additionalProperties: false`` wherever it lists ``properties`` and neither
    preserves unknown fields nor says what extra properties may be: the API server's strict field validation."""
    strict = copy.deepcopy(schema)

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            if (
                "properties" in node
                and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
            ):
                node["additionalProperties"] = False
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(strict)
    return strict


class CrdValidator:
    """Every served version of every CRD in a folder, ready to validate objects of those kinds."""

    def __init__(self, crds_dir: Path) -> None:
        self._validators: dict[tuple[str, str], jsonschema.protocols.Validator] = {}
        for path in sorted(crds_dir.glob("*.yaml")):
            for crd in yaml.load_all(path.read_text(), Loader=_LOADER):
                if not crd or crd.get("kind") != "CustomResourceDefinition":
                    continue
                group = crd["spec"]["group"]
                kind = crd["spec"]["names"]["kind"]
                for version in crd["spec"]["versions"]:
                    if not version.get("served", True):
                        continue
                    schema = refuse_unknown_fields(version["schema"]["openAPIV3Schema"])
                    validator_cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
                    self._validators[(f"{group}/{version['name']}", kind)] = validator_cls(schema)

    def kinds(self) -> set[tuple[str, str]]:
        return set(self._validators)

    def errors(self, obj: dict[str, Any]) -> list[str]:
        """Readable validation errors of ``obj`` (empty when valid)."""
        key = (obj["apiVersion"], obj["kind"])
        if key not in self._validators:
            return [f"no CRD serves {obj['apiVersion']} {obj['kind']}"]
        return [
            f"{obj['kind']}/{obj['metadata']['name']} at {'.'.join(map(str, error.absolute_path)) or '<root>'}: "
            f"{error.message}"
            for error in self._validators[key].iter_errors(obj)
        ]

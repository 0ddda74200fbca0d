"""Render the Helm chart offline with the Helm v4 Go SDK (``helm_python``) and look inside the result."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from helm_python import Chart

#: Repository root (tests/chart/manifests.py -> ../..).
REPO_ROOT = Path(__file__).resolve().parents[2]
#: The chart under test.
CHART_DIR = REPO_ROOT / "charts" / "batch-translate"
#: Release name and namespace every render uses.
RELEASE = "bt"
NAMESPACE = "translate"

Obj = dict[str, Any]


@dataclass(frozen=True)
class Manifests:
    """The objects one render produced, plus NOTES.txt."""

    objects: list[Obj]
    notes: str

    def of_kind(self, kind: str) -> list[Obj]:
        return [obj for obj in self.objects if obj["kind"] == kind]

    def named(self, kind: str, name: str) -> Obj:
        matches = [obj for obj in self.of_kind(kind) if obj["metadata"]["name"] == name]
        assert len(matches) == 1, f"expected one {kind} named {name!r}, found {len(matches)}"
        return matches[0]

    def component(self, kind: str, component: str) -> list[Obj]:
        return [obj for obj in self.of_kind(kind) if labels(obj).get("app.kubernetes.io/component") == component]

    def workloads(self) -> Iterator[Obj]:
        """Every object that runs pods."""
        for obj in self.objects:
            if obj["kind"] in ("Deployment", "CronJob", "Pod"):
                yield obj

    def config_map_data(self, name: str) -> dict[str, str]:
        data: dict[str, str] = self.named("ConfigMap", name).get("data") or {}
        return data


def labels(obj: Obj) -> dict[str, str]:
    found: dict[str, str] = obj["metadata"].get("labels") or {}
    return found


def pod_template(obj: Obj) -> Obj:
    """The pod (metadata + spec) a Deployment, CronJob or Pod runs."""
    if obj["kind"] == "Deployment":
        template: Obj = obj["spec"]["template"]
        return template
    if obj["kind"] == "CronJob":
        template = obj["spec"]["jobTemplate"]["spec"]["template"]
        return template
    if obj["kind"] == "Pod":
        return obj
    raise ValueError(f"{obj['kind']} runs no pods")


def pod_spec(obj: Obj) -> Obj:
    spec: Obj = pod_template(obj)["spec"]
    return spec


def container(obj: Obj) -> Obj:
    """The single container of a workload (every workload of this chart has exactly one)."""
    containers = pod_spec(obj)["containers"]
    assert len(containers) == 1, f"{obj['metadata']['name']} has {len(containers)} containers"
    first: Obj = containers[0]
    return first


def env_value(obj: Obj, name: str) -> str:
    """A literal environment value of the workload's container."""
    for item in container(obj).get("env", []):
        if item["name"] == name:
            assert "value" in item, f"{name} of {obj['metadata']['name']} is not a literal value"
            value: str = item["value"]
            return value
    raise KeyError(f"{obj['metadata']['name']} sets no {name}")


def render(values: Obj | None = None) -> Manifests:
    """Render the chart as ``helm install`` would (the values schema is checked first) and parse every object."""
    with Chart.load(CHART_DIR) as chart:
        rendered = chart.render(values or {}, name=RELEASE, namespace=NAMESPACE, is_install=True)
    objects: list[Obj] = []
    notes = ""
    for path, text in sorted(rendered.items()):
        if path.endswith("NOTES.txt"):
            notes = text
            continue
        objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return Manifests(objects=objects, notes=notes)

"""The Helm chart, proven without a cluster.

Rendered with the Helm v4 Go SDK (helm-python-sdk), linted strictly, validated against the Kubernetes schemas of the
oldest and newest versions kubernetes-validate knows and against KEDA's CRDs, and checked against what the code
actually reads: settings classes, queue topology, API routes, Dockerfile targets.
"""

from __future__ import annotations

import base64
import json
import os
import re
import tomllib
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import helm_python
import kubernetes_validate
import pytest
import yaml
from fastapi.testclient import TestClient
from kubernetes_validate.utils import all_versions

from jobs.settings import SharedSettings
from jobs.topology import Topology
from tests.chart.crd_schema import CRDS_DIR_ENV, CrdValidator, keda_crds_dir
from tests.chart.manifests import (
    CHART_DIR,
    NAMESPACE,
    REPO_ROOT,
    Manifests,
    Obj,
    container,
    env_value,
    labels,
    pod_spec,
    pod_template,
    render,
)
from tests.chart.settings_env import SETTINGS_OF_COMPONENT, env_names, settings_class
from webhook_api.main import create_app
from webhook_api.settings import ApiSettings
from worker.settings import WorkerSettings

FULLNAME = "bt-batch-translate"
CONFIG_MAP = f"{FULLNAME}-config"

#: Value sets every structural check runs on.
VALUE_SETS: dict[str, Obj] = {
    "defaults": {},
    "gpu-off": {"worker": {"gpu": {"enabled": False}}},
    "keda-off": {"keda": {"enabled": False}},
    "two-models": {
        "models": [
            {"pair": "en-fr"},
            {
                "pair": "de-en",
                "gpu": {"enabled": False},
                "autoscaling": {"minReplicaCount": 1, "maxReplicaCount": 2},
                "settings": {"prefetch": 8},
                "retrain": {"schedule": "0 4 * * 0"},
            },
        ]
    },
    "work-based-scaling": {
        "models": [{"pair": "en-fr"}, {"pair": "en-de"}],
        "worker": {"autoscaling": {"backlog": {"enabled": True, "segmentsPerReplica": 2000}}},
    },
    "everything-on": {
        "image": {"registry": "registry.example.com/mt", "tag": "1.2.3"},
        "imagePullSecrets": [{"name": "regcred"}],
        "callbackAllowlist": ["10.1.2.0/24", "hooks.internal"],
        "mlflow": {"existingSecret": "mlflow-auth"},
        "models": [
            {
                "pair": "en-fr",
                "modelVolume": {"persistentVolumeClaim": {"claimName": "opus-mt-en-fr"}},
                "modelPath": "ct2",
            }
        ],
        "keda": {"rabbitmq": {"vhostName": "batch"}},
        "worker": {"autoscaling": {"backlog": {"enabled": True}}},
        "api": {
            "ingress": {
                "enabled": True,
                "className": "nginx",
                "tls": [{"secretName": "translate-tls", "hosts": ["translate.example.com"]}],
            }
        },
        "retrain": {"gpu": {"enabled": True}, "timeZone": "Europe/Paris"},
        "networkPolicy": {
            "enabled": True,
            "internalEgress": [
                {
                    "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "data"}}}],
                    "ports": [{"port": 5672}, {"port": 5432}],
                }
            ],
        },
    },
}

#: Oldest and newest Kubernetes versions whose schemas kubernetes-validate ships.
KUBERNETES_VERSIONS = [all_versions()[0], kubernetes_validate.latest_version()]

#: Labels a selector may use: none of them changes when the chart or the app is upgraded.
STABLE_SELECTOR_LABELS = {
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/component",
    "batch-translate/pair",
}

#: Values the Secrets hold in a real install, so that settings classes can be built from a rendered environment.
SECRET_PLACEHOLDERS = {
    "BT_BROKER_URL": "amqp://user:pw@rabbitmq:5672/%2F",
    "BT_STORE_URL": "postgresql+psycopg://user:pw@postgresql:5432/jobs",
    "BT_API_API_KEYS": "acme:k3y-for-chart-tests",
    "BT_DELIVERY_WEBHOOK_SECRETS": "acme:whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode(),
    "MLFLOW_TRACKING_USERNAME": "mlflow",
    "MLFLOW_TRACKING_PASSWORD": "pw",
}

GPU_TOLERATION = {"key": "purpose", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}
GPU_MATCH_EXPRESSION = {"key": "purpose", "operator": "In", "values": ["ml"]}


@cache
def rendered(value_set: str) -> Manifests:
    return render(VALUE_SETS[value_set])


def built_in_objects(manifests: Manifests) -> list[Obj]:
    return [obj for obj in manifests.objects if not obj["apiVersion"].startswith("keda.sh/")]


def keda_objects(manifests: Manifests) -> list[Obj]:
    return [obj for obj in manifests.objects if obj["apiVersion"].startswith("keda.sh/")]


def gpu_resources(obj: Obj) -> dict[str, Any]:
    resources = container(obj).get("resources", {})
    return {
        name: amount
        for section in ("limits", "requests")
        for name, amount in resources.get(section, {}).items()
        if "gpu" in name
    }


def requires_gpu_pool(obj: Obj) -> bool:
    spec = pod_spec(obj)
    tolerated = GPU_TOLERATION in spec.get("tolerations", [])
    terms = (
        spec.get("affinity", {})
        .get("nodeAffinity", {})
        .get("requiredDuringSchedulingIgnoredDuringExecution", {})
        .get("nodeSelectorTerms", [])
    )
    required = any(GPU_MATCH_EXPRESSION in term.get("matchExpressions", []) for term in terms)
    return tolerated or required


def container_environment(manifests: Manifests, obj: Obj) -> dict[str, str]:
    """The environment the container starts with: ConfigMaps it loads, literal values, and Secret placeholders."""
    spec = container(obj)
    environment: dict[str, str] = {}
    for source in spec.get("envFrom", []):
        environment.update(manifests.config_map_data(source["configMapRef"]["name"]))
    for item in spec.get("env", []):
        if "value" in item:
            environment[item["name"]] = item["value"]
        else:
            assert "secretKeyRef" in item["valueFrom"], f"{item['name']} comes from neither a value nor a Secret"
            assert item["name"] in SECRET_PLACEHOLDERS, f"no test placeholder for secret-sourced {item['name']}"
            environment[item["name"]] = SECRET_PLACEHOLDERS[item["name"]]
    return environment


def load_settings(monkeypatch: pytest.MonkeyPatch, cls: type[Any], environment: dict[str, str]) -> Any:
    """Build a settings class exactly as its entry point does: from the process environment."""
    for name in list(os.environ):
        if name.upper().startswith("BT_"):
            monkeypatch.delenv(name)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    return cls()


def scaled_target(manifests: Manifests, scaled_object: Obj) -> Obj:
    return manifests.named("Deployment", scaled_object["spec"]["scaleTargetRef"]["name"])


def trigger(scaled_object: Obj, trigger_type: str) -> Obj:
    matches = [t for t in scaled_object["spec"]["triggers"] if t["type"] == trigger_type]
    assert len(matches) == 1, f"{scaled_object['metadata']['name']} has {len(matches)} {trigger_type} triggers"
    return matches[0]


# --------------------------------------------------------------------------------------------------------------
# Lint, schema, Kubernetes and KEDA validation
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_chart_lints_without_warnings_when_strict(value_set: str) -> None:
    report = helm_python.lint(CHART_DIR, VALUE_SETS[value_set], strict=True)

    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["errors"] == [] and problems == [], report


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_values_schema_accepts_values_when_value_set_is_supported(value_set: str) -> None:
    with helm_python.Chart.load(CHART_DIR) as chart:
        chart.validate_schema(chart.merge_values(VALUE_SETS[value_set]))


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"models": [{"pair": "english-french"}]}, "/models/0/pair"),
        ({"models": []}, "/models"),
        ({"keda": {"rabbitmq": {"protocol": "tcp"}}}, "/keda/rabbitmq/protocol"),
        ({"worker": {"gpus": 1}}, "'gpus' not allowed"),
        ({"worker": {"autoscaling": {"minReplicaCount": -1}}}, "/worker/autoscaling/minReplicaCount"),
        ({"worker": {"autoscaling": {"queueLength": "20"}}}, "/worker/autoscaling/queueLength"),
        ({"worker": {"settings": {"prefetch": 0}}}, "/worker/settings/prefetch"),
        ({"models": [{"pair": "en-fr", "retrain": {"gpu": {"enabled": True}}}]}, "'gpu' not allowed"),
        ({"rabbitmq": {"existingSecret": "Not_A_Name"}}, "/rabbitmq/existingSecret"),
    ],
    ids=[
        "bad-pair",
        "no-models",
        "bad-protocol",
        "unknown-key",
        "negative-min",
        "string-count",
        "zero-prefetch",
        "retrain-override-outside-schema",
        "bad-secret-name",
    ],
)
def test_values_schema_rejects_value_naming_its_path_when_value_is_bad(values: Obj, message: str) -> None:
    with helm_python.Chart.load(CHART_DIR) as chart, pytest.raises(helm_python.HelmValuesError) as raised:
        chart.render(values, name="bt", namespace=NAMESPACE, is_install=True)

    assert message in str(raised.value)


def test_chart_refuses_to_render_when_a_pair_is_listed_twice() -> None:
    # Resource names are lower case: pairs that differ only in case would collide.
    values = {"models": [{"pair": "en-pt-BR"}, {"pair": "en-pt-br", "gpu": {"enabled": False}}]}

    with pytest.raises(helm_python.HelmRenderError, match="pair en-pt-br is listed more than once"):
        render(values)


def test_chart_refuses_to_render_when_grace_period_is_not_longer_than_drain_timeout() -> None:
    values = {"worker": {"terminationGracePeriodSeconds": 300, "settings": {"drainTimeoutS": 300}}}

    with pytest.raises(
        helm_python.HelmRenderError, match=re.escape("must be longer than worker.settings.drainTimeoutS")
    ):
        render(values)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_built_in_objects_validate_strictly_when_checked_against_kubernetes_version(
    value_set: str, version: str
) -> None:
    objects = built_in_objects(rendered(value_set))
    errors = []
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(map(str, exc.path))
            errors.append(f"{obj['kind']}/{obj['metadata']['name']} at {path}: {exc.message}")

    assert objects and errors == []


@pytest.fixture(scope="module")
def keda_crds() -> CrdValidator:
    crds_dir = keda_crds_dir()
    if not crds_dir.is_dir():
        pytest.skip(f"KEDA CRDs not found at {crds_dir} (set {CRDS_DIR_ENV} to the folder of KEDA's CRD YAML files)")
    return CrdValidator(crds_dir)


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_keda_objects_validate_strictly_when_checked_against_keda_crds(value_set: str, keda_crds: CrdValidator) -> None:
    objects = keda_objects(rendered(value_set))

    errors = [error for obj in objects for error in keda_crds.errors(obj)]

    if value_set == "keda-off":
        assert objects == []
    else:
        assert {obj["kind"] for obj in objects} == {"ScaledObject", "TriggerAuthentication"}
        assert errors == []


def test_keda_objects_are_gated_on_values_when_templates_read() -> None:
    sources = "".join(path.read_text() for path in (CHART_DIR / "templates").rglob("*") if path.is_file())

    assert ".Capabilities" not in sources


# --------------------------------------------------------------------------------------------------------------
# Labels, replicas, scheduling, probes
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value_set", ["defaults", "two-models", "everything-on"])
def test_selectors_use_only_stable_labels_when_rendered(value_set: str) -> None:
    manifests = rendered(value_set)
    selectors: list[tuple[str, dict[str, str]]] = []
    for obj in manifests.of_kind("Deployment") + manifests.of_kind("PodDisruptionBudget"):
        selectors.append((obj["metadata"]["name"], obj["spec"]["selector"]["matchLabels"]))
    for obj in manifests.of_kind("Service"):
        selectors.append((obj["metadata"]["name"], obj["spec"]["selector"]))
    for obj in manifests.of_kind("NetworkPolicy"):
        selectors.append((obj["metadata"]["name"], obj["spec"]["podSelector"]["matchLabels"]))

    for name, selector in selectors:
        assert set(selector) <= STABLE_SELECTOR_LABELS, f"{name} selects on unstable labels {set(selector)}"
    for deployment in manifests.of_kind("Deployment"):
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert selector.items() <= labels(pod_template(deployment)).items()
        others = [d for d in manifests.of_kind("Deployment") if d is not deployment]
        for other in others:
            assert not selector.items() <= labels(pod_template(other)).items(), (
                f"{deployment['metadata']['name']} would also select the pods of {other['metadata']['name']}"
            )


@pytest.mark.parametrize("value_set", ["defaults", "two-models", "work-based-scaling"])
def test_scaled_deployments_have_no_replicas_when_keda_enabled(value_set: str) -> None:
    manifests = rendered(value_set)
    scaled = {obj["spec"]["scaleTargetRef"]["name"] for obj in manifests.of_kind("ScaledObject")}
    workers = manifests.component("Deployment", "worker") + manifests.component("Deployment", "delivery")

    assert scaled == {obj["metadata"]["name"] for obj in workers}
    assert all("replicas" not in obj["spec"] for obj in workers)


def test_worker_deployments_run_fixed_replicas_when_keda_disabled() -> None:
    manifests = rendered("keda-off")
    workers = manifests.component("Deployment", "worker") + manifests.component("Deployment", "delivery")

    assert manifests.of_kind("ScaledObject") == []
    assert workers and all(obj["spec"]["replicas"] >= 1 for obj in workers)


def test_gpu_scheduling_applies_to_workers_only_when_gpu_enabled() -> None:
    manifests = rendered("defaults")
    workers = manifests.component("Deployment", "worker")
    others = manifests.component("Deployment", "api") + manifests.component("Deployment", "delivery")

    for worker in workers:
        assert gpu_resources(worker) == {"nvidia.com/gpu": 1}
        assert requires_gpu_pool(worker)
        assert GPU_TOLERATION in pod_spec(worker)["tolerations"]
        assert env_value(worker, "BT_WORKER_DEVICE") == "cuda"
    for obj in others + manifests.of_kind("CronJob"):
        assert gpu_resources(obj) == {} and not requires_gpu_pool(obj), obj["metadata"]["name"]


def test_gpu_scheduling_is_absent_when_gpu_disabled() -> None:
    manifests = rendered("gpu-off")

    for worker in manifests.component("Deployment", "worker"):
        assert gpu_resources(worker) == {}
        assert not requires_gpu_pool(worker)
        assert env_value(worker, "BT_WORKER_DEVICE") == "cpu"
        assert env_value(worker, "BT_WORKER_COMPUTE_TYPE") == "int8"


def test_gpu_scheduling_follows_values_when_node_pool_overridden() -> None:
    toleration = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "cloud.google.com/gke-accelerator", "operator": "Exists"}]}
                ]
            }
        }
    }

    manifests = render({"gpuNodePool": {"tolerations": [toleration], "affinity": affinity}})

    (worker,) = manifests.component("Deployment", "worker")
    assert pod_spec(worker)["tolerations"] == [toleration]
    assert pod_spec(worker)["affinity"] == affinity


def test_per_model_overrides_apply_key_by_key_when_false_or_zero() -> None:
    manifests = rendered("two-models")
    by_pair = {labels(obj)["batch-translate/pair"]: obj for obj in manifests.component("Deployment", "worker")}
    scaling = {
        labels(obj)["batch-translate/pair"]: obj["spec"] for obj in manifests.component("ScaledObject", "worker")
    }

    assert requires_gpu_pool(by_pair["en-fr"]) and not requires_gpu_pool(by_pair["de-en"])
    assert env_value(by_pair["de-en"], "BT_WORKER_PREFETCH") == "8"
    assert env_value(by_pair["de-en"], "BT_WORKER_MAX_BATCH_TOKENS") == env_value(
        by_pair["en-fr"], "BT_WORKER_MAX_BATCH_TOKENS"
    )
    assert (scaling["en-fr"]["minReplicaCount"], scaling["en-fr"]["maxReplicaCount"]) == (0, 4)
    assert (scaling["de-en"]["minReplicaCount"], scaling["de-en"]["maxReplicaCount"]) == (1, 2)


@pytest.mark.parametrize("value_set", ["defaults", "gpu-off", "two-models"])
def test_worker_probes_and_grace_period_protect_jobs_when_rendered(value_set: str) -> None:
    for worker in rendered(value_set).component("Deployment", "worker"):
        spec = pod_spec(worker)
        main = container(worker)
        startup, readiness, liveness = main["startupProbe"], main["readinessProbe"], main["livenessProbe"]
        drain_timeout_s = float(env_value(worker, "BT_WORKER_DRAIN_TIMEOUT_S"))

        # Given a model download before the first /readyz, the startup probe waits at least 10 minutes.
        assert startup["httpGet"]["path"] == "/readyz"
        assert startup["periodSeconds"] * startup["failureThreshold"] >= 600
        assert readiness["httpGet"]["path"] == "/readyz"
        assert liveness["httpGet"]["path"] == "/healthz"
        assert {p["httpGet"]["port"] for p in (startup, readiness, liveness)} == {"metrics"}
        # SIGTERM drains in-flight jobs; Kubernetes must not kill the worker before that finishes.
        assert spec["terminationGracePeriodSeconds"] > drain_timeout_s
        assert worker["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_api_has_probes_service_disruption_budget_and_ingress_when_enabled() -> None:
    manifests = rendered("everything-on")
    (api,) = manifests.component("Deployment", "api")
    service = manifests.named("Service", f"{FULLNAME}-api")
    budget = manifests.named("PodDisruptionBudget", f"{FULLNAME}-api")
    ingress = manifests.named("Ingress", f"{FULLNAME}-api")

    assert container(api)["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container(api)["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    assert budget["spec"]["selector"]["matchLabels"] == api["spec"]["selector"]["matchLabels"]
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": service["metadata"]["name"], "port": {"name": "http"}}
    assert "Ingress" not in {obj["kind"] for obj in rendered("defaults").objects}


def test_retrain_cronjobs_run_one_at_a_time_per_model_when_two_models() -> None:
    manifests = rendered("two-models")
    cronjobs = {labels(obj)["batch-translate/pair"]: obj for obj in manifests.of_kind("CronJob")}

    assert set(cronjobs) == {"en-fr", "de-en"}
    for pair, cronjob in cronjobs.items():
        spec = cronjob["spec"]
        assert spec["concurrencyPolicy"] == "Forbid"
        assert spec["startingDeadlineSeconds"] > 0
        assert spec["jobTemplate"]["spec"]["activeDeadlineSeconds"] > 0
        assert spec["successfulJobsHistoryLimit"] >= 1 and spec["failedJobsHistoryLimit"] >= 1
        assert container(cronjob)["command"] == ["python", "-m", "retrain", "run", "--pair", pair]
        assert gpu_resources(cronjob) == {} and not requires_gpu_pool(cronjob)
    assert cronjobs["de-en"]["spec"]["schedule"] == "0 4 * * 0"


def test_retrain_cronjob_requests_gpu_pool_when_retrain_gpu_enabled() -> None:
    (cronjob,) = rendered("everything-on").of_kind("CronJob")

    assert gpu_resources(cronjob) == {"nvidia.com/gpu": 1}
    assert requires_gpu_pool(cronjob)


def test_delivery_network_policy_keeps_egress_off_internal_ranges_when_enabled() -> None:
    manifests = rendered("everything-on")
    (policy,) = manifests.of_kind("NetworkPolicy")
    (delivery,) = manifests.component("Deployment", "delivery")
    ip_blocks = [
        peer["ipBlock"] for rule in policy["spec"]["egress"] for peer in rule.get("to", []) if "ipBlock" in peer
    ]
    internal = {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "127.0.0.0/8"}

    assert policy["spec"]["podSelector"]["matchLabels"] == delivery["spec"]["selector"]["matchLabels"]
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    ipv4_any = [block for block in ip_blocks if block["cidr"] == "0.0.0.0/0"]
    assert len(ipv4_any) == 1 and internal <= set(ipv4_any[0]["except"])
    assert "NetworkPolicy" not in {obj["kind"] for obj in rendered("defaults").objects}


def test_helm_test_pod_calls_api_readiness_when_rendered() -> None:
    manifests = rendered("defaults")
    (pod,) = manifests.of_kind("Pod")
    service = manifests.named("Service", f"{FULLNAME}-api")

    url = container(pod)["command"][-1]
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert url == f"http://{service['metadata']['name']}:{service['spec']['ports'][0]['port']}/readyz"


def test_chart_renders_no_credentials_when_every_secret_configured() -> None:
    manifests = rendered("everything-on")
    text = yaml.safe_dump_all(manifests.objects)

    assert manifests.of_kind("Secret") == []
    for obj in manifests.workloads():
        for item in container(obj).get("env", []):
            if item["name"] in SECRET_PLACEHOLDERS:
                assert "secretKeyRef" in item.get("valueFrom", {}), f"{item['name']} must come from a Secret"
    assert not re.search(r"://[^/\s:@]+:[^/\s@]+@", text), "a URL with credentials was rendered"


# --------------------------------------------------------------------------------------------------------------
# KEDA triggers against what the workers consume
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value_set", ["defaults", "two-models", "everything-on"])
def test_rabbitmq_triggers_watch_the_queue_each_worker_consumes_when_keda_enabled(
    value_set: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifests = rendered(value_set)
    scaled_objects = manifests.of_kind("ScaledObject")
    (auth,) = manifests.of_kind("TriggerAuthentication")

    assert scaled_objects
    for scaled_object in scaled_objects:
        target = scaled_target(manifests, scaled_object)
        component = labels(target)["app.kubernetes.io/component"]
        queue_trigger = trigger(scaled_object, "rabbitmq")
        metadata = queue_trigger["metadata"]
        environment = container_environment(manifests, target)
        if component == "worker":
            settings = load_settings(monkeypatch, WorkerSettings, environment)
            consumed = Topology(prefix=settings.queue_prefix).queue(settings.pair)
        else:
            settings = load_settings(monkeypatch, SharedSettings, environment)
            consumed = settings.delivery_queue

        assert metadata["queueName"] == consumed
        assert metadata["protocol"] == "http" and metadata["mode"] == "QueueLength"
        assert "activationValue" in metadata
        assert all(isinstance(value, str) for value in metadata.values())
        assert queue_trigger["authenticationRef"]["name"] == auth["metadata"]["name"]
        assert scaled_object["spec"]["minReplicaCount"] >= 0
    assert auth["spec"]["secretTargetRef"] == [
        {"parameter": "host", "name": f"{FULLNAME}-rabbitmq", "key": "management-url"}
    ]


def test_worker_cooldown_outlasts_a_long_job_when_scaling_to_zero() -> None:
    manifests = rendered("defaults")

    for scaled_object in manifests.component("ScaledObject", "worker"):
        target = scaled_target(manifests, scaled_object)
        assert scaled_object["spec"]["minReplicaCount"] == 0
        assert scaled_object["spec"]["cooldownPeriod"] >= pod_spec(target)["terminationGracePeriodSeconds"]


def test_trigger_authentication_uses_amqp_url_when_protocol_is_amqp() -> None:
    manifests = render({"keda": {"rabbitmq": {"protocol": "amqp"}}})
    (auth,) = manifests.of_kind("TriggerAuthentication")

    assert auth["spec"]["secretTargetRef"][0]["key"] == "amqp-url"
    assert "busy workers can be scaled away" in manifests.notes


def test_backlog_trigger_reads_queued_segments_from_api_when_work_based_scaling_enabled(tmp_path: Path) -> None:
    manifests = rendered("work-based-scaling")
    service = manifests.named("Service", f"{FULLNAME}-api")
    (api,) = manifests.component("Deployment", "api")
    workers = manifests.component("ScaledObject", "worker")
    # Given the real API app on a SQLite job store, serving the pairs the chart configures
    settings = ApiSettings(
        store_url=f"sqlite:///{tmp_path / 'jobs.db'}",
        api_keys=[SECRET_PLACEHOLDERS["BT_API_API_KEYS"]],
        pairs=env_value(api, "BT_PAIRS").split(","),
    )

    # When KEDA's metrics-api scaler asks it for the backlog
    with TestClient(create_app(settings)) as client:
        answer = client.get("/backlog")

    # Then every worker's trigger finds its pair's queued segments at its valueLocation
    assert answer.status_code == 200
    assert len(workers) == 2
    for scaled_object in workers:
        metadata = trigger(scaled_object, "metrics-api")["metadata"]
        pair = labels(scaled_object)["batch-translate/pair"]
        value: Any = answer.json()
        for key in metadata["valueLocation"].split("."):
            value = value[key]
        assert isinstance(value, int)
        assert metadata["valueLocation"] == f"pairs.{pair}.queued_segments"
        assert metadata["url"] == (
            f"http://{service['metadata']['name']}.{NAMESPACE}.svc:{service['spec']['ports'][0]['port']}/backlog"
        )
        assert metadata["targetValue"] == "2000" and "activationTargetValue" in metadata
    assert all(len(obj["spec"]["triggers"]) == 1 for obj in rendered("defaults").of_kind("ScaledObject"))


def test_api_answers_every_path_the_chart_probes_when_app_built(tmp_path: Path) -> None:
    manifests = rendered("everything-on")
    (api,) = manifests.component("Deployment", "api")
    (pod,) = manifests.of_kind("Pod")
    probes = {probe: container(api)[probe]["httpGet"]["path"] for probe in ("livenessProbe", "readinessProbe")}
    settings = ApiSettings(store_url=f"sqlite:///{tmp_path / 'jobs.db'}", api_keys=["acme:k3y-for-chart-tests"])

    with TestClient(create_app(settings)) as client:
        liveness = client.get(probes["livenessProbe"])
        readiness = client.get(probes["readinessProbe"])

    assert liveness.status_code == 200
    # Ready or not depends on the broker here; either way the path is the readiness endpoint.
    assert readiness.status_code in (200, 503) and "ready" in readiness.json()
    assert urlsplit(container(pod)["command"][-1]).path == probes["readinessProbe"]


# --------------------------------------------------------------------------------------------------------------
# One source of truth: settings classes, ports, image names and tags
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("component", list(SETTINGS_OF_COMPONENT))
def test_env_names_are_read_by_the_settings_class_when_component_rendered(
    component: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cls = settings_class(component)
    if cls is None:
        module, name = SETTINGS_OF_COMPONENT[component]
        pytest.skip(f"{module} does not exist yet: {component} env names cannot be checked against {name}")
    manifests = rendered("everything-on")
    workloads = [obj for obj in manifests.workloads() if labels(obj).get("app.kubernetes.io/component") == component]

    assert workloads
    for obj in workloads:
        environment = container_environment(manifests, obj)
        unknown = {name for name in environment if name.startswith("BT_")} - env_names(cls)
        assert not unknown, f"{obj['metadata']['name']} sets {sorted(unknown)}, which {cls.__name__} never reads"
        # And the settings class accepts every value the chart renders
        load_settings(monkeypatch, cls, environment)


def test_ports_match_settings_when_defaults_rendered(monkeypatch: pytest.MonkeyPatch) -> None:
    manifests = rendered("defaults")
    (api,) = manifests.component("Deployment", "api")
    api_settings = load_settings(monkeypatch, ApiSettings, container_environment(manifests, api))
    (worker,) = manifests.component("Deployment", "worker")
    worker_settings = load_settings(monkeypatch, WorkerSettings, container_environment(manifests, worker))

    assert container(api)["ports"] == [{"name": "http", "containerPort": api_settings.port, "protocol": "TCP"}]
    assert api_settings.port == ApiSettings.model_fields["port"].default
    assert container(worker)["ports"] == [
        {"name": "metrics", "containerPort": worker_settings.metrics_port, "protocol": "TCP"}
    ]
    assert worker_settings.metrics_port == WorkerSettings.model_fields["metrics_port"].default


def test_worker_settings_schema_mirrors_worker_settings_when_compared() -> None:
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    settings_schema = schema["definitions"]["workerSettings"]["properties"]
    fields_schema = WorkerSettings.model_json_schema()["properties"]
    model_schema = schema["properties"]["models"]["items"]["properties"]

    assert model_schema["pair"]["pattern"] == fields_schema["pair"]["pattern"]
    for key, value_schema in settings_schema.items():
        field = re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()
        assert field in fields_schema, f"worker.settings.{key} is no WorkerSettings field"
        if "minimum" in fields_schema[field]:
            assert value_schema.get("minimum") == fields_schema[field]["minimum"], key


def test_images_match_dockerfile_targets_and_package_version_when_defaults_rendered() -> None:
    manifests = rendered("defaults")
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    stages = dict(re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)\s*\n(.*?)(?=^FROM\s|\Z)", dockerfile, re.M | re.S))
    version = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]
    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())

    assert chart["appVersion"] == version
    for obj in manifests.workloads():
        component = labels(obj)["app.kubernetes.io/component"]
        target = "api" if component == "test" else component
        main = container(obj)
        repository, tag = main["image"].rsplit(":", 1)
        assert (repository, tag) == (f"batch-translate-{target}", version)
        stage = stages[target]
        user = re.search(r"^USER\s+(\d+)", stage, re.M)
        assert user and int(user.group(1)) == pod_spec(obj)["securityContext"]["runAsUser"]
        entry = re.findall(r"^(?:ENTRYPOINT|CMD)\s+(\[.*\])", stage, re.M)
        if component != "test":
            assert main["command"][: len(json.loads(entry[0]))] == json.loads(entry[0]), target
    exposed = {target: re.findall(r"^EXPOSE\s+(\d+)", body, re.M) for target, body in stages.items()}
    assert exposed["api"] == [str(ApiSettings.model_fields["port"].default)]
    assert exposed["worker"] == [str(WorkerSettings.model_fields["metrics_port"].default)]


def test_every_value_is_documented_when_values_yaml_read() -> None:
    lines = (CHART_DIR / "values.yaml").read_text().splitlines()
    documented: list[tuple[int, bool]] = []  # (indent, documented) of the open keys above the current line
    undocumented = []
    for number, line in enumerate(lines):
        match = re.match(r"^(\s*)([A-Za-z][\w.-]*):(.*)$", line)
        if not match:
            continue
        indent, key, rest = len(match.group(1)), match.group(2), match.group(3).strip()
        comments = []
        previous = number - 1
        while previous >= 0 and lines[previous].strip().startswith("#"):
            comments.append(lines[previous].strip())
            previous -= 1
        while documented and documented[-1][0] >= indent:
            documented.pop()
        covered = any(doc for _, doc in documented)
        has_doc = any(comment.startswith("# --") for comment in comments)
        is_leaf = rest != "" or number + 1 == len(lines) or lines[number + 1].lstrip().startswith("-")
        if is_leaf and not (has_doc or covered):
            undocumented.append(f"line {number + 1}: {key}")
        documented.append((indent, has_doc or covered))

    assert undocumented == []

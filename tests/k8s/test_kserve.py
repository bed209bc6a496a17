"""k8s/kserve: the KServe variant renders, validates strictly (ServingRuntime, InferenceService and PodMonitor against
the vendored CRD excerpts, their embedded Kubernetes types and everything else against Kubernetes' own schemas), and
builds the same pod as the plain CPU overlay: image, ports, probes, resources, shutdown, security, settings."""

import copy
import json

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.k8s.test_manifests import K8S, K8S_VERSION, closed, container, kustomize, one, render

CRDS = {
    "ServingRuntime": "serving.kserve.io_servingruntimes.yaml",
    "InferenceService": "serving.kserve.io_inferenceservices.yaml",
    "PodMonitor": "monitoring.coreos.com_podmonitors.yaml",
}
# KServe's model spec: its own fields; the rest of predictor.model is a core/v1 Container, inline.
MODEL_FIELDS = {"modelFormat", "runtime", "protocolVersion", "runtimeVersion", "storage", "storageUri"}
# KServe's ComponentExtensionSpec and framework fields on the predictor; the rest is a core/v1 PodSpec, inline.
COMPONENT_FIELDS = {
    "annotations", "autoScaling", "batcher", "canaryTrafficPercent", "containerConcurrency", "deploymentStrategy",
    "labels", "logger", "maxReplicas", "minReplicas", "scaleMetric", "scaleMetricType", "scaleTarget", "timeout",
    "model", "workerSpec", "storageUris",
}  # fmt: skip


def kserve() -> list[dict]:
    return copy.deepcopy(kustomize("kserve"))  # a copy: tests change it


def crd_schema(kind: str) -> tuple[str, dict]:
    crd = yaml.safe_load((K8S / "schemas" / CRDS[kind]).read_text())
    (version,) = crd["spec"]["versions"]
    return f"{crd['spec']['group']}/{version['name']}", closed(version["schema"]["openAPIV3Schema"])


def kserve_pod(docs: list[dict]) -> dict:
    """The pod KServe's controller builds: the runtime's pod fields and container, the InferenceService's
    `predictor.model` container fields over the runtime container's (a simplified form of KServe's merge: no field here
    is set on both sides), and the predictor's inline PodSpec fields."""
    runtime = one(docs, "ServingRuntime")["spec"]
    predictor = one(docs, "InferenceService")["spec"]["predictor"]
    (base,) = runtime["containers"]
    model = {k: v for k, v in predictor["model"].items() if k not in MODEL_FIELDS}
    assert not set(model) & set(base), "fields set on both the runtime and the model: check KServe's merge"
    pod_spec = {k: v for k, v in predictor.items() if k not in COMPONENT_FIELDS}
    pod_spec.update(containers=[{**base, **model}], volumes=runtime.get("volumes", []))
    for field in ("nodeSelector", "tolerations", "affinity"):
        if field in runtime:
            pod_spec[field] = runtime[field]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "audio-classifier-predictor-0", "labels": predictor.get("labels", {})},
        "spec": pod_spec,
    }


def test_kserve_renders_the_expected_objects():
    kinds = sorted(d["kind"] for d in kserve())
    assert kinds == sorted(
        [
            "Namespace",
            "ServiceAccount",
            "ConfigMap",
            "NetworkPolicy",
            "PodDisruptionBudget",
            "ServingRuntime",
            "InferenceService",
            "PodMonitor",
        ]
    )
    assert {d["metadata"].get("namespace", "audioclf") for d in kserve()} == {"audioclf"}


def test_kserve_validates_strictly():
    docs = kserve()
    for doc in docs:
        if doc["kind"] in CRDS:
            api_version, schema = crd_schema(doc["kind"])
            assert doc["apiVersion"] == api_version
            jsonschema.validate(doc, schema)
        else:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    # the embedded Kubernetes types, reduced to `type: object` in the excerpts
    kubernetes_validate.validate(kserve_pod(docs), K8S_VERSION, strict=True)


def test_kserve_validation_catches_wrong_fields():
    docs = kserve()
    runtime = copy.deepcopy(one(docs, "ServingRuntime"))
    runtime["spec"]["protocolVersion"] = ["v2"]  # the runtime's field is protocolVersions
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(runtime, crd_schema("ServingRuntime")[1])
    isvc = copy.deepcopy(one(docs, "InferenceService"))
    isvc["spec"]["predictor"]["model"]["format"] = {"name": "audioclf"}  # it is modelFormat
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(isvc, crd_schema("InferenceService")[1])
    isvc = copy.deepcopy(one(docs, "InferenceService"))
    isvc["spec"]["predictor"]["scaleMetric"] = "requests"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(isvc, crd_schema("InferenceService")[1])
    pod = kserve_pod(docs)
    pod["spec"]["containers"][0]["readinessProbe"]["httpGet"]["paht"] = "/readyz"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(pod, K8S_VERSION, strict=True)


def test_inference_service_uses_the_runtime():
    docs = kserve()
    runtime, isvc = one(docs, "ServingRuntime"), one(docs, "InferenceService")
    model = isvc["spec"]["predictor"]["model"]
    assert model["runtime"] == runtime["metadata"]["name"]
    formats = {(f["name"], f.get("version")) for f in runtime["spec"]["supportedModelFormats"]}
    assert (model["modelFormat"]["name"], model["modelFormat"].get("version")) in formats
    assert not any(f.get("autoSelect") for f in runtime["spec"]["supportedModelFormats"])
    # Open Inference Protocol over gRPC and REST (the /v2 routes), and the model's choice among them
    assert set(runtime["spec"]["protocolVersions"]) == {"grpc-v2", "v2"}
    assert model["protocolVersion"] in runtime["spec"]["protocolVersions"]
    (c,) = runtime["spec"]["containers"]
    assert c["name"] == "kserve-container"
    # raw (Standard) mode: a Deployment with both ports; Knative would allow one
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "RawDeployment"
    # kustomize wrote the generated ConfigMap's hashed name into the InferenceService
    (source,) = model["envFrom"]
    assert source["configMapRef"]["name"] == one(docs, "ConfigMap")["metadata"]["name"]
    assert "storageUri" not in model  # the model is inside the image


def test_kserve_pod_matches_the_plain_deployment():
    """Same container (image, ports, probes, lifecycle, resources, security, mounts) and pod settings as the CPU
    overlay's Deployment, whose ports, probe paths and gRPC health service tests/k8s/test_manifests.py checks against
    the settings and the real server. Probe ports are numbers here (KServe may rename ports), names there."""
    cpu = render("cpu")
    plain, pod = container(cpu), kserve_pod(kserve())
    (c,) = pod["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in plain["ports"]}
    assert [p["name"] for p in c["ports"]] == ["http", "grpc"]  # KServe's Service sends port 80 to the first one
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == ports

    def numeric(probe: dict) -> dict:
        probe = json.loads(json.dumps(probe))
        if "httpGet" in probe and isinstance(probe["httpGet"]["port"], str):
            probe["httpGet"]["port"] = ports[probe["httpGet"]["port"]]
        return probe

    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert numeric(c[probe]) == numeric(plain[probe]), probe
    for field in ("image", "imagePullPolicy", "lifecycle", "resources", "securityContext", "volumeMounts"):
        assert c[field] == plain[field], field
    assert c["envFrom"] == [{"configMapRef": {"name": one(cpu, "ConfigMap")["metadata"]["name"]}}]
    assert one(kserve(), "ConfigMap")["data"] == one(cpu, "ConfigMap")["data"]
    plain_pod = one(cpu, "Deployment")["spec"]["template"]["spec"]
    for field in (
        "serviceAccountName",
        "automountServiceAccountToken",
        "enableServiceLinks",
        "terminationGracePeriodSeconds",
        "securityContext",
        "volumes",
    ):
        assert pod["spec"][field] == plain_pod[field], field
    predictor = one(kserve(), "InferenceService")["spec"]["predictor"]
    strategy = one(cpu, "Deployment")["spec"]["strategy"]
    assert predictor["deploymentStrategy"] == strategy
    hpa = one(cpu, "HorizontalPodAutoscaler")["spec"]
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (hpa["minReplicas"], hpa["maxReplicas"])
    cpu_target = next(m["resource"]["target"] for m in hpa["metrics"] if m["type"] == "Resource")
    assert (predictor["scaleMetric"], predictor["scaleTarget"]) == ("cpu", cpu_target["averageUtilization"])
    assert predictor["timeout"] == int(one(cpu, "ConfigMap")["data"]["AUDIOCLF_REQUEST_TIMEOUT_S"])


def test_policies_and_monitor_select_the_kserve_pods():
    docs = kserve()
    labels = kserve_pod(docs)["metadata"]["labels"]
    for selector in (
        one(docs, "NetworkPolicy")["spec"]["podSelector"]["matchLabels"],
        one(docs, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
        one(docs, "PodMonitor")["spec"]["selector"]["matchLabels"],
    ):
        assert selector.items() <= labels.items()
    (endpoint,) = one(docs, "PodMonitor")["spec"]["podMetricsEndpoints"]
    (c,) = kserve_pod(docs)["spec"]["containers"]
    assert endpoint["port"] in {p["name"] for p in c["ports"]} and endpoint["path"] == "/metrics"
    ingress_ports = {p["port"] for p in one(docs, "NetworkPolicy")["spec"]["ingress"][0]["ports"]}
    assert ingress_ports == {p["name"] for p in c["ports"]}

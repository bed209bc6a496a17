"""k8s/: every overlay renders with kustomize, validates strictly against the Kubernetes 1.37 schemas (the
ServiceMonitor against the vendored CRD schema), passes checkov, and names the ports, paths, settings, health service
and metrics that the real service uses (checked against the running server where it matters)."""

import json
import subprocess
import sys
from functools import cache
from pathlib import Path

import grpc
import jsonschema
import kubernetes_validate
import pytest
import requests
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from service.grpc_oip import OIP_SERVICE
from service.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
OVERLAYS = ("cpu", "gpu")
KUBECTL = Path(sys.executable).parent / "kubectl"
CHECKOV = ROOT / ".venv-tools" / "bin" / "checkov"
K8S_VERSION = "1.37.0"
SITE = Path(jsonschema.__file__).resolve().parents[1]  # this venv's site-packages

# Variables in the manifests that are not AUDIOCLF_* settings: the package that reads each, and the installed
# files in which that package's code names it (so a typo or a variable nothing reads fails the test).
STACK_ENV = {
    "BENTOML_HOME": "bentoml/_internal/configuration/containers.py",
    "BENTOML_DO_NOT_TRACK": "bentoml/_internal/utils/analytics/usage_stats.py",
    "NUMBA_CACHE_DIR": "numba/core/config.py",
    "OMP_NUM_THREADS": "scikit_learn.libs/libgomp-*.so*",
    "TF_NUM_INTRAOP_THREADS": "tensorflow/libtensorflow_framework.so.2",
    "TF_NUM_INTEROP_THREADS": "tensorflow/libtensorflow_framework.so.2",
    "TF_CPP_MIN_LOG_LEVEL": "tensorflow/libtensorflow_framework.so.2",
    "TF_FORCE_GPU_ALLOW_GROWTH": "tensorflow/libtensorflow_framework.so.2",
}


@cache
def kustomize(folder: str) -> list[dict]:
    """`kubectl kustomize k8s/<folder>`, parsed."""
    out = subprocess.run([str(KUBECTL), "kustomize", str(K8S / folder)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def render(overlay: str) -> list[dict]:
    return kustomize(f"overlays/{overlay}")


def one(docs: list[dict], kind: str) -> dict:
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, f"{len(found)} {kind} objects"
    return found[0]


def container(docs: list[dict]) -> dict:
    (c,) = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    return c


def configmap_env(docs: list[dict]) -> dict[str, str]:
    return one(docs, "ConfigMap")["data"]


def closed(schema):
    """The CRD schema as the API server applies it to our own objects, strictly: unknown fields are errors."""
    if isinstance(schema, dict):
        schema = {k: closed(v) for k, v in schema.items()}
        if "properties" in schema and "additionalProperties" not in schema:
            schema["additionalProperties"] = False
    elif isinstance(schema, list):
        schema = [closed(v) for v in schema]
    return schema


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_the_expected_objects(overlay):
    kinds = sorted(d["kind"] for d in render(overlay))
    assert kinds == sorted(
        [
            "Namespace",
            "ServiceAccount",
            "ConfigMap",
            "Service",
            "Deployment",
            "HorizontalPodAutoscaler",
            "PodDisruptionBudget",
            "NetworkPolicy",
            "ServiceMonitor",
        ]
    )
    assert {d["metadata"].get("namespace", "audioclf") for d in render(overlay)} == {"audioclf"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_validates_strictly(overlay):
    crd = yaml.safe_load((K8S / "schemas" / "monitoring.coreos.com_servicemonitors.yaml").read_text())
    monitor_schema = closed(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
    for doc in render(overlay):
        if doc["kind"] == "ServiceMonitor":
            assert doc["apiVersion"] == f"{crd['spec']['group']}/{crd['spec']['versions'][0]['name']}"
            jsonschema.validate(doc, monitor_schema)
        else:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_strict_validation_catches_a_wrong_field():
    """The validators would notice a mistake (a misspelt field in a Deployment and in a ServiceMonitor)."""
    deployment = json.loads(json.dumps(one(render("cpu"), "Deployment")))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)
    crd = yaml.safe_load((K8S / "schemas" / "monitoring.coreos.com_servicemonitors.yaml").read_text())
    monitor = json.loads(json.dumps(one(render("cpu"), "ServiceMonitor")))
    monitor["spec"]["endpoints"][0]["intervall"] = "15s"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(monitor, closed(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]))


def test_checkov_passes_every_overlay(tmp_path):
    """checkov's Kubernetes checks on the rendered overlays: no failure; every skip carries its reason in place."""
    for overlay in OVERLAYS:
        (tmp_path / f"{overlay}.yaml").write_text(yaml.safe_dump_all(render(overlay)))
    out = subprocess.run(
        [str(CHECKOV), "-d", str(tmp_path), "--framework", "kubernetes", "--skip-download", "--compact", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = json.loads(out.stdout)
    assert report["check_type"] == "kubernetes"
    summary = report["summary"]
    failed = [(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]]
    assert summary["failed"] == 0, failed
    assert summary["parsing_errors"] == 0
    assert summary["passed"] > 50 * len(OVERLAYS)
    assert summary["resource_count"] == 10 * len(OVERLAYS)
    for skipped in report["results"]["skipped_checks"]:
        assert len(skipped["check_result"]["suppress_comment"]) > 30, skipped["check_id"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_env_names_are_settings_or_read_by_the_stack(overlay, monkeypatch):
    docs = render(overlay)
    env = dict(configmap_env(docs))
    env.update({e["name"]: e.get("value", "") for e in container(docs).get("env", [])})
    fields = {f"AUDIOCLF_{name.upper()}" for name in Settings.model_fields}
    for name in env:
        if name.startswith("AUDIOCLF_"):
            assert name in fields, f"{name} is no setting of service/settings.py"
            continue
        assert name in STACK_ENV, f"{name}: no known reader"
        files = list(SITE.glob(STACK_ENV[name]))
        assert files and any(name.encode() in f.read_bytes() for f in files), f"{name} is not in {STACK_ENV[name]}"
    # and the values are valid settings (types, ranges, distinct ports)
    for name, value in env.items():
        if name.startswith("AUDIOCLF_"):
            monkeypatch.setenv(name, value)
    Settings()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_ports_and_probes_match_the_settings(overlay):
    docs = render(overlay)
    env, c = configmap_env(docs), container(docs)
    defaults = Settings.model_construct()
    http, grpc_port = int(env["AUDIOCLF_HTTP_PORT"]), int(env["AUDIOCLF_GRPC_PORT"])
    assert (http, grpc_port) == (defaults.http_port, defaults.grpc_port)
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"http": http, "grpc": grpc_port}
    service = one(docs, "Service")["spec"]["ports"]
    assert {p["name"]: (p["port"], p["targetPort"]) for p in service} == {
        "http": (http, "http"),
        "grpc": (grpc_port, "grpc"),
    }
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
    assert c["startupProbe"]["grpc"] == {"port": grpc_port, "service": OIP_SERVICE}
    startup = c["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300  # devtools.server.READY_TIMEOUT_S
    policy = one(docs, "NetworkPolicy")["spec"]["ingress"][0]["ports"]
    assert {p["port"] for p in policy} == {"http", "grpc"}
    (endpoint,) = one(docs, "ServiceMonitor")["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["path"]) == ("http", "/metrics")
    monitor_selector = one(docs, "ServiceMonitor")["spec"]["selector"]["matchLabels"]
    service_labels = one(docs, "Service")["metadata"]["labels"]
    assert monitor_selector.items() <= service_labels.items()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_shutdown_outlasts_the_drain(overlay):
    """The kubelet's SIGKILL must come after preStop, the worker's unready delay and the longest request."""
    docs = render(overlay)
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    env, c = configmap_env(docs), container(docs)
    pre_stop = float(c["lifecycle"]["preStop"]["exec"]["command"][1])
    settings = Settings.model_construct()
    timeout = float(env.get("AUDIOCLF_REQUEST_TIMEOUT_S", settings.request_timeout_s))
    drain = float(env.get("AUDIOCLF_DRAIN_S", getattr(settings, "drain_s", 0.0)))
    assert pod["terminationGracePeriodSeconds"] > pre_stop + drain + timeout


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pod_is_locked_down(overlay):
    docs = render(overlay)
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    sc = container(docs)["securityContext"]
    assert pod["securityContext"]["runAsNonRoot"] and sc["runAsNonRoot"]
    assert sc["readOnlyRootFilesystem"] and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"} == pod["securityContext"]["seccompProfile"]
    mounts = {m["mountPath"] for m in container(docs)["volumeMounts"]}
    env = configmap_env(docs)
    # every path the service writes is on an emptyDir: uploads and sockets, BentoML's home, numba's cache
    for path in ("/tmp", env["BENTOML_HOME"], env["NUMBA_CACHE_DIR"]):
        assert any(path == m or path.startswith(m + "/") for m in mounts), path
    assert all("emptyDir" in v for v in pod["volumes"])


def test_gpu_overlay_asks_for_a_gpu():
    docs = render("gpu")
    c = container(docs)
    assert c["resources"]["limits"]["nvidia.com/gpu"] == 1
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    assert pod["nodeSelector"] and any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])
    assert c["image"].endswith("-gpu")
    assert int(configmap_env(docs)["AUDIOCLF_MAX_BATCH_SIZE"]) > int(
        configmap_env(render("cpu"))["AUDIOCLF_MAX_BATCH_SIZE"]
    )
    assert "nvidia.com/gpu" not in container(render("cpu"))["resources"]["limits"]


def adapter_rule() -> dict:
    (rule,) = yaml.safe_load((K8S / "prometheus-adapter" / "rules.yaml").read_text())["rules"]["custom"]
    return rule


def test_hpa_metric_is_the_adapter_rule():
    for overlay in OVERLAYS:
        metrics = one(render(overlay), "HorizontalPodAutoscaler")["spec"]["metrics"]
        pods = [m["pods"]["metric"]["name"] for m in metrics if m["type"] == "Pods"]
        assert pods == [adapter_rule()["name"]["as"]]
        assert any(m["type"] == "Resource" and m["resource"]["name"] == "cpu" for m in metrics)


@pytest.mark.e2e
def test_probe_paths_and_grpc_health_answer_on_the_real_server(server):
    c = container(render("cpu"))
    for probe in ("readinessProbe", "livenessProbe"):
        path = c[probe]["httpGet"]["path"]
        assert requests.get(f"{server.http}{path}", timeout=10).status_code == 200, path
    with grpc.insecure_channel(server.grpc) as channel:
        answer = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=c["startupProbe"]["grpc"]["service"]), timeout=10
        )
    assert answer.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.e2e
def test_adapter_and_hpa_metrics_exist_in_a_real_scrape(server, digit_wav):
    """The series the adapter turns into the HPA metric, with the labels it filters on, after one real request."""
    answer = requests.post(f"{server.http}/classify", files={"audio": digit_wav.read_bytes()}, timeout=60)
    assert answer.status_code == 200
    scrape = requests.get(f"{server.http}/metrics", timeout=10).text
    rule = adapter_rule()
    metric = rule["name"]["matches"].strip("^$")
    assert metric in rule["seriesQuery"] and metric in rule["metricsQuery"]
    lines = [ln for ln in scrape.splitlines() if ln.startswith(metric + "{")]
    for protocol in ("http", "grpc", "rest"):  # every protocol counts, from the first scrape
        assert any(f'protocol="{protocol}"' in ln for ln in lines), lines
    assert f"# TYPE {metric} gauge" in scrape

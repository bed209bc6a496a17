"""k8s/monitoring/dashboards/audioclf.json: a Grafana dashboard that provisions as it is (data source variable, stable
uid, every query on it), and whose every panel query returns data from a real Prometheus that scraped the real service
under a short load of good and bad HTTP /classify, gRPC ModelInfer and OIP REST inference requests."""

import json
import math
import re
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests
import tritonclient.grpc as triton
import tritonclient.http as triton_http

from devtools.server import free_port, log_tail
from tests.k8s.test_manifests import K8S, kustomize, one

DASHBOARD = K8S / "monitoring" / "dashboards" / "audioclf.json"
NAMESPACE, POD = "audioclf", "audio-classifier-0"  # the target labels a ServiceMonitor / PodMonitor would add
SCRAPE_S = 1
RATE_INTERVAL = "10s"  # Grafana's $__rate_interval for a 1 s scrape and a short range is 4 scrapes; 10 rides out gaps
# Targets whose value may rightly be 0 after a load without 5xx, overload or a request in flight at a scrape.
ZERO_OK = {("Server error ratio by protocol", "A"), ("Load shed", "A"), ("Requests in flight", "A")}
ZERO_OK |= {("Requests in flight", "B")}


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def targets(dash: dict) -> list[tuple[str, str, str]]:
    """(panel title, refId, expr) of every query on the dashboard, rows' nested panels included."""
    found = []
    for panel in dash["panels"]:
        for inner in [panel, *panel.get("panels", [])]:
            for target in inner.get("targets", []):
                found.append((inner["title"], target["refId"], target["expr"]))
    return found


def substitute(expr: str, pod: str = ".*") -> str:
    """What Grafana sends: template variables and interval macros filled in (pod = All)."""
    expr = expr.replace("$__rate_interval", RATE_INTERVAL).replace("$__interval", f"{SCRAPE_S}s")
    expr = expr.replace("$namespace", NAMESPACE).replace("$pod", pod)
    assert "$" not in expr, f"unknown variable in {expr}"
    return expr


def test_dashboard_is_provisioning_ready():
    dash = dashboard()
    assert dash["uid"] and dash["title"] and "id" not in dash and "__inputs" not in dash
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert variables["pod"]["includeAll"] and variables["pod"]["allValue"] == ".*"
    panels = [p for p in dash["panels"] if p["type"] != "row"]
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for panel in panels:  # every panel and query reads the chosen data source, and names its namespace and pods
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["description"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
            selectors = re.findall(r"\{([^}]*)\}", target["expr"].replace("{{", "").replace("}}", ""))
            assert selectors and all('namespace="$namespace"' in s and 'pod=~"$pod"' in s for s in selectors), target
    titles = " | ".join(p["title"] for p in panels).lower()
    for wanted in ("throughput", "latency", "batch size", "batch wait", "errors by reason", "load shed", "predictions",
                   "audio duration", "in flight", "cpu per pod", "memory per pod"):  # fmt: skip
        assert wanted in titles, wanted
    # the monitoring kustomization ships this file in the ConfigMap Grafana's sidecar picks up
    cm = one(kustomize("monitoring"), "ConfigMap")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(cm["data"]["audioclf.json"]) == dash


def load(server, clips: list[bytes], bad: list[bytes]) -> None:
    """Bounded: len(clips) good and len(bad) bad requests over HTTP /classify and gRPC, 4 good and 1 bad over OIP
    REST, 4 at a time, each with a timeout."""

    def http(body: bytes) -> int:
        return requests.post(f"{server.http}/classify", files={"audio": ("a.wav", body)}, timeout=60).status_code

    def grpc(body: bytes) -> str:
        with triton.InferenceServerClient(server.grpc) as client:
            audio = triton.InferInput("audio", [1], "BYTES")
            audio.set_data_from_numpy(np.array([body], dtype=object))
            try:
                client.infer("audio_classifier", [audio], client_timeout=60)
                return "OK"
            except triton.InferenceServerException as exc:
                return exc.status()

    def rest(body: bytes) -> str:
        with triton_http.InferenceServerClient(server.http.removeprefix("http://"), network_timeout=60) as client:
            audio = triton_http.InferInput("audio", [1], "BYTES")
            audio.set_data_from_numpy(np.array([body], dtype=object))
            try:
                client.infer("audio_classifier", [audio])
                return "rest 200"
            except triton_http.InferenceServerException as exc:
                return f"rest {exc.status()}"

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(http, clips + bad)) + list(pool.map(grpc, clips + bad))
        answers += list(pool.map(rest, clips[:4] + bad[:1]))  # a few: the by-protocol panels show all three
    assert answers.count(200) == len(clips) and answers.count("OK") == len(clips), answers
    assert answers.count("rest 200") == 4, answers


@pytest.fixture(scope="module")
def prometheus(server, tmp_path_factory):
    """A real Prometheus scraping the server every second, with the labels a ServiceMonitor would add."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus is not installed: apt-get install -y prometheus")
    folder, port = tmp_path_factory.mktemp("prometheus"), free_port()
    target = server.http.removeprefix("http://")
    (folder / "prometheus.yml").write_text(
        f"global: {{scrape_interval: {SCRAPE_S}s, evaluation_interval: {SCRAPE_S}s}}\n"
        "scrape_configs:\n  - job_name: audio-classifier\n"
        f"    static_configs: [{{targets: ['{target}'], labels: {{namespace: {NAMESPACE}, pod: {POD}}}}}]\n"
    )
    log = folder / "prometheus.log"
    with open(log, "wb") as handle:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={folder / 'prometheus.yml'}",
                f"--storage.tsdb.path={folder / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/api/v1"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            time.sleep(1)
            try:
                up = requests.get(f"{url}/query", params={"query": "up"}, timeout=5).json()["data"]["result"]
            except (requests.RequestException, KeyError, ValueError):
                continue
            if up and up[0]["value"][1] == "1":
                break
        else:
            pytest.fail(f"Prometheus never scraped the service:\n{log_tail(log)}")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def scraped(server, prometheus, fsdd_test_clips, digit_encodings) -> tuple[float, float]:
    """Two rounds of load a few scrapes apart (rates need increases between scrapes); returns the time range."""
    clips = [path.read_bytes() for path, _ in fsdd_test_clips[:12]] + [digit_encodings["flac"], digit_encodings["ogg"]]
    bad = [b"this is not audio" * 10, digit_encodings["flac"][:300], digit_encodings["wav"][:44] + bytes(8000)]
    start = time.time() - 5
    for _ in range(2):
        load(server, clips, bad)
        time.sleep(3 * SCRAPE_S)
    time.sleep(2 * SCRAPE_S)
    # the session's server serves the tests after this one: say so here if it did not survive the load
    assert server.ready(), f"the server is not ready after the load:\n{log_tail(server.log)}"
    return start, time.time()


def values(prometheus: str, expr: str, start: float, end: float) -> list[float]:
    answer = requests.get(
        f"{prometheus}/query_range",
        params={"query": expr, "start": start, "end": end, "step": f"{SCRAPE_S}s"},
        timeout=30,
    ).json()
    assert answer["status"] == "success", (expr, answer)
    return [float(v) for series in answer["data"]["result"] for _, v in series["values"]]


@pytest.mark.e2e
def test_template_variables_find_the_service(prometheus, scraped):
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] != "query":
            continue
        match = re.fullmatch(r"label_values\((.*), (\w+)\)", variable["query"]["query"])
        selector, label = substitute(match.group(1)), match.group(2)
        series = requests.get(f"{prometheus}/series", params={"match[]": selector}, timeout=30).json()["data"]
        expected = {"namespace": NAMESPACE, "pod": POD}[label]
        assert {s.get(label) for s in series} == {expected}, variable["name"]


@pytest.mark.e2e
def test_every_panel_query_returns_data(prometheus, scraped):
    """Every target's expression, as Grafana would send it over the load's time range, returns finite values, and
    values above 0 where the load must move them (all but ZERO_OK). The message lists every panel that did not."""
    start, end = scraped
    empty, zero = [], []
    for title, ref, expr in targets(dashboard()):
        found = [v for v in values(prometheus, substitute(expr), start, end) if math.isfinite(v)]
        if not found:
            empty.append(f"{title} [{ref}]")
        elif (title, ref) not in ZERO_OK and not any(v > 0 for v in found):
            zero.append(f"{title} [{ref}]")
    assert not empty and not zero, f"panels with no data: {empty}; panels that stayed at 0 under load: {zero}"
    # the pod filter selects: a pod name that is not there empties a panel
    title, ref, expr = targets(dashboard())[0]
    assert not values(prometheus, substitute(expr, pod="no-such-pod"), start, end)

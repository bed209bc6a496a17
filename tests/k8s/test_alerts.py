"""k8s/monitoring: the PrometheusRule validates strictly against the vendored CRD excerpt, its rule groups pass
`promtool check rules`, and `promtool test rules` (tests/k8s/alerts_test.yaml) shows every alert firing on the series
that should raise it and quiet on healthy ones; the unit tests notice an alert that never fires or always fires."""

import copy
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.k8s.test_manifests import K8S, closed, kustomize, one

RULE = K8S / "monitoring" / "prometheusrule.yaml"
UNIT_TESTS = Path(__file__).with_name("alerts_test.yaml")
ALERTS = {
    "AudioclfHighErrorRatio",
    "AudioclfLatencyP99High",
    "AudioclfPodNotReady",
    "AudioclfLoadShedding",
    "AudioclfWorkerRestarts",
    "AudioclfNoPredictions",
}


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is not installed: apt-get install -y prometheus (Debian's package has it)")
    return path


def groups() -> list[dict]:
    return copy.deepcopy(yaml.safe_load(RULE.read_text())["spec"]["groups"])


def run_unit_tests(folder: Path, rule_groups: list[dict]) -> subprocess.CompletedProcess:
    """`promtool test rules` on alerts_test.yaml against these groups, annotations removed (promtool compares them
    verbatim; `promtool check rules` checks their templates)."""
    for group in rule_groups:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (folder / "rules.yaml").write_text(yaml.safe_dump({"groups": rule_groups}))
    shutil.copy(UNIT_TESTS, folder / "alerts_test.yaml")
    return subprocess.run(
        [promtool(), "test", "rules", "alerts_test.yaml"], cwd=folder, capture_output=True, text=True, timeout=60
    )


def test_prometheus_rule_validates_strictly():
    crd = yaml.safe_load((K8S / "schemas" / "monitoring.coreos.com_prometheusrules.yaml").read_text())
    (version,) = crd["spec"]["versions"]
    schema = closed(version["schema"]["openAPIV3Schema"])
    rendered = one(kustomize("monitoring"), "PrometheusRule")
    assert rendered["apiVersion"] == f"{crd['spec']['group']}/{version['name']}"
    assert rendered["metadata"]["namespace"] == "audioclf"
    jsonschema.validate(rendered, schema)
    wrong = copy.deepcopy(rendered)
    wrong["spec"]["groups"][0]["rules"][0]["for"] = "five minutes"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(wrong, schema)
    wrong = copy.deepcopy(rendered)
    wrong["spec"]["groups"][0]["rules"][0]["severity"] = "critical"  # belongs under labels
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(wrong, schema)


def test_every_alert_has_severity_and_guidance():
    rules = [r for g in groups() for r in g["rules"]]
    assert {r["alert"] for r in rules} == ALERTS
    for rule in rules:
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert {"summary", "description", "runbook"} <= rule["annotations"].keys(), rule["alert"]
    readme = (K8S / "README.md").read_text()
    for alert in ALERTS:
        assert f"`{alert}`" in readme, f"k8s/README.md does not explain {alert}"


def test_promtool_checks_the_rules(tmp_path):
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups()}))
    done = subprocess.run([promtool(), "check", "rules", str(tmp_path / "rules.yaml")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in done.stdout


def test_promtool_unit_tests_pass(tmp_path):
    done = run_unit_tests(tmp_path, groups())
    assert done.returncode == 0, done.stdout + done.stderr


def test_unit_tests_cover_firing_and_quiet_for_every_alert():
    cases = [case for test in yaml.safe_load(UNIT_TESTS.read_text())["tests"] for case in test["alert_rule_test"]]
    for alert in ALERTS:
        mine = [case for case in cases if case["alertname"] == alert]
        assert any(case["exp_alerts"] for case in mine), f"no test where {alert} fires"
        assert any(not case["exp_alerts"] for case in mine), f"no test where {alert} stays quiet"


@pytest.mark.parametrize("alert", sorted(ALERTS))
def test_unit_tests_fail_on_a_broken_alert(alert, tmp_path):
    """An alert whose expression never fires, or always does, makes `promtool test rules` fail."""
    for broken in ("vector(1) > 2", "vector(1)"):
        rule_groups = groups()
        for group in rule_groups:
            for rule in group["rules"]:
                if rule["alert"] == alert:
                    rule["expr"] = broken
        (tmp_path / broken.replace(" ", "")).mkdir()
        done = run_unit_tests(tmp_path / broken.replace(" ", ""), rule_groups)
        assert done.returncode != 0, f"{alert} = {broken!r} passed the unit tests"
        assert f"alertname: {alert}" in done.stdout + done.stderr

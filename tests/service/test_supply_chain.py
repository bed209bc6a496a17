"""No secrets in the repository (images and manifests are built from it) and no known vulnerability in the pinned
dependencies: checkov's secret scan and pip-audit, from .venv-tools (`make setup`). Accepted advisories are listed,
with the reason, in docs/reliability.md and here."""

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / ".venv-tools" / "bin"
# Advisory id -> why it does not apply (keep docs/reliability.md in step).
ACCEPTED: dict[str, str] = {}

pytestmark = pytest.mark.skipif(not (TOOLS / "checkov").exists(), reason=".venv-tools missing: run `make setup`")


def _secrets(folder: Path) -> list[dict]:
    done = subprocess.run(
        [
            str(TOOLS / "checkov"),
            "-d",
            str(folder),
            "--framework",
            "secrets",
            "--enable-secret-scan-all-files",  # not only the file types checkov guesses hold configuration
            "--skip-path",
            r"\.venv",
            "--skip-path",
            "runs/",
            "--compact",
            "--quiet",
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},  # no fetching of guidelines from Prisma Cloud (offline)
    )
    report = json.loads(done.stdout)
    reports = report if isinstance(report, list) else [report]
    return [c for r in reports for c in r.get("results", {}).get("failed_checks", [])]


def test_the_secret_scan_finds_a_planted_secret(tmp_path):
    """The scanner works here: without this, an empty result below would prove nothing."""
    key = (
        "wJalrXUtnFEMI/K7MDENG/" + "bPxRfiCYEXAMPLEKEY"
    )  # AWS's documentation example, split so as not to be found here
    (tmp_path / "settings.py").write_text(f'aws_secret_access_key = "{key}"\n')
    assert _secrets(tmp_path)


def test_no_secrets_in_the_repository():
    found = _secrets(ROOT)
    assert not found, [(c["check_id"], c["file_path"], c["file_line_range"]) for c in found]


@pytest.mark.parametrize("lock", ["requirements.lock", "requirements-tools.lock"])
def test_no_known_vulnerabilities_in_the_pinned_dependencies(lock):
    done = subprocess.run(
        [str(TOOLS / "pip-audit"), "-r", lock, "--no-deps", "--disable-pip", "--progress-spinner", "off", "-f", "json"]
        + [arg for advisory in ACCEPTED for arg in ("--ignore-vuln", advisory)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    report = json.loads(done.stdout)
    deps = report["dependencies"]
    audited = [d for d in deps if "skip_reason" not in d]
    if not audited:  # no vulnerability service reachable (an offline machine): nothing was checked
        pytest.skip(f"pip-audit could audit none of {len(deps)} packages: {deps[0].get('skip_reason')}")
    vulnerable = {d["name"]: [v["id"] for v in d["vulns"]] for d in audited if d["vulns"]}
    assert not vulnerable, vulnerable

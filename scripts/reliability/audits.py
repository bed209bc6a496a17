"""Phase 6: pip-audit on both lock files and checkov's secrets scan of the repository (tools in .venv-tools)."""

import json
import os
import subprocess

from scripts.reliability import ROOT

TOOLS = ROOT / ".venv-tools" / "bin"
HEADER = ("check", "result")


def rows() -> list[tuple]:
    if not (TOOLS / "pip-audit").exists():
        return [("pip-audit / checkov", "skipped: .venv-tools missing (make setup)")]
    out = []
    for lock in ("requirements.lock", "requirements-tools.lock"):
        cmd = [str(TOOLS / "pip-audit"), "-r", lock, "--no-deps", "--disable-pip", "--progress-spinner", "off"]
        done = subprocess.run([*cmd, "-f", "json"], cwd=ROOT, capture_output=True, text=True, timeout=900)
        deps = json.loads(done.stdout)["dependencies"]
        skipped = [d for d in deps if "skip_reason" in d]
        vulns = {d["name"]: [v["id"] for v in d["vulns"]] for d in deps if d.get("vulns")}
        note = f"; {len(skipped)} not audited ({skipped[0]['skip_reason']})" if skipped else ""
        audited = len(deps) - len(skipped)
        out.append(
            (f"pip-audit -r {lock} --no-deps", f"{audited} packages audited, vulnerable: {vulns or 'none'}{note}")
        )
    done = subprocess.run(
        [str(TOOLS / "checkov"), "-d", ".", "--framework", "secrets", "--enable-secret-scan-all-files"]
        + ["--skip-path", r"\.venv", "--skip-path", "runs/", "--compact", "--quiet", "-o", "json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
    )
    report = json.loads(done.stdout)
    reports = report if isinstance(report, list) else [report]
    found = [
        (c["check_id"], c["file_path"], c["file_line_range"])
        for r in reports
        for c in r.get("results", {}).get("failed_checks", [])
    ]
    out.append(("checkov -d . --framework secrets --enable-secret-scan-all-files", f"secrets found: {found or 'none'}"))
    return out

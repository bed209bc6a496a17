"""The FSDD fetch script writes the same manifest (official split, speakers) as the shared copy has."""

import csv
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def load_script():
    spec = importlib.util.spec_from_file_location("fetch_fsdd", ROOT / "scripts" / "fetch_fsdd.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_manifest_matches_the_shared_one(fsdd, tmp_path):
    (tmp_path / "recordings").symlink_to(fsdd / "recordings")
    written = load_script().write_manifest(tmp_path)
    rows = lambda p: sorted(tuple(r) for r in list(csv.reader(open(p)))[1:])  # noqa: E731
    assert rows(written) == rows(fsdd / "manifest.csv")

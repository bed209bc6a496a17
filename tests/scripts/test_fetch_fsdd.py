"""The FSDD fetch script writes the same manifest (official split, speakers) as the shared copy has."""

import csv

from scripts import fetch_fsdd


def test_manifest_matches_the_shared_one(fsdd, tmp_path):
    (tmp_path / "recordings").symlink_to(fsdd / "recordings")
    written = fetch_fsdd.write_manifest(tmp_path)
    rows = lambda p: sorted(tuple(r) for r in list(csv.reader(open(p)))[1:])  # noqa: E731
    assert rows(written) == rows(fsdd / "manifest.csv")

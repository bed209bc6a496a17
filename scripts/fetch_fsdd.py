"""Download the Free Spoken Digit Dataset from its public source and write the manifest the CLI reads.

    python scripts/fetch_fsdd.py --out data/fsdd
    python -m training train --data data/fsdd --out runs/fsdd

The manifest marks the dataset's official test split (recordings 0-4 of every digit and speaker) and the speaker
as `speaker`, exactly like ../shared/data/fsdd/manifest.csv.
"""

import argparse
import csv
import io
import re
import sys
import urllib.request
import zipfile
from pathlib import Path

SOURCE = "https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/heads/master.zip"
NAME = re.compile(r"^(?P<digit>\d)_(?P<speaker>[a-z]+)_(?P<index>\d+)\.wav$")


def write_manifest(root: Path) -> Path:
    """Write root/manifest.csv for the wavs in root/recordings; returns its path."""
    rows = []
    for wav in sorted((root / "recordings").glob("*.wav")):
        m = NAME.match(wav.name)
        if not m:
            continue
        split = "test" if int(m["index"]) < 5 else "train"
        rows.append((f"recordings/{wav.name}", m["digit"], m["speaker"], split))
    if not rows:
        raise SystemExit(f"no FSDD recordings (d_speaker_n.wav) found in {root / 'recordings'}")
    path = root / "manifest.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "speaker", "split"])
        writer.writerows(rows)
    return path


def download(out: Path, url: str = SOURCE) -> None:
    (out / "recordings").mkdir(parents=True, exist_ok=True)
    print(f"downloading {url} ...", file=sys.stderr)
    with urllib.request.urlopen(url, timeout=120) as response:
        archive = zipfile.ZipFile(io.BytesIO(response.read()))
    for member in archive.namelist():
        if "/recordings/" in member and member.endswith(".wav"):
            (out / "recordings" / Path(member).name).write_bytes(archive.read(member))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("data/fsdd"))
    parser.add_argument("--url", default=SOURCE)
    args = parser.parse_args()
    if not any((args.out / "recordings").glob("*.wav")):
        download(args.out, args.url)
    print(write_manifest(args.out))


if __name__ == "__main__":
    main()

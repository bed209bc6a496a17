"""Shared fixtures: the real data beside the checkout, real clips re-encoded into every supported format, a
private BentoML store so tests never touch the user's, and (for the service, load-test and deploy tests) a small
FSDD model trained once per session and the real server serving it.

The model trains on 10 clips per (digit, speaker) and is tested on FSDD's 300 official test clips, so its
metadata holds a test accuracy that the server must reproduce over HTTP and gRPC. The server is the real
`python -m service` process (bentoml serve, entry + model service workers) on 127.0.0.1 and free ports.
"""

import csv
import io
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

# Before anything imports bentoml: keep the test store out of ~/bentoml; and training's cache of decoded clips and
# features (training.store) out of ~/.cache.
os.environ.setdefault("BENTOML_HOME", tempfile.mkdtemp(prefix="audioclf-bentoml-"))
os.environ.setdefault("AUDIOCLF_CACHE_DIR", tempfile.mkdtemp(prefix="audioclf-cache-"))

import soundfile as sf  # noqa: E402

from devtools.server import Server, ServerFailed, start_server, stop, wait_ready  # noqa: E402
from devtools.small_model import train_small_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
FSDD = DATA / "fsdd"
INSTRUMENTS = DATA / "instruments"


@dataclass(frozen=True)
class TrainedModel:
    tag: str
    folder: Path
    test_accuracy: float
    test_clips: list[tuple[Path, str]]  # (file, label) of the official test split


@pytest.fixture(scope="session")
def fsdd() -> Path:
    if not (FSDD / "manifest.csv").is_file():
        pytest.fail(f"the shared data is missing: {FSDD} (it must sit beside the checkout)")
    return FSDD


@pytest.fixture(scope="session")
def digit_wav(fsdd) -> Path:
    """A real spoken digit: 8 kHz mono 16-bit WAV, label '7'."""
    return fsdd / "recordings" / "7_jackson_12.wav"


@pytest.fixture(scope="session")
def instrument_flac() -> Path:
    """A real 44.1 kHz FLAC instrument clip, several seconds long."""
    return sorted((INSTRUMENTS / "Cello").glob("*.flac"))[0]


def encode(samples: np.ndarray, rate: int, fmt: str, subtype: str | None = None) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, samples, rate, format=fmt, subtype=subtype)
    return buf.getvalue()


@pytest.fixture(scope="session")
def digit_encodings(digit_wav) -> dict[str, bytes]:
    """The same real recording as wav/flac/ogg/mp3 and odd-but-valid variants (stereo, 8/24-bit, 44.1/48 kHz)."""
    import soxr

    x, rate = sf.read(digit_wav, dtype="float32")
    stereo = np.stack([x, 0.5 * x], axis=1)
    x44 = soxr.resample(x, rate, 44100)
    x48 = soxr.resample(x, rate, 48000)
    return {
        "wav": digit_wav.read_bytes(),
        "flac": encode(x, rate, "FLAC"),
        "ogg": encode(x, rate, "OGG", "VORBIS"),
        "mp3": encode(x44, 44100, "MP3"),
        "stereo_wav": encode(stereo, rate, "WAV", "PCM_16"),
        "u8_wav": encode(x, rate, "WAV", "PCM_U8"),
        "pcm24_wav": encode(x, rate, "WAV", "PCM_24"),
        "wav_44k": encode(x44, 44100, "WAV", "PCM_16"),
        "flac_48k": encode(x48, 48000, "FLAC"),
        "float_wav": encode(x, rate, "WAV", "FLOAT"),
    }


# The service fixtures: trained and started at most once per session, whichever test asks first.
@pytest.fixture(scope="session")
def fsdd_test_clips(fsdd) -> list[tuple[Path, str]]:
    with open(fsdd / "manifest.csv", newline="") as handle:
        return [(fsdd / r["path"], r["label"]) for r in csv.DictReader(handle) if r["split"] == "test"]


@pytest.fixture(scope="session")
def trained_model(fsdd, fsdd_test_clips, tmp_path_factory) -> TrainedModel:
    """`python -m training train` on a slice of FSDD, registered in this session's BentoML store."""
    try:
        run = train_small_model(fsdd, tmp_path_factory.mktemp("model"))
    except RuntimeError as exc:
        pytest.fail(str(exc))
    summary = json.loads((run / "metrics.json").read_text())
    return TrainedModel(
        tag=summary["bentoml_tag"],
        folder=run / "model",
        test_accuracy=summary["test"]["accuracy"],
        test_clips=fsdd_test_clips,
    )


@pytest.fixture(scope="session")
def server(trained_model, tmp_path_factory) -> Server:
    """The real server with default settings (and a small upload/duration limit the error tests can reach)."""
    log = tmp_path_factory.mktemp("server") / "server.log"
    proc, srv = start_server(trained_model.tag, log, max_upload_bytes=2_000_000, max_audio_seconds=30)
    try:
        serving(proc, srv)
        yield srv
    finally:
        stop(proc)


def serving(proc, srv: Server) -> None:
    """devtools.server.wait_ready for fixtures: a server that exits or never gets ready fails the test with its log."""
    try:
        wait_ready(proc, srv)
    except ServerFailed as exc:
        pytest.fail(str(exc))

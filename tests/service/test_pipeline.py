"""The service's feature path equals training's for the same file, batched with other requests' clips or not,
and the answer reads the way the API promises."""

import asyncio

import numpy as np
import pytest

from audiocore.aggregate import MeanProbabilities
from audiocore.clip import Limits, Prepared, prepare
from audiocore.decode import decode
from audiocore.errors import AudioTooLarge, AudioTooLong
from service.pipeline import clip_result
from service.scorer import Scorer
from tests.conftest import ROOT
from training.config import load_config
from training.pipeline import clean_features

CONFIGS = {name: load_config(ROOT / "configs" / f"{name}.yaml").features for name in ("fsdd", "instruments")}
CONFIGS["fsdd-deltas"] = CONFIGS["fsdd"].model_copy(update={"deltas": True})
LIMITS = Limits(max_bytes=50_000_000, max_seconds=600)


def training_features(data: bytes, cfg) -> np.ndarray:
    """What training computes for this file: decode (as training.dataset.load does), then clean_features."""
    wave = decode(data, cfg.sample_rate, max_seconds=600).samples
    X, _ = clean_features([wave], np.array([0]), np.array([0]), cfg)
    return X


CLIPS = ["wav", "flac_48k", "stereo_wav", "u8_wav", "pcm24_wav", "mp3", "instrument"]


def served_features(files: list[bytes], cfg, max_batch: int) -> list[np.ndarray]:
    """The features the service's scorer hands the model for each file, all files submitted at once (so they
    share batches when max_batch > 1). The real Scorer, with the model swapped for a function that returns the
    features it is given, flattened."""
    shape = cfg.input_shape

    async def run():
        scorer = Scorer(lambda x: x.reshape(len(x), -1), cfg, max_batch=max_batch, max_wait_s=0.05, max_queue_s=60)
        try:
            prepared = [prepare(data, cfg, LIMITS) for data in files]
            out = await asyncio.gather(*(scorer.scores(p.windows) for p in prepared))
            return [x.reshape(len(x), *shape) for x in out]
        finally:
            await scorer.close(10)

    return asyncio.run(run())


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_service_features_equal_training_features(config, digit_encodings, instrument_flac):
    """Bit for bit for every clip, scored alone (batch 1) or batched with all the others: every window's features
    are computed on their own (the mel step multiplies window by window), so a batch's make-up changes nothing."""
    cfg = CONFIGS[config]
    files = [instrument_flac.read_bytes() if c == "instrument" else digit_encodings[c] for c in CLIPS]
    expected = [training_features(data, cfg) for data in files]
    for max_batch in (1, len(files)):
        for clip, served, want in zip(CLIPS, served_features(files, cfg, max_batch), expected, strict=True):
            assert served.shape == want.shape, clip
            np.testing.assert_array_equal(served, want, err_msg=f"{clip}, max batch {max_batch}")


def test_long_clips_become_several_windows_covering_the_clip(instrument_flac):
    cfg = CONFIGS["instruments"]
    prepared = prepare(instrument_flac.read_bytes(), cfg, LIMITS)
    duration = prepared.audio.duration_s
    assert len(prepared.windows) > 2 and prepared.windows.shape[1] == cfg.window_samples
    assert prepared.starts_s[0] == 0 and abs(prepared.ends_s[-1] - duration) < 1e-3


def test_limits_are_checked_before_work(digit_encodings, instrument_flac):
    cfg = CONFIGS["fsdd"]
    with pytest.raises(AudioTooLarge):
        prepare(digit_encodings["wav"], cfg, Limits(max_bytes=1000, max_seconds=60))
    with pytest.raises(AudioTooLong):
        prepare(instrument_flac.read_bytes(), cfg, Limits(max_bytes=10**8, max_seconds=1.0))


def _prepared(duration_s: float, starts: list[float], window_s: float = 1.0) -> Prepared:
    from audiocore.decode import Audio

    audio = Audio(np.zeros(int(duration_s * 8000), np.float32), 8000, 44100, 2)
    return Prepared(audio, np.zeros((len(starts), 8000), np.float32), np.array(starts), window_s)


def test_the_result_ranks_the_clip_and_reports_the_upload():
    probs = np.array([[0.1, 0.7, 0.2], [0.3, 0.5, 0.2]], dtype=np.float32)
    clip = clip_result(
        _prepared(1.5, [0.0, 0.5]), probs, MeanProbabilities(), ["a", "b", "c"], k=2, segments=False, tag="m:v1"
    )
    assert clip.model == "m:v1"
    assert [p.label for p in clip.predictions] == ["b", "a"]  # mean scores 0.6, 0.2, 0.2: ties keep order
    assert clip.label == "b"
    assert clip.predictions[0].score == pytest.approx(0.6)
    assert isinstance(clip.predictions[0].score, float)
    assert (clip.duration_s, clip.sample_rate, clip.channels) == (1.5, 44100, 2)
    assert clip.segments is None


def test_segments_hold_each_windows_ranking_within_the_clip():
    probs = np.array([[0.9, 0.1], [0.2, 0.8]], dtype=np.float32)
    clip = clip_result(
        _prepared(1.2, [0.0, 0.2]), probs, MeanProbabilities(), ["x", "y"], k=1, segments=True, tag="m:v1"
    )
    assert [(w.start_s, w.end_s) for w in clip.segments] == [(0.0, 1.0), (0.2, 1.2)]
    assert [w.predictions[0].label for w in clip.segments] == ["x", "y"]
    short = clip_result(
        _prepared(0.4, [-0.3]), probs[:1], MeanProbabilities(), ["x", "y"], k=2, segments=True, tag="m:v1"
    )
    assert (short.segments[0].start_s, short.segments[0].end_s) == (0.0, 0.4)  # padding is not audio


def test_a_request_waits_for_warm_up_then_gives_up_with_not_ready():
    import asyncio

    from service.errors import RequestError
    from service.pipeline import Readiness

    async def scenario():
        waiting = Readiness(wait_s=5.0)
        pending = asyncio.ensure_future(waiting.wait())
        await asyncio.sleep(0.05)
        assert not waiting.ready and not pending.done()
        waiting.set("classifier")
        assert await pending == "classifier" and waiting.ready
        with pytest.raises(RequestError) as info:
            await Readiness(wait_s=0.05).wait()
        return info.value.code

    assert asyncio.run(scenario()) == "not_ready"

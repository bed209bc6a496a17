"""Clip predictions read from the feature cache in chunks equal one predict call over the windows in memory."""

import numpy as np

from audiocore.aggregate import clip_scores
from audiocore.config import FeatureConfig
from audiocore.decode import decode
from training.config import ModelConfig
from training.evaluate import predict_clips
from training.model import build_model
from training.store import clip_features, content_digests, decode_clips
from training.windows import clean_features

CFG = FeatureConfig(cmn=True)


def test_chunked_clip_predictions_equal_the_in_memory_ones(fsdd, instrument_flac, tmp_path):
    paths = [fsdd / f"recordings/{d}_george_{i}.wav" for d in range(3) for i in range(4)] + [instrument_flac]
    waves = [decode(p, 8000).samples for p in paths]
    y = np.array([d for d in range(3) for _ in range(4)] + [1])
    clips = np.array([0, 3, 7, 12])  # a split: sorted clip indices
    X, table = clean_features(waves, y, clips, CFG)
    model = build_model(ModelConfig(), CFG.input_shape, 3, X.mean(axis=(0, 1)), X.var(axis=(0, 1)))
    # What evaluation did with every window in memory; an untrained model is as fixed a function as any.
    probs = model.predict(X, batch_size=4, verbose=0)
    expected = np.stack([clip_scores(probs[table.clip == c]) for c in clips])

    stored = decode_clips(paths, content_digests(paths), 8000, 600.0, tmp_path, True).waves
    features, _ = clip_features(stored, CFG)
    got = predict_clips(model, features, features.windows(y, clips), clips, batch_size=4, chunk=8)
    np.testing.assert_array_equal(got, expected)

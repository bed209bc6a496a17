"""audiocore.ops_features (keras.ops, any backend) against the reference, audiocore.features (librosa), on real
clips: the same shapes, values within float32 rounding of a different order of operations."""

import numpy as np
import pytest
from keras import ops

from audiocore import ops_features
from audiocore.decode import decode
from audiocore.features import featurize, frame
from tests.conftest import ROOT
from training.config import load_config

FSDD_CFG = load_config(ROOT / "configs" / "fsdd.yaml").features
CONFIGS = {
    "fsdd (mfcc)": FSDD_CFG,
    "fsdd logmel": FSDD_CFG.model_copy(update={"kind": "logmel"}),
    "fsdd cmn": FSDD_CFG.model_copy(update={"cmn": True}),
    "fsdd voiced cmvn": FSDD_CFG.model_copy(update={"cmn_floor_db": 40.0, "cvn": True}),
    "fsdd logmel voiced cmn": FSDD_CFG.model_copy(update={"kind": "logmel", "cmn_floor_db": 40.0}),
    "instruments (logmel, 16 kHz)": load_config(ROOT / "configs" / "instruments.yaml").features,
    "instruments musicnn (log1p)": load_config(ROOT / "configs" / "instruments-musicnn.yaml").features,
    "fsdd speech embedding (16 kHz, 60-3800 Hz)": load_config(ROOT / "configs" / "fsdd-speech.yaml").features,
}
# Measured on FSDD and instrument clips: MFCC (values up to ~320) within 7.3e-4 (the whole test split), log-mel dB
# (up to 100) within 1.5e-3, mostly at the dB floor. The bound leaves room for other BLAS/FFT builds.
TOLERANCE = {"mfcc": 2e-3, "logmel": 5e-3}


def windows_of(files: list, cfg) -> np.ndarray:
    return np.concatenate(
        [frame(decode(f.read_bytes(), cfg.sample_rate, max_seconds=600).samples, cfg)[0] for f in files]
    )


@pytest.fixture(scope="module")
def clips(fsdd, instrument_flac) -> list:
    digits = sorted((fsdd / "recordings").glob("*.wav"))[::60]  # 50 clips over every digit and speaker
    return [*digits, instrument_flac]


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_ops_features_match_librosa(name, clips):
    cfg = CONFIGS[name]
    windows = windows_of(clips, cfg)
    want = featurize(windows, cfg)
    got = ops.convert_to_numpy(ops_features.featurize(windows, cfg))
    assert got.shape == want.shape and got.dtype == np.float32
    assert np.abs(got - want).max() <= TOLERANCE[cfg.kind], name


def test_a_window_does_not_depend_on_its_batch(clips):
    windows = windows_of(clips[:10], FSDD_CFG)
    alone = ops.convert_to_numpy(ops_features.featurize(windows[:1], FSDD_CFG))
    batched = ops.convert_to_numpy(ops_features.featurize(windows, FSDD_CFG))[:1]
    np.testing.assert_allclose(alone, batched, atol=1e-4)


def test_deltas_and_wrong_shapes_are_refused():
    deltas = FSDD_CFG.model_copy(update={"deltas": True})
    assert not ops_features.supports(deltas) and ops_features.supports(FSDD_CFG)
    with pytest.raises(ValueError, match="deltas"):
        ops_features.featurize(np.zeros((1, FSDD_CFG.window_samples), np.float32), deltas)
    with pytest.raises(ValueError, match="expected windows"):
        ops_features.featurize(np.zeros((1, 100), np.float32), FSDD_CFG)


def test_the_dct_matrix_is_librosas_dct():
    import scipy.fftpack

    x = np.random.default_rng(0).normal(size=(40, 7)).astype(np.float32)
    want = scipy.fftpack.dct(x, type=2, norm="ortho", axis=0)[:20]
    np.testing.assert_allclose(ops_features.dct_matrix(20, 40) @ x, want, atol=1e-5)


def test_a_model_on_waveforms_scores_as_the_model_on_librosa_features(clips, tmp_path):
    """The exported form: features inside the model, saved and loaded as one .keras file."""
    import keras

    cfg = FSDD_CFG
    inputs = keras.Input(shape=cfg.input_shape)
    x = keras.layers.Conv1D(8, 5, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling1D()(x)
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x))
    windows = windows_of(clips[:20], cfg)
    want = np.asarray(model.predict_on_batch(featurize(windows, cfg)))
    wrapped = ops_features.waveform_model(model, cfg)
    wrapped.save(tmp_path / "waves.keras")
    loaded = keras.saving.load_model(tmp_path / "waves.keras", compile=False)
    got = np.asarray(loaded.predict_on_batch(windows))
    assert loaded.input_shape == (None, cfg.window_samples)
    np.testing.assert_allclose(got, want, atol=1e-4)
    assert np.array_equal(got.argmax(axis=1), want.argmax(axis=1))

"""How window outputs become a clip's scores: the mean of probabilities, or the pooled logistic clip head, which
the artifact stores beside the model and refuses to load when it is missing or does not fit."""

import numpy as np
import pytest

from audiocore import artifact
from audiocore.aggregate import MeanProbabilities, PooledLogistic
from audiocore.config import FeatureConfig


def head(dim: int = 4, classes: int = 3, seed: int = 0) -> PooledLogistic:
    rng = np.random.default_rng(seed)
    return PooledLogistic(
        mean=rng.normal(size=2 * dim),
        scale=rng.uniform(0.5, 2, size=2 * dim),
        weights=rng.normal(size=(2 * dim, classes)),
        bias=rng.normal(size=classes),
    )


def test_the_mean_of_window_probabilities():
    probs = np.array([[0.9, 0.1], [0.3, 0.7]])
    agg = MeanProbabilities()
    assert np.allclose(agg.clip(probs), [0.6, 0.4])
    assert np.array_equal(agg.windows(probs), probs)


def test_the_pooled_head_is_logistic_regression_on_mean_and_max():
    h = head()
    emb = np.random.default_rng(1).normal(size=(5, 4))
    pooled = np.r_[emb.mean(axis=0), emb.max(axis=0)]
    z = (pooled - h.mean) / h.scale @ h.weights + h.bias
    expected = np.exp(z) / np.exp(z).sum()
    assert np.allclose(h.clip(emb), expected, rtol=1e-12)
    assert h.clip(emb).sum() == pytest.approx(1.0)
    # a window's own answer is the head on that window alone (its embedding as both mean and max)
    assert np.allclose(h.windows(emb)[2], h.clip(emb[2:3]))
    assert h.windows(emb).shape == (5, 3)


def test_the_pooled_head_ignores_window_order_and_is_stable_on_large_logits():
    h = head()
    emb = np.random.default_rng(2).normal(size=(6, 4)) * 1e4
    assert np.allclose(h.clip(emb), h.clip(emb[::-1]))
    assert np.isfinite(h.clip(emb)).all()


def test_an_inconsistent_head_is_refused():
    h = head()
    with pytest.raises(ValueError, match="inconsistent"):
        PooledLogistic(mean=h.mean[:-1], scale=h.scale, weights=h.weights, bias=h.bias)
    with pytest.raises(ValueError, match="non-positive"):
        PooledLogistic(mean=h.mean, scale=0 * h.scale, weights=h.weights, bias=h.bias)


def meta(aggregation: str, labels=("a", "b", "c")) -> artifact.ModelMetadata:
    return artifact.ModelMetadata(labels=list(labels), features=FeatureConfig(), aggregation=aggregation)


def test_the_artifact_loads_the_clip_head_it_names(tmp_path):
    assert isinstance(artifact.load_aggregator(tmp_path, meta("mean_probabilities")), MeanProbabilities)
    h = head()
    h.save(tmp_path / artifact.HEAD_FILE)
    loaded = artifact.load_aggregator(tmp_path, meta("pooled_logistic"))
    assert isinstance(loaded, PooledLogistic) and loaded.embedding_dim == 4
    assert np.array_equal(loaded.weights, h.weights) and np.array_equal(loaded.bias, h.bias)


def test_a_missing_damaged_or_mismatched_clip_head_is_an_artifact_error(tmp_path):
    with pytest.raises(artifact.ArtifactError, match="not found"):
        artifact.load_aggregator(tmp_path, meta("pooled_logistic"))
    (tmp_path / artifact.HEAD_FILE).write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(artifact.ArtifactError, match="not a valid clip head"):
        artifact.load_aggregator(tmp_path, meta("pooled_logistic"))
    head(classes=2).save(tmp_path / artifact.HEAD_FILE)
    with pytest.raises(artifact.ArtifactError, match="2 classes, the metadata has 3"):
        artifact.load_aggregator(tmp_path, meta("pooled_logistic"))


def test_metadata_without_an_aggregation_is_a_mean_of_probabilities_model():
    """Models trained before the setting existed keep loading as they did."""
    old = artifact.ModelMetadata.model_validate({"labels": ["a", "b"], "features": {}})
    assert old.aggregation == "mean_probabilities"

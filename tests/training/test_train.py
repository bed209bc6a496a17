"""training.train's choices: the learning rate (a constant for ReduceLROnPlateau, or warm-up then cosine decay) and the
weight-averaging momentum."""

import numpy as np
import pytest

from training.config import FitConfig
from training.train import ema_momentum, learning_rate


def test_plateau_is_a_constant_rate():
    assert learning_rate(FitConfig(learning_rate=3e-3), steps_per_epoch=10) == 3e-3


def test_cosine_warms_up_over_the_first_epoch_then_decays_to_zero_at_the_last():
    fit = FitConfig(learning_rate=2e-3, lr_schedule="cosine", warmup_epochs=1, epochs=5)
    schedule = learning_rate(fit, steps_per_epoch=10)
    rates = np.array([float(schedule(step)) for step in range(51)])
    assert abs(rates[0] - 2e-4) < 1e-9 and abs(rates[10] - 2e-3) < 1e-9  # warm-up from a tenth to the peak
    assert (np.diff(rates[:11]) > 0).all() and (np.diff(rates[10:]) < 0).all()
    assert rates[50] < 1e-9 and abs(rates[30] - 1e-3) < 1e-6  # half way through the decay: half the peak


def test_cosine_without_warm_up_starts_at_the_peak():
    schedule = learning_rate(FitConfig(lr_schedule="cosine", warmup_epochs=0, epochs=2), steps_per_epoch=4)
    assert abs(float(schedule(0)) - 2e-3) < 1e-9


def test_weight_averaging_spans_at_most_three_epochs():
    """FSDD (36 steps an epoch) keeps the measured 0.99; a small data set's few steps get a shorter average, which
    would otherwise still hold the barely trained first step's weights at the end (Keras has no warm-up)."""
    assert ema_momentum(FitConfig(), 36) == 0.99
    assert ema_momentum(FitConfig(), 4) == pytest.approx(1 - 1 / 12)
    assert ema_momentum(FitConfig(ema_momentum=0), 36) == 0.0
    assert ema_momentum(FitConfig(ema_momentum=0.9), 4) == 0.9

"""The report's plain verdict on CNN against baseline: who is ahead, by how much, with the error bar."""

from training.config import ModelConfig
from training.report import model_name, verdict


def test_the_baseline_ahead_is_said_plainly_with_its_margin_and_error():
    text = verdict(-0.045, 0.012, "test accuracy", "over 6 held-out speaker folds")
    assert text.startswith("**The baseline beats the CNN** by 0.045 ± 0.012 test accuracy over 6 held-out speaker")


def test_the_cnn_ahead():
    assert verdict(0.3, 0.02, "balanced accuracy", "on 300 test clips").startswith(
        "The CNN beats the baseline by 0.300 ± 0.020 balanced accuracy on 300 test clips"
    )


def test_a_difference_inside_the_error_bar_is_a_tie():
    assert verdict(0.01, 0.02, "test accuracy", "over 5 folds").startswith("The CNN and the baseline are level: +0.010")


def test_the_verdict_names_the_model_it_judges():
    assert model_name(ModelConfig(members=1).model_dump()) == "the CNN"
    assert model_name(ModelConfig(members=2).model_dump()) == "the ensemble of 2 CNNs"
    pooled = ModelConfig(backbone="musicnn_vgg", head="pooled_logistic").model_dump()
    assert model_name(pooled) == "the musicnn model with a logistic clip head"
    text = verdict(-0.1, 0.01, "test accuracy", "over 5 folds", model_name(pooled))
    assert text.startswith("**The baseline beats the musicnn model with a logistic clip head** by 0.100")
    ahead = verdict(0.1, 0.01, "test accuracy", "over 5 folds", model_name(ModelConfig(members=2).model_dump()))
    assert ahead.startswith("The ensemble of 2 CNNs beats the baseline by 0.100")

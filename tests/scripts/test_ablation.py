"""The ablation script: every variant's overrides are valid training settings, and its table adds up."""

import pytest

from scripts import ablation as ABLATION
from training.config import load_config


@pytest.mark.parametrize("variant", list(ABLATION.VARIANTS))
def test_every_variant_is_a_valid_config(variant):
    cmd = ABLATION.command(variant, "george", None, ABLATION.VARIANTS[variant][1])
    overrides = [cmd[i + 1] for i, arg in enumerate(cmd) if arg == "--set"]
    cfg = load_config(None, overrides)
    assert cfg.data.test_groups == ["george"] and cfg.data.group_column == "speaker"
    assert str(ABLATION.OUT / variant / "george") in cmd


def test_table_gives_each_variant_its_mean_and_its_difference_to_the_first_row():
    def run(acc):
        return {"test": {"accuracy": acc}, "timing": {"fit_s": 100.0}}

    results = {"before": {"a": run(0.8), "b": run(0.6)}, "vtlp": {"a": run(0.9), "b": run(0.8)}}
    rows = ABLATION.table(results, ["a", "b"]).splitlines()
    assert rows[2].startswith("| before |") and "**0.700**" in rows[2] and "+0.000" in rows[2]
    assert "**0.850**" in rows[3] and "+0.150" in rows[3]

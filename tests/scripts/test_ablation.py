"""The ablation script: every variant's overrides are valid training settings, and its table adds up."""

import pytest

from scripts import ablation as ABLATION
from training.config import load_config


@pytest.mark.parametrize("variant", list(ABLATION.VARIANTS))
def test_every_variant_is_a_valid_config(variant):
    cmd = ABLATION.command(variant, "george", None, ABLATION.overrides_of(variant, None))
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


def test_a_seed_is_the_last_override_and_its_own_run_folder():
    overrides = ABLATION.overrides_of("vtlp-seed2+ema", 7)
    assert overrides[-1] == "seed=7" and load_config(None, overrides).seed == 7  # after the variant's own seed=2
    assert ABLATION.overrides_of("vtlp+ema", None) == ABLATION.VARIANTS["vtlp+ema"][1]
    assert ABLATION.run_name("vtlp+ema", 7) == "vtlp+ema@seed7" and ABLATION.run_name("vtlp+ema", None) == "vtlp+ema"


def test_seed_table_pairs_each_variant_with_the_first_seed_by_seed():
    def run(acc):
        return {"test": {"accuracy": acc}, "timing": {"fit_s": 1.0}}

    accs = {  # (variant, seed) -> accuracy on speakers a and b
        ("before", 1): (0.8, 0.6), ("before", 2): (0.7, 0.7),
        ("vtlp", 1): (0.9, 0.7), ("vtlp", 2): (0.9, 0.7),
    }  # fmt: skip
    results = {ABLATION.run_name(v, seed): {"a": run(a), "b": run(b)} for (v, seed), (a, b) in accs.items()}
    rows = ABLATION.seed_table(results, ["before", "vtlp"], [1, 2], ["a", "b"]).splitlines()
    assert rows[2] == "| before | **0.700** ± 0.000 | 0.650 ± 0.071 | +0.000 ± 0.000 |"
    # vtlp - before: +0.1 with seed 1, +0.1 with seed 2; worst speakers 0.7 and 0.7
    assert rows[3] == "| vtlp | **0.800** ± 0.000 | 0.700 ± 0.000 | +0.100 ± 0.000 |"
    assert "| vtlp@seed2 |" in ABLATION.table(results, ["a", "b"])

"""docs/results.md: each target's verdict follows from the figure beside it; the page names the machine of every run."""

from scripts import results as RESULTS


def summary(mean, std, worst, base, gap, se, group="g"):
    return {
        "mean_test_accuracy": mean,
        "std_test_accuracy": std,
        "worst_test_accuracy": worst,
        "worst_group": group,
        "mean_test_balanced_accuracy": mean,
        "std_test_balanced_accuracy": std,
        "mean_baseline_test_balanced_accuracy": base,
        "cnn_minus_baseline": {"balanced accuracy": {"mean": gap, "standard_error": se}},
        "repeats": 3,
    }


def test_each_target_is_met_or_not_by_its_own_figure():
    run = {"test": {"accuracy": 1.0}, "timing": {"total_s": 101.0}}
    speakers = summary(0.886, 0.069, 0.774, 0.53, 0.35, 0.06)
    instruments = summary(0.86, 0.04, 0.78, 0.70, 0.16, 0.02)
    rows = RESULTS._targets(run, speakers, instruments)[2:]
    assert [r.rsplit("|", 2)[-2].strip() for r in rows] == ["met", "**not reached**", "met", "met", "met"]
    slow = RESULTS._targets({**run, "timing": {"total_s": 195.0}}, speakers, summary(0.84, 0.05, 0.7, 0.75, 0.09, 0.03))
    assert [r.rsplit("|", 2)[-2].strip() for r in slow[2:]] == ["met", "**not reached**"] + ["**not reached**"] * 3


def test_runs_from_two_machines_are_each_named_with_their_machine():
    one = {"a": {"machine": "vm A"}, "b": {"machine": "vm A"}}
    assert RESULTS._machines(one) == "Machine: vm A"
    two = {**one, "c": {"machine": "vm B"}}
    assert RESULTS._machines(two) == "Machines: vm A (a, b); vm B (c)"


def test_the_pooled_section_compares_the_heads_on_the_same_folds():
    per_window, val15, pooled = (
        summary(m, 0.05, w, 0.68, g, 0.02)
        for m, w, g in [(0.806, 0.733, 0.124), (0.846, 0.75, 0.164), (0.859, 0.783, 0.167)]
    )
    pooled["table"] = "| fold table |"
    lines = RESULTS._pooled_section(pooled, val15, per_window)
    rows = [line for line in lines if line.startswith("| ") and "± 0." in line]
    assert [r.split("|")[2].strip() for r in rows] == ["0.806 ± 0.050", "0.846 ± 0.050", "0.859 ± 0.050"]
    assert "| fold table |" in lines and "optimistic" in " ".join(lines)

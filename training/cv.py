"""Leave-one-group-out evaluation: for each group (e.g. speaker), train on the others and test on it.

The summary gives the folds' mean, standard deviation and worst test accuracy, the baseline's on the same folds,
and says plainly which of the CNN and the baseline is ahead, by how much, with the error bar (the standard error of
the per-fold difference). Fold results are reproducible: every fold trains with the config's seed."""

import json
from pathlib import Path

import numpy as np

from training.config import TrainConfig
from training.dataset import DataError, discover
from training.report import verdict
from training.train import train


def cross_validate(data: Path, out: Path, cfg: TrainConfig, group_column: str) -> dict:
    groups = sorted({c.group for c in discover(data, group_column) if c.group})
    if len(groups) < 3:
        raise DataError(f"column {group_column!r} has {len(groups)} groups; leave-one-out needs at least 3")
    out = Path(out)
    folds = {}
    for g in groups:
        fold_cfg = cfg.model_copy(
            update={
                "data": cfg.data.model_copy(update={"group_column": group_column, "test_groups": [g]}),
                "register_model": False,
            }
        )
        m = train(data, out / g, fold_cfg)
        folds[g] = {
            "test_accuracy": m["test"]["accuracy"],
            "test_balanced_accuracy": m["test"]["balanced_accuracy"],
            "val_accuracy": m["val"]["accuracy"],
            "train_accuracy": m["train"]["accuracy"],
            "baseline_test_accuracy": m["baseline"]["test"]["accuracy"],
            "best_epoch": m["best_epoch"],
            "time_s": m["timing"]["total_s"],
        }
    acc = np.array([f["test_accuracy"] for f in folds.values()])
    base = np.array([f["baseline_test_accuracy"] for f in folds.values()])
    diff = acc - base
    diff_se = float(diff.std(ddof=1) / np.sqrt(len(diff)))
    result = {
        "group_column": group_column,
        "augment": cfg.augment.enabled,
        "folds": folds,
        "mean_test_accuracy": float(acc.mean()),
        "std_test_accuracy": float(acc.std(ddof=1)),
        "worst_test_accuracy": float(acc.min()),
        "worst_group": groups[int(acc.argmin())],
        "mean_baseline_test_accuracy": float(base.mean()),
        "std_baseline_test_accuracy": float(base.std(ddof=1)),
        "cnn_minus_baseline": {"mean": float(diff.mean()), "standard_error": diff_se},
        "verdict": verdict(
            float(diff.mean()), diff_se, "test accuracy", f"over {len(diff)} held-out {group_column} folds"
        ),
    }
    lines = [
        f"| held-out {group_column} | train acc | val acc | test acc | baseline test acc | best epoch | time s |",
        "|---|---|---|---|---|---|---|",
    ]
    for g, f in folds.items():
        lines.append(
            f"| {g} | {f['train_accuracy']:.3f} | {f['val_accuracy']:.3f} | {f['test_accuracy']:.3f} | "
            f"{f['baseline_test_accuracy']:.3f} | {f['best_epoch']} | {f['time_s']:.0f} |"
        )
    lines.append(
        f"| **mean ± sd** | | | **{acc.mean():.3f} ± {acc.std(ddof=1):.3f}** (worst {acc.min():.3f}, "
        f"{result['worst_group']}) | {base.mean():.3f} ± {base.std(ddof=1):.3f} | | |"
    )
    result["table"] = "\n".join(lines) + "\n\n" + result["verdict"]
    (out / "summary.json").write_text(json.dumps(result, indent=2))
    (out / "summary.md").write_text(
        f"# Leave-one-{group_column}-out, augmentation {'on' if cfg.augment.enabled else 'off'}\n\n"
        + result["table"]
        + "\n"
    )
    return result

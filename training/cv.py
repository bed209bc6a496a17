"""Leave-one-group-out evaluation: for each group (e.g. speaker), train on the others and test on it."""

import json
from pathlib import Path

import numpy as np

from training.config import TrainConfig
from training.dataset import DataError, discover
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
    result = {
        "group_column": group_column,
        "augment": cfg.augment.enabled,
        "folds": folds,
        "mean_test_accuracy": float(acc.mean()),
        "worst_test_accuracy": float(acc.min()),
        "worst_group": groups[int(acc.argmin())],
        "mean_baseline_test_accuracy": float(base.mean()),
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
        f"| **mean** | | | **{acc.mean():.3f}** (worst {acc.min():.3f}, {result['worst_group']}) | "
        f"{base.mean():.3f} | | |"
    )
    result["table"] = "\n".join(lines)
    (out / "summary.json").write_text(json.dumps(result, indent=2))
    (out / "summary.md").write_text(
        f"# Leave-one-{group_column}-out, augmentation {'on' if cfg.augment.enabled else 'off'}\n\n"
        + result["table"]
        + "\n"
    )
    return result

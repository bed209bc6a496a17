"""Cross-validation: leave-one-group-out (e.g. a held-out speaker per fold) or repeated stratified k-fold.

Leave-one-group-out trains one model per group on all the others and tests on it. Repeated stratified k-fold
splits the clips into k folds of equal class make-up (groups kept whole when the data has a group column), `repeats`
times with different shuffles, and tests each fold with a model trained on the rest; each fold's split is written
as a manifest (`<out>/r<repeat>-f<fold>/manifest.csv`), so any fold can be re-run on its own. Validation is drawn
from the training part as a single run draws it.

The summary gives the folds' mean, standard deviation and worst test accuracy and balanced accuracy, the
baseline's on the same folds, and says plainly which of the CNN and the baseline is ahead, by how much, with the
error bar (the standard error of the per-fold difference). Fold results are reproducible: every fold trains with
the config's seed, and the k-fold shuffles are seeded by it too.
"""

import csv
import json
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from training.config import TrainConfig
from training.dataset import DataError, discover
from training.report import model_name, verdict
from training.train import train


def cross_validate(data: Path, out: Path, cfg: TrainConfig, group_column: str) -> dict:
    """Leave one group out, for every group of `group_column`."""
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
        folds[g] = fold_figures(train(data, out / g, fold_cfg))
    title = f"Leave-one-{group_column}-out"
    basis = f"over {len(folds)} held-out {group_column} folds"
    return summarise(out, folds, cfg, f"held-out {group_column}", basis, title, {"group_column": group_column})


def cross_validate_kfold(
    data: Path, out: Path, cfg: TrainConfig, folds: int, repeats: int, group_column: str | None = None
) -> dict:
    """Repeated stratified k-fold: `repeats` x `folds` models, each tested on one fold."""
    if folds < 2 or repeats < 1:
        raise DataError(f"k-fold needs at least 2 folds and 1 repeat, got {folds} folds, {repeats} repeats")
    clips = discover(data, group_column or "group")
    labels = np.array([c.label for c in clips])
    smallest = min(np.unique(labels, return_counts=True)[1])
    if smallest < folds:
        raise DataError(f"the smallest class has {smallest} clips: fewer than the {folds} folds")
    grouped = group_column is not None and all(c.group for c in clips)
    out = Path(out)
    # the fold manifests name their groups in the column "group"
    fold_cfg = cfg.model_copy(
        update={"data": cfg.data.model_copy(update={"group_column": "group"}), "register_model": False}
    )
    results = {}
    for r in range(repeats):
        seed = cfg.seed + r
        if grouped:
            splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
            parts = splitter.split(np.zeros(len(clips)), labels, [c.group for c in clips])
        else:
            parts = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(np.zeros(len(clips)), labels)
        for f, (_, test) in enumerate(parts):
            name = f"r{r}-f{f}"
            manifest = write_fold_manifest(out / name / "manifest.csv", clips, set(test.tolist()))
            results[name] = fold_figures(train(manifest, out / name / "run", fold_cfg))
    n = len(results)
    title = f"Repeated stratified {folds}-fold ({repeats} x {folds} = {n} folds)"
    plan = {"folds_per_repeat": folds, "repeats": repeats, "group_column": group_column if grouped else None}
    return summarise(out, results, cfg, "fold", f"over {n} folds ({repeats} x {folds}-fold)", title, plan)


def write_fold_manifest(path: Path, clips: list, test: set[int]) -> Path:
    """The fold as a manifest: every clip (absolute path), `test` marked, the rest left for training to split."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        w = csv.writer(handle)
        w.writerow(["path", "label", "split", "group"])
        for i, c in enumerate(clips):
            w.writerow([str(Path(c.path).resolve()), c.label, "test" if i in test else "", c.group or ""])
    return path


def fold_figures(m: dict) -> dict:
    return {
        "test_accuracy": m["test"]["accuracy"],
        "test_balanced_accuracy": m["test"]["balanced_accuracy"],
        "val_accuracy": m["val"]["accuracy"],
        "train_accuracy": m["train"]["accuracy"],
        "baseline_test_accuracy": m["baseline"]["test"]["accuracy"],
        "baseline_test_balanced_accuracy": m["baseline"]["test"]["balanced_accuracy"],
        "best_epoch": m["best_epoch"],
        "time_s": m["timing"]["total_s"],
    }


def _spread(values: np.ndarray) -> tuple[float, float]:
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


def summarise(out: Path, folds: dict, cfg: TrainConfig, fold_name: str, basis: str, title: str, plan: dict) -> dict:
    """summary.json and summary.md: per-fold table, mean ± sd, worst fold, baseline, the verdict; `plan` says how
    the folds were made."""
    names = list(folds)
    acc = np.array([folds[n]["test_accuracy"] for n in names])
    bal = np.array([folds[n]["test_balanced_accuracy"] for n in names])
    base = np.array([folds[n]["baseline_test_accuracy"] for n in names])
    base_bal = np.array([folds[n]["baseline_test_balanced_accuracy"] for n in names])
    result = {**plan, "folds": folds, "augment": cfg.augment.enabled}
    for key, values in (
        ("test_accuracy", acc),
        ("test_balanced_accuracy", bal),
        ("baseline_test_accuracy", base),
        ("baseline_test_balanced_accuracy", base_bal),
    ):
        result[f"mean_{key}"], result[f"std_{key}"] = _spread(values)
    result["worst_test_accuracy"] = float(acc.min())
    result["worst_group"] = names[int(acc.argmin())]
    verdicts = []
    # Balanced test sets (every class as many clips, as in FSDD's speakers) make the two accuracies equal: one
    # sentence then, not the same one twice.
    same = np.allclose(acc, bal) and np.allclose(base, base_bal)
    name = model_name(cfg.model.model_dump())
    for metric, cnn, b in (("test accuracy", acc, base), ("balanced accuracy", bal, base_bal)):
        diff = cnn - b
        se = float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else 0.0
        result.setdefault("cnn_minus_baseline", {})[metric] = {"mean": float(diff.mean()), "standard_error": se}
        said = "test accuracy (= balanced accuracy: balanced test folds)" if same else metric
        verdicts.append(verdict(float(diff.mean()), se, said, basis, name))
    result["verdict"] = verdicts[0] if same else " ".join(verdicts)
    lines = [
        f"| {fold_name} | train acc | val acc | test acc | test balanced acc | baseline test acc | "
        "baseline balanced acc | best epoch | time s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for n in names:
        f = folds[n]
        lines.append(
            f"| {n} | {f['train_accuracy']:.3f} | {f['val_accuracy']:.3f} | {f['test_accuracy']:.3f} | "
            f"{f['test_balanced_accuracy']:.3f} | {f['baseline_test_accuracy']:.3f} | "
            f"{f['baseline_test_balanced_accuracy']:.3f} | {f['best_epoch']} | {f['time_s']:.0f} |"
        )
    lines.append(
        f"| **mean ± sd** | | | **{acc.mean():.3f} ± {result['std_test_accuracy']:.3f}** (worst {acc.min():.3f}, "
        f"{result['worst_group']}) | **{bal.mean():.3f} ± {result['std_test_balanced_accuracy']:.3f}** | "
        f"{base.mean():.3f} ± {result['std_baseline_test_accuracy']:.3f} | "
        f"{base_bal.mean():.3f} ± {result['std_baseline_test_balanced_accuracy']:.3f} | | |"
    )
    result["table"] = "\n".join(lines) + "\n\n" + result["verdict"]
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(result, indent=2))
    (out / "summary.md").write_text(
        f"# {title}, augmentation {'on' if cfg.augment.enabled else 'off'}\n\n" + result["table"] + "\n"
    )
    return result

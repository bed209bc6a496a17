"""The run report: confusion matrix and learning-curve PNGs, and report.md that a person reads at a glance."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import yaml  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

SPLITS = ("train", "val", "test")


def plot_confusion(matrix: list[list[int]], labels: list[str], title: str, path: Path) -> None:
    cm = np.asarray(matrix, dtype=float)
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    size = max(5.0, 0.55 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size, size * 0.9))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    for i in range(len(labels)):
        for j in range(len(labels)):
            if cm[i, j]:
                ax.text(j, i, int(cm[i, j]), ha="center", va="center", color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_curves(history: dict[str, list[float]], best_epoch: int, path: Path) -> None:
    epochs = np.arange(1, len(history["loss"]) + 1)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key, name in ((axes[0], "loss", "loss"), (axes[1], "accuracy", "accuracy")):
        ax.plot(epochs, history[key], label=f"train {name} (augmented)")
        ax.plot(epochs, history[f"val_{key}"], label=f"val {name}")
        ax.axvline(best_epoch, color="grey", linestyle="--", label=f"best epoch ({best_epoch})")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(name)
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def diagnose(summary: dict) -> list[str]:
    """Plain-language reading of the train/val gap, the best epoch and the curves."""
    notes = []
    train, val = summary["train"], summary["val"]
    gap = train["balanced_accuracy"] - val["balanced_accuracy"]
    hist, best, ran = summary["history"], summary["best_epoch"], summary["epochs_run"]
    if train["balanced_accuracy"] < 0.7:
        notes.append(
            f"**Underfitting**: balanced accuracy is only {train['balanced_accuracy']:.3f} on the training clips. "
            "The model cannot fit the data: more epochs, a larger model, a higher learning rate or less "
            "augmentation/regularisation."
        )
    elif gap > 0.10:
        notes.append(
            f"**Overfitting**: train {train['balanced_accuracy']:.3f} vs val {val['balanced_accuracy']:.3f} "
            f"balanced accuracy (gap {gap:+.3f}). The model memorises the training clips: more data or "
            "augmentation, more dropout/L2, or a smaller model."
        )
    elif gap > 0.03:
        notes.append(
            f"**Mild overfitting**: train/val gap {gap:+.3f} in balanced accuracy "
            f"({train['balanced_accuracy']:.3f} vs {val['balanced_accuracy']:.3f})."
        )
    else:
        notes.append(
            f"**Generalises**: train/val gap {gap:+.3f} in balanced accuracy "
            f"({train['balanced_accuracy']:.3f} vs {val['balanced_accuracy']:.3f})."
        )
    val_loss = hist["val_loss"]
    after = val_loss[best - 1 :]
    rise = (max(after) - val_loss[best - 1]) / max(val_loss[best - 1], 1e-9)
    max_epochs, patience = summary["config"]["fit"]["epochs"], summary["config"]["fit"]["early_stopping_patience"]
    if ran == max_epochs and ran - best < patience:
        notes.append(
            f"Best epoch {best} of {ran}, and training stopped at the epoch limit, not by early stopping: "
            "validation loss was still improving near the end, so more epochs (fit.epochs) may help."
        )
    elif rise > 0.2:
        notes.append(
            f"Best epoch {best} of {ran}: validation loss then rose {rise:.0%} while training loss kept falling, "
            f"the classic overfitting curve; early stopping restored the weights of epoch {best}."
        )
    else:
        notes.append(
            f"Best epoch {best} of {ran}: validation loss flattened (within {rise:.0%} of its minimum afterwards); "
            "early stopping restored the best weights."
        )
    if hist["loss"][-1] > hist["val_loss"][-1]:
        notes.append(
            "Training loss sits above validation loss: expected here, because training windows are augmented "
            "and dropout is active while validation is clean."
        )
    split = "test" if summary.get("test") else "val"
    base, cnn = summary["baseline"][split], summary[split]
    diff = cnn["balanced_accuracy"] - base["balanced_accuracy"]
    n = cnn["clips"]
    # One split: the error bar is the binomial standard error of the difference of two accuracies on n clips.
    error = float(np.sqrt((_var(cnn["balanced_accuracy"]) + _var(base["balanced_accuracy"])) / n)) if n else 0.0
    name = model_name(summary["config"]["model"])
    notes.append(
        f"Against the baseline (logistic regression on clip-mean MFCCs): {name} {cnn['balanced_accuracy']:.3f} "
        f"vs baseline {base['balanced_accuracy']:.3f} balanced accuracy. "
        + verdict(diff, error, "balanced accuracy", f"on {n} {split} clips", name)
    )
    return notes


def model_name(model_cfg: dict) -> str:
    """What the verdict calls the trained model, from its config (ModelConfig as a dict), as a noun phrase: "the
    CNN", "the ensemble of 2 CNNs", "the musicnn model with a logistic clip head"."""
    if model_cfg.get("backbone", "none") != "none":
        head = "a logistic clip head" if model_cfg.get("head") == "pooled_logistic" else "a dense head"
        return f"the {model_cfg['backbone'].split('_')[0]} model with {head}"
    members = model_cfg.get("members", 1)  # configs written before ensembles had one CNN
    return "the CNN" if members == 1 else f"the ensemble of {members} CNNs"


def verdict(diff: float, error: float, metric: str, basis: str, model: str = "the CNN") -> str:
    """One plain sentence: which of `model` (a noun phrase, as model_name gives) and the baseline is ahead on
    `metric`, by how much (`diff` = model minus baseline), with its error bar (± `error`, one standard error)."""
    subject = model[:1].upper() + model[1:]
    if abs(diff) <= error:
        within = "within one standard error"
        return f"{subject} and the baseline are level: {diff:+.3f} ± {error:.3f} {metric} {basis}, {within}."
    leader, margin = (f"{subject} beats the baseline", diff) if diff > 0 else (f"**The baseline beats {model}**", -diff)
    return f"{leader} by {margin:.3f} ± {error:.3f} {metric} {basis} (± one standard error)."


def _var(p: float) -> float:
    return p * (1 - p)


def _table(rows: list[list[str]], header: list[str]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _teacher_lines(summary: dict) -> list[str]:
    teacher = summary.get("teacher")
    if not teacher:
        return []
    cfg = summary["config"]["teacher"]
    how = (
        f"{len(teacher['parts'])} teachers, each predicting training clips it did not train on"
        if cfg["cross_fit"]
        else "one teacher fitted on all training clips"
    )
    return [
        "",
        f"Targets: labels blended with the probabilities of the teacher `{teacher['config']}` (its share "
        f"{cfg['weight']}, temperature {cfg['temperature']}; {how}; {teacher['train_accuracy']:.3f} of the training "
        f"clips right; {summary['timing']['teacher_s']:.0f} s). The model saved is the CNN alone.",
    ]


def write_report(out: Path, summary: dict, labels: list[str]) -> None:
    out = Path(out)
    eval_split = "test" if summary.get("test") else "val"
    plot_confusion(summary[eval_split]["confusion_matrix"], labels, f"{eval_split} clips", out / "confusion_matrix.png")
    plot_curves(summary["history"], summary["best_epoch"], out / "learning_curves.png")

    keys = ("accuracy", "balanced_accuracy", "macro_f1", "loss")
    rows = []
    for split in SPLITS:
        if summary.get(split):
            rows.append(
                [f"model {split}"] + [f"{summary[split][k]:.4f}" for k in keys] + [str(summary[split]["clips"])]
            )
    for split in SPLITS:
        if summary["baseline"].get(split):
            b = summary["baseline"][split]
            rows.append([f"baseline {split}"] + [f"{b[k]:.4f}" for k in keys] + [str(b["clips"])])
    per_class = [
        [label]
        + [f"{summary[eval_split]['per_class'][label][k]:.3f}" for k in ("precision", "recall", "f1")]
        + [str(summary[eval_split]["per_class"][label]["support"])]
        for label in labels
    ]
    data = summary["data"]
    data_rows = [
        [label]
        + [str(data["splits"][s]["clips_per_class"][label]) for s in SPLITS]
        + [f"{sum(data['splits'][s]['seconds_per_class'][label] for s in SPLITS):.1f}"]
        + [f"{summary['class_weights'].get(label, 1.0):.3f}"]
        for label in labels
    ]
    timing = summary["timing"]
    skipped = data["skipped"]
    text = [
        f"# Training report: {out.name}",
        "",
        f"Data `{summary['data_path']}` (fingerprint `{summary['fingerprint']}`), {data['clips']} clips, "
        f"{len(labels)} classes. Model tag: `{summary.get('bentoml_tag', 'not registered')}`. "
        f"Trained in {timing['total_s']:.0f} s (fit {timing['fit_s']:.0f} s).",
        *_teacher_lines(summary),
        "",
        "## Metrics (clip level: a clip's windows are averaged)",
        "",
        _table(rows, ["model / split", *keys, "clips"]),
        "",
        "## Diagnosis",
        "",
        *[f"- {n}" for n in diagnose(summary)],
        "",
        "![learning curves](learning_curves.png)",
        "",
        f"## Confusion matrix ({eval_split})",
        "",
        "![confusion matrix](confusion_matrix.png)",
        "",
        _table(per_class, ["class", "precision", "recall", "f1", "support"]),
        "",
        "## Data",
        "",
        f"Clip durations: min {data['duration_s']['min']} s, median {data['duration_s']['median']} s, "
        f"max {data['duration_s']['max']} s, total {data['duration_s']['total']} s. Windows per split: "
        + ", ".join(f"{s} {data['splits'][s]['windows']}" for s in SPLITS)
        + (f". Groups: {', '.join(data['groups'])}." if data["groups"] else "."),
        "",
        _table(data_rows, ["class", "train clips", "val clips", "test clips", "seconds", "class weight"]),
        "",
        f"Skipped files: {len(skipped)}" + ("" if not skipped else ":"),
        *[f"- `{s['path']}`: {s['reason']}" for s in skipped],
        "",
        "## Config",
        "",
        "```yaml",
        yaml.safe_dump(summary["config"], sort_keys=False).rstrip(),
        "```",
        "",
    ]
    (out / "report.md").write_text("\n".join(text))

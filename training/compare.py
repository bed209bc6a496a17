"""Runs side by side: one row per run directory, the columns ML people keep in their experiment tables."""

import json
from pathlib import Path


def load_run(run: Path) -> dict:
    path = Path(run) / "metrics.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: not a training run directory")
    return json.loads(path.read_text())


def row(name: str, m: dict) -> list[str]:
    cfg = m["config"]
    feats = cfg["features"]
    kind = feats["kind"] + ("+d" if feats.get("deltas") else "")
    weights = cfg["class_weight"] if isinstance(cfg["class_weight"], str) else "custom"

    def f(split: str, key: str, src: dict = m) -> str:
        return f"{src[split][key]:.3f}" if src.get(split) else "-"

    return [
        name,
        kind,
        "on" if cfg["augment"]["enabled"] else "off",
        weights,
        f("train", "accuracy"),
        f("val", "accuracy"),
        f("test", "accuracy"),
        f("test", "balanced_accuracy"),
        f("test", "macro_f1"),
        f("test", "balanced_accuracy", m["baseline"]),
        f"{m['best_epoch']}/{m['epochs_run']}",
        f"{m['timing']['total_s']:.0f}",
    ]


HEADER = [
    "run",
    "features",
    "augment",
    "class weights",
    "train acc",
    "val acc",
    "test acc",
    "test bal acc",
    "test macro F1",
    "baseline test bal acc",
    "best/epochs",
    "time s",
]


def table(runs: list[Path]) -> str:
    rows = [row(Path(r).name, load_run(r)) for r in runs]
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])

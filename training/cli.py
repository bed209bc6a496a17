"""Command line: train, evaluate, compare, cv (leave-one-group-out). `python -m training --help`."""

import argparse
import json
import logging
import sys
from pathlib import Path

from training.config import ConfigError, load_config
from training.dataset import DataError

DEFAULT_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "fsdd"


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder (class sub-folders or manifest.csv) or CSV")
    p.add_argument("--config", type=Path, help="YAML training config (see configs/)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set fit.epochs=10 --set augment.enabled=false",
    )
    p.add_argument("--epochs", type=int, help="shortcut for --set fit.epochs=N")
    p.add_argument("--seed", type=int, help="shortcut for --set seed=N")
    p.add_argument("--no-register", action="store_true", help="do not save into the BentoML model store")
    p.add_argument(
        "--cache-dir",
        type=Path,
        help="shortcut for --set data.cache_dir=DIR: decoded clips and features cached here "
        "(default $AUDIOCLF_CACHE_DIR or ~/.cache/audioclf/training)",
    )


def _config(args):
    overrides = list(args.overrides)
    if args.epochs is not None:
        overrides.append(f"fit.epochs={args.epochs}")
    if args.seed is not None:
        overrides.append(f"seed={args.seed}")
    if args.no_register:
        overrides.append("register_model=false")
    if args.cache_dir is not None:
        overrides.append(f"data.cache_dir={json.dumps(str(args.cache_dir))}")  # a YAML string, always
    return load_config(args.config, overrides)


def cmd_train(args) -> int:
    from training.train import train

    cfg = _config(args)
    summary = train(args.data, args.out, cfg)
    test = summary.get("test") or summary["val"]
    print(
        f"\ntest accuracy {test['accuracy']:.4f}, balanced {test['balanced_accuracy']:.4f}, "
        f"macro F1 {test['macro_f1']:.4f}; trained in {summary['timing']['total_s']:.0f} s"
    )
    print(f"report: {args.out / 'report.md'}")
    print(f"model folder: {args.out / 'model'}")
    if "bentoml_tag" in summary:
        print(f"BentoML model: {summary['bentoml_tag']}")
    return 0


def cmd_cv(args) -> int:
    """Leave one group out (train on all other groups, test on this one, for every group), or with --folds,
    repeated stratified k-fold."""
    from training.cv import cross_validate, cross_validate_kfold

    cfg = _config(args)
    if args.folds:
        result = cross_validate_kfold(args.data, args.out, cfg, args.folds, args.repeats, args.group_column)
    else:
        result = cross_validate(args.data, args.out, cfg, args.group_column or "speaker")
    print(result["table"])
    print(f"\nsummary: {args.out / 'summary.md'}")
    return 0


def cmd_evaluate(args) -> int:
    from training.offline_eval import evaluate_model

    result = evaluate_model(args.model, args.data, args.split)
    print(json.dumps({k: v for k, v in result.items() if k not in ("per_class", "confusion_matrix")}, indent=2))
    if args.output:
        args.output.write_text(json.dumps(result, indent=2))
    return 0


def cmd_compare(args) -> int:
    from training.compare import table

    print(table(args.runs))
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    sub = root.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a model and write a run directory")
    _add_config_args(p)
    p.add_argument("--out", type=Path, required=True, help="run directory to create")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("cv", help="leave-one-group-out (e.g. held-out speaker) or repeated stratified k-fold")
    _add_config_args(p)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument(
        "--group-column",
        help="manifest column naming the groups: one fold per group (default speaker); with --folds, groups are kept "
        "whole within a fold",
    )
    p.add_argument("--folds", type=int, help="repeated stratified k-fold with this many folds instead")
    p.add_argument("--repeats", type=int, default=1, help="with --folds: shuffles of the k folds (default 1)")
    p.set_defaults(func=cmd_cv)

    p = sub.add_parser("evaluate", help="score a saved model on a folder or manifest")
    p.add_argument("--model", required=True, help="model folder (run/model) or BentoML tag (audio_classifier:latest)")
    p.add_argument("--data", type=Path, required=True)
    p.add_argument(
        "--split",
        choices=["train", "val", "test", "all"],
        default="all",
        help="rows of the manifest to use (by its split column)",
    )
    p.add_argument("--output", type=Path, help="also write the full metrics JSON here")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("compare", help="table of runs side by side")
    p.add_argument("runs", nargs="+", type=Path)
    p.set_defaults(func=cmd_compare)
    return root


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, DataError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

"""librosa (audiocore.features) against keras.ops (audiocore.ops_features) for the model's features: the same
answers, and which is faster here.

    python -m loadtests.features_bench --model-dir runs/x/model [--data ../shared/data]

One run, one process, on this machine's Keras backend (TensorFlow on CPU in our venv; on the GPU machine JAX or
torch): (1) the FSDD test split classified with each featurizer (clip accuracy, labels that differ, the largest
feature difference); (2) windows per second at batch sizes 1, 64 and 512 (median of repeated calls after
warm-up) of the features alone (librosa; keras.ops called eagerly) and of features + model the way each would
serve: librosa features then the model's `predict_on_batch`, against the model wrapped to take waveforms
(`ops_features.waveform_model`), whose features compile into the model's graph. Prints a table with the machine, date
and command; docs/performance.md quotes it.
"""

import argparse
import csv
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from audiocore import artifact, features, ops_features
from audiocore.clip import prepare
from devtools import machine
from devtools.markdown import table
from loadtests import clips as clipsets

BATCHES = (1, 64, 512)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, required=True, help="a trained model folder (FSDD)")
    parser.add_argument("--data", help="shared data folder holding fsdd/ (default ../shared/data)")
    parser.add_argument("--seconds", type=float, default=3.0, help="timed seconds per featurizer and batch size")
    parser.add_argument("--threads", type=int, default=1, help="TensorFlow threads (the service's default: 1)")
    return parser.parse_args(argv)


def accuracy(model, meta, aggregator, fsdd: Path) -> dict:
    with open(fsdd / "manifest.csv", newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["split"] == "test"]
    cfg = meta.features
    prepared = [prepare(fsdd / r["path"], cfg) for r in rows]
    counts = [len(p.windows) for p in prepared]
    windows = np.concatenate([p.windows for p in prepared])
    from keras import ops

    feats = {
        "librosa": features.featurize(windows, cfg),
        "keras.ops": ops.convert_to_numpy(ops_features.featurize(windows, cfg)),
    }
    labels = {}
    for name, x in feats.items():
        probs = np.asarray(model.predict(x, batch_size=512, verbose=0))
        parts = np.split(probs, np.cumsum(counts)[:-1])
        labels[name] = [meta.labels[int(np.argmax(aggregator.clip(p)))] for p in parts]
    truth = [r["label"] for r in rows]
    return {
        "clips": len(rows),
        "windows": len(windows),
        "acc": {
            name: float(np.mean([a == b for a, b in zip(got, truth, strict=True)])) for name, got in labels.items()
        },
        "differ": sum(a != b for a, b in zip(labels["librosa"], labels["keras.ops"], strict=True)),
        "max_abs": float(np.abs(feats["librosa"] - feats["keras.ops"]).max()),
        "max_value": float(np.abs(feats["librosa"]).max()),
    }


def speed(fn, windows: np.ndarray, seconds: float) -> float:
    """Windows per second: the median of calls timed over about `seconds`, after two warm-up calls."""
    fn(windows)
    fn(windows)
    times, end = [], time.perf_counter() + seconds
    while time.perf_counter() < end or len(times) < 3:
        t = time.perf_counter()
        fn(windows)
        times.append(time.perf_counter() - t)
    return len(windows) / statistics.median(times)


def main(argv: list[str]) -> int:
    args = parse(argv)
    import keras
    from keras import ops

    if keras.backend.backend() == "tensorflow":  # as service.model bounds them, before TensorFlow runs anything
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)

    model, meta, aggregator = artifact.load(args.model_dir)
    cfg = meta.features
    if not ops_features.supports(cfg):
        print(f"{args.model_dir}: deltas are not computed by keras.ops; nothing to compare")
        return 2
    fsdd = clipsets.data_dir(args.data) / "fsdd"
    acc = accuracy(model, meta, aggregator, fsdd)
    pool = np.concatenate([prepare(c.data, cfg).windows for c in clipsets.short_clips(fsdd.parent, limit=512)])
    wrapped = ops_features.waveform_model(model, cfg)
    rows = []
    for batch in BATCHES:
        w = np.resize(pool, (batch, cfg.window_samples)).astype(np.float32)
        lib = speed(lambda x: features.featurize(x, cfg), w, args.seconds)
        kops = speed(lambda x: ops.convert_to_numpy(ops_features.featurize(x, cfg)), w, args.seconds)
        served = speed(lambda x: model.predict_on_batch(features.featurize(x, cfg)), w, args.seconds)
        inside = speed(lambda x: np.asarray(wrapped.predict_on_batch(x)), w, args.seconds)
        rows.append(
            (
                batch,
                f"{lib:,.0f}",
                f"{kops:,.0f}",
                f"{kops / lib:.2f} x",
                f"{served:,.0f}",
                f"{inside:,.0f}",
                f"{inside / served:.2f} x",
            )
        )
    print(f"Machine: {machine.line()}; Keras backend {keras.backend.backend()}")
    print(f"Date: {datetime.now(UTC).isoformat(timespec='seconds')}. Model: {args.model_dir} ({meta.features.kind}).")
    threads = os.environ.get("OMP_NUM_THREADS", "default")
    bounded = f", TensorFlow threads {args.threads}" if keras.backend.backend() == "tensorflow" else ""
    print(f"Command: `python -m loadtests.features_bench {' '.join(argv)}` (OMP_NUM_THREADS {threads}{bounded})\n")
    print(
        f"FSDD test split, {acc['clips']} clips ({acc['windows']} windows): "
        f"accuracy librosa {acc['acc']['librosa']:.4f}, "
        f"keras.ops {acc['acc']['keras.ops']:.4f}; labels that differ: {acc['differ']}; largest feature difference "
        f"{acc['max_abs']:.2e} (values up to {acc['max_value']:.0f})\n"
    )
    header = (
        "windows per call",
        "features: librosa /s",
        "keras.ops (eager) /s",
        "ratio",
        "librosa + model /s",
        "waveform model /s",
        "ratio",
    )
    print(table(header, rows, "rrrrrrr"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

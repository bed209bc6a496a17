"""One training run, start to finish: data -> features -> fit -> evaluate -> report -> model folder + store."""

import json
import logging
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import keras
import numpy as np
import tensorflow as tf
import yaml

from audiocore import artifact
from audiocore.aggregate import MeanProbabilities, PooledLogistic
from training import dataset as data_mod
from training import store
from training.augment import Augmenter
from training.baseline import run_baseline
from training.config import FitConfig, TrainConfig, load_config
from training.evaluate import metrics, predict_clips
from training.model import (
    MemberCrossentropy,
    build_head,
    build_model,
    ensemble_accuracy,
    member_outputs,
    on_backbone,
    student_accuracy,
    with_teachers,
)
from training.pipeline import balanced_class_weights, eval_dataset, one_hot, standardisation, train_dataset
from training.report import write_report
from training.windows import Windows, clip_bounds

log = logging.getLogger("training")


class TrainingDiverged(RuntimeError):
    """The loss became NaN/Inf."""


class StopOnNaN(keras.callbacks.TerminateOnNaN):
    """TerminateOnNaN that fails loudly: features are standardised, so a NaN means the learning rate is too high."""

    def on_batch_end(self, batch, logs=None):
        super().on_batch_end(batch, logs)
        if self.model.stop_training and logs and not np.isfinite(logs.get("loss", 0.0)):
            raise TrainingDiverged(
                f"loss became {logs['loss']} at batch {batch}: lower fit.learning_rate "
                "(features are standardised inside the model, so the input is not the cause)"
            )


def seed_everything(seed: int) -> None:
    keras.utils.set_random_seed(seed)  # python, numpy and TF generators
    tf.config.experimental.enable_op_determinism()
    # One op at a time, each using every core: on small CPUs TF's default (as many concurrent ops as cores)
    # oversubscribes the cores and an epoch takes ~1.5x longer.
    try:
        tf.config.threading.set_inter_op_parallelism_threads(1)
        tf.config.threading.set_intra_op_parallelism_threads(os.cpu_count() or 1)
    except RuntimeError:  # already initialised in this process (e.g. a second run in tests): keep its setting
        pass


def resolve_class_weights(cfg: TrainConfig, y_windows: np.ndarray, labels: list[str]) -> dict[int, float] | None:
    if cfg.class_weight == "none":
        return None
    if cfg.class_weight == "balanced":
        return balanced_class_weights(y_windows, len(labels))
    unknown = set(cfg.class_weight) - set(labels)
    if unknown:
        raise ValueError(f"class_weight names unknown classes {sorted(unknown)}; classes are {labels}")
    return {i: float(cfg.class_weight.get(label, 1.0)) for i, label in enumerate(labels)}


def learning_rate(fit: FitConfig, steps_per_epoch: int) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """The optimizer's rate: a constant (ReduceLROnPlateau lowers it) or warm-up + cosine decay over the run."""
    if fit.lr_schedule == "plateau":
        return fit.learning_rate
    warm = fit.warmup_epochs * steps_per_epoch
    total = fit.epochs * steps_per_epoch
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=fit.learning_rate / 10 if warm else fit.learning_rate,
        decay_steps=max(1, total - warm),
        warmup_target=fit.learning_rate if warm else None,
        warmup_steps=warm,
    )


def train(data: Path, out: Path, cfg: TrainConfig) -> dict:
    """Train, evaluate and save everything under `out`; returns the metrics dict (also in out/metrics.json)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    timing: dict[str, float] = {}
    t0 = time.perf_counter()
    seed_everything(cfg.seed)
    fcfg = cfg.features

    ds = data_mod.load(data, cfg.data, fcfg.sample_rate, cfg.seed)
    y = ds.y
    timing["load_s"] = time.perf_counter() - t0
    log.info("%d clips, %d classes, splits %s", len(y), len(ds.labels), {k: len(v) for k, v in ds.split.items()})

    t = time.perf_counter()
    X, features_cached = store.clip_features(ds.waveforms, fcfg)  # every clip's windows, on disk
    tables = {name: X.windows(y, idx) for name, idx in ds.split.items()}
    table_train = tables["train"]
    timing["features_s"] = time.perf_counter() - t
    log.info("cache %s: decoded clips %s", X.directory.parent, "reused" if ds.cache_hit else "written")

    weights = resolve_class_weights(cfg, table_train.y, ds.labels)
    targets, teacher = None, None
    if cfg.teacher.config is not None:
        t = time.perf_counter()
        targets, teacher = teacher_targets(data, out / "teacher", cfg, ds, table_train)
        timing["teacher_s"] = time.perf_counter() - t
        # building the teacher drew random numbers: the CNN starts from the same weights and dropout draws as it
        # would without a teacher, so the two runs differ by the targets alone (and the figures pair up)
        keras.utils.set_random_seed(cfg.seed)
    t = time.perf_counter()
    model, aggregator, history = _fit(cfg, X, tables, ds, out, targets)
    timing["fit_s"] = time.perf_counter() - t

    t = time.perf_counter()
    results = {}
    for name, idx in ds.split.items():
        probs = predict_clips(model, X, tables[name], idx, aggregator=aggregator)
        results[name] = metrics(y[idx], probs, ds.labels)
    baseline = run_baseline(
        ds.waveforms, y, ds.split, ds.labels, fcfg, balanced=cfg.class_weight == "balanced", seed=cfg.seed
    )
    timing["evaluate_s"] = time.perf_counter() - t

    hist = {k: [float(v) for v in vals] for k, vals in history.history.items()}
    best_epoch = int(np.argmin(hist["val_loss"])) + 1
    summary = {
        **results,
        "baseline": baseline,
        "history": hist,
        "best_epoch": best_epoch,
        "epochs_run": len(hist["val_loss"]),
        "class_weights": {ds.labels[i]: w for i, w in (weights or {}).items()},
        "teacher": teacher,
        "data": _data_summary(ds, tables),
        "timing": timing,
        "fingerprint": ds.fingerprint,
        "cache": {
            "dir": str(X.directory.parent),
            "decoded_clips": "reused" if ds.cache_hit else "written",
            "features": "written" if features_cached else "reused",
        },
        "config": cfg.model_dump(mode="json"),
        "data_path": str(data),
    }

    meta = artifact.ModelMetadata(
        labels=ds.labels,
        features=fcfg,
        metrics={
            s: {k: results[s][k] for k in ("accuracy", "balanced_accuracy", "macro_f1")} for s in results if results[s]
        },
        data_fingerprint=ds.fingerprint,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        training_config=cfg.model_dump(mode="json"),
        aggregation="pooled_logistic" if isinstance(aggregator, PooledLogistic) else "mean_probabilities",
    )
    model_dir = out / "model"
    model_dir.mkdir(exist_ok=True)
    model.save(model_dir / artifact.MODEL_FILE)
    if isinstance(aggregator, PooledLogistic):
        aggregator.save(model_dir / artifact.HEAD_FILE)
    artifact.write_metadata(model_dir, meta)
    (out / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    if cfg.register_model:
        from training.registry import register

        summary["bentoml_tag"] = register(model_dir, cfg.model_name, meta)
    timing["total_s"] = time.perf_counter() - t0
    (out / "metrics.json").write_text(json.dumps(summary, indent=2))
    write_report(out, summary, ds.labels)
    return summary


def _fit(cfg: TrainConfig, X, tables: dict, ds: data_mod.Dataset, out: Path, targets: np.ndarray | None = None):
    """The model of cfg fitted on tables["train"] (validated on tables["val"]): (model, clip aggregator, history).
    `targets`: the CNN's training targets per window (teacher_targets), one-hot labels if None."""
    weights = resolve_class_weights(cfg, tables["train"].y, ds.labels)
    n_classes = len(ds.labels)
    if cfg.model.backbone == "none":
        callbacks = _callbacks(cfg.fit, out)
        model, history = _fit_cnn(cfg, X, tables, ds.waveforms, n_classes, weights, callbacks, targets)
        return model, MeanProbabilities(), history
    if cfg.model.head == "pooled_logistic":
        model, aggregator, hist = _fit_pooled_logistic(cfg, X, tables, ds.labels)
        history = keras.callbacks.History()
        history.history = hist
        return model, aggregator, history
    model, history = _fit_head_on_backbone(cfg, X, tables, n_classes, weights, _callbacks(cfg.fit, out))
    return model, MeanProbabilities(), history


def teacher_targets(
    data: Path, out: Path, cfg: TrainConfig, ds: data_mod.Dataset, table: Windows
) -> tuple[np.ndarray, dict]:
    """Training targets for the windows of `table` (the CNN's training windows), and a summary for the report.

    Target = (1 - w) x one-hot label + w x the teacher's probabilities for the window's clip, softened by the
    temperature T (p^(1/T), renormalised), w = cfg.teacher.weight. The teacher is trained here from
    cfg.teacher.config with this run's data section and seed, so on the same split: it never sees the validation or
    test clips. It works on its own features (its sample rate, its windows) of the same clips, through the same
    feature cache. With cfg.teacher.cross_fit, every training clip's probabilities come from a teacher that did not
    train on it: one teacher per training group (speaker) fitted on the other groups, or k stratified folds of the
    training clips when the data has no groups (teacher_parts)."""
    tcfg = load_config(cfg.teacher.config).model_copy(
        update={"data": cfg.data, "seed": cfg.seed, "register_model": False}
    )
    tds = data_mod.load(data, tcfg.data, tcfg.features.sample_rate, tcfg.seed)
    same = tds.labels == ds.labels and all(np.array_equal(tds.split[k], ds.split[k]) for k in ds.split)
    if not same:
        raise RuntimeError("the teacher's split differs from the student's: the same data and seed must split alike")
    TX, _ = store.clip_features(tds.waveforms, tcfg.features)
    train_clips = tds.split["train"]
    parts = teacher_parts(tds, train_clips, cfg.seed) if cfg.teacher.cross_fit else {"all": (train_clips, train_clips)}
    probs = np.zeros((len(tds.y), len(ds.labels)), np.float32)
    if tcfg.model.head == "pooled_logistic":
        # a frozen backbone (the config requires one): embed every training clip once, then one logistic
        # regression per part
        from training import backbones

        pooled, y = pooled_clips(
            backbones.build(tcfg.model.backbone, tcfg.features), TX, TX.windows(tds.y, train_clips)
        )
        row = np.empty(len(tds.y), np.int64)
        row[train_clips] = np.arange(len(train_clips))  # windows() keeps the order of the clips it is given
        for held, rest in parts.values():
            head = fit_pooled_head(tcfg, pooled[row[rest]], y[row[rest]], tds.labels)
            probs[held] = head.probabilities(pooled[row[held]])
    else:
        val = TX.windows(tds.y, tds.split["val"])
        for name, (held, rest) in parts.items():
            sub = {"train": TX.windows(tds.y, rest), "val": val}
            teacher, aggregator, _ = _fit(tcfg, TX, sub, tds, out / name)
            probs[held] = predict_clips(teacher, TX, TX.windows(tds.y, held), held, aggregator=aggregator)
    tempered = np.clip(probs, 1e-12, 1) ** (1 / cfg.teacher.temperature)
    tempered /= tempered.sum(axis=1, keepdims=True)
    info = {
        "config": str(cfg.teacher.config),
        "parts": list(parts),
        "train_accuracy": float((probs[train_clips].argmax(axis=1) == tds.y[train_clips]).mean()),
    }
    log.info(
        "teacher %s (%d fits): %.3f of the training clips right", cfg.teacher.config, len(parts), info["train_accuracy"]
    )
    w = cfg.teacher.weight
    return (1 - w) * one_hot(table.y, len(ds.labels)) + w * tempered[table.clip], info


TEACHER_FOLDS = 5  # cross-fitting without groups


def teacher_parts(ds: data_mod.Dataset, train_clips: np.ndarray, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """name -> (clips a teacher predicts, clips it trains on), together covering `train_clips` once: one part per
    group when every clip has a group (leave one group out), else TEACHER_FOLDS stratified folds (fewer when the
    smallest class has fewer clips). Every class must stay in every teacher's training clips: where leaving a group
    out would take a class's last clips away (a class recorded by one speaker), the folds are used instead."""
    from sklearn.model_selection import StratifiedKFold

    y = ds.y[train_clips]
    n_classes = len(ds.labels)
    groups = np.array([ds.clips[i].group or "" for i in train_clips])
    if all(groups) and len(set(groups)) > 1:
        parts = {str(g): (train_clips[groups == g], train_clips[groups != g]) for g in sorted(set(groups))}
        short = [name for name, (_, rest) in parts.items() if len(set(ds.y[rest].tolist())) < n_classes]
        if not short:
            return parts
        log.warning("teacher: leaving out %s takes a class's last clips away; cross-fitting on folds", short)
    k = min(TEACHER_FOLDS, int(np.bincount(y, minlength=n_classes).min()))
    if k < 2:
        raise ValueError(
            "teacher.cross_fit needs at least 2 training clips of every class: set it to false, or "
            "teacher.config=null (no teacher)"
        )
    folds = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(len(y)), y)
    return {f"fold{f}": (train_clips[held], train_clips[rest]) for f, (rest, held) in enumerate(folds)}


def _callbacks(fit: FitConfig, out: Path) -> list:
    ckpt = out / "checkpoints"
    ckpt.mkdir(parents=True, exist_ok=True)
    plateau = [
        keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss",
            factor=fit.reduce_lr_factor,
            patience=fit.reduce_lr_patience,
            min_lr=fit.min_learning_rate,
        )
    ]
    # SwapEMAWeights first: from each epoch's end the averaged weights are in the model, so validation, early
    # stopping's best weights and the checkpoint are all of the average (Keras's documented order).
    ema = [keras.callbacks.SwapEMAWeights(swap_on_epoch=True)] if fit.ema_momentum > 0 else []
    callbacks = [
        *ema,
        StopOnNaN(),
        keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=fit.early_stopping_patience, restore_best_weights=True
        ),
        *(plateau if fit.lr_schedule == "plateau" else []),  # a cosine schedule sets the rate itself
        keras.callbacks.ModelCheckpoint(ckpt / "best.keras", monitor="val_loss", save_best_only=True),
        keras.callbacks.CSVLogger(out / "history.csv"),
    ]
    if fit.tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(out / "tensorboard"), write_graph=False))
    return callbacks


# Keras's average starts from the first step's weights and has no warm-up, so with few steps per epoch (a small
# data set) a fixed 0.99 would still hold much of the barely trained start at the end: the horizon is capped.
EMA_MAX_EPOCHS = 3


def ema_momentum(fit: FitConfig, steps_per_epoch: int) -> float:
    """fit.ema_momentum, capped so that the average spans at most EMA_MAX_EPOCHS epochs of steps (momentum
    1 - 1/steps): FSDD's 36 steps an epoch keep 0.99 (cap 0.9907); 4 steps an epoch get 0.917."""
    if fit.ema_momentum == 0:
        return 0.0
    return min(fit.ema_momentum, 1 - 1 / (EMA_MAX_EPOCHS * max(1, steps_per_epoch)))


def _compile(
    model: keras.Model, fit: FitConfig, steps_per_epoch: int, outputs: Literal["one", "ensemble", "student"] = "one"
) -> None:
    """Adam and cross-entropy. `outputs`: "one", a model's own probabilities; "ensemble", an ensemble's members
    stacked (member_outputs), each on its own loss, the accuracy that of their average; "student", teachers and a
    student stacked (with_teachers), the accuracy the student's. The history keys stay loss, accuracy, val_..."""
    momentum = ema_momentum(fit, steps_per_epoch)
    averaging = {"use_ema": True, "ema_momentum": momentum} if momentum else {}
    if outputs == "one":
        loss, accuracy = keras.losses.CategoricalCrossentropy(label_smoothing=fit.label_smoothing), "accuracy"
    else:
        distil = fit.distil_weight if outputs == "student" else 0.0
        loss = MemberCrossentropy(fit.label_smoothing, fit.mutual_learning, distil)
        served = student_accuracy if outputs == "student" else ensemble_accuracy
        accuracy = keras.metrics.MeanMetricWrapper(served, name="accuracy")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate(fit, steps_per_epoch), **averaging),
        loss=loss,
        metrics=[accuracy],
    )


def _verbosity() -> int:
    return 1 if sys.stdout.isatty() else 2  # a progress bar on a terminal, a line per epoch in logs


def _fit_cnn(cfg: TrainConfig, X, tables: dict, waveforms, n_classes: int, weights, callbacks, targets=None):
    """The CNN on features (standardised inside the model with the training windows' statistics), training windows
    augmented afresh every epoch (worker processes); `targets` per training window, one-hot labels if None."""
    table_train = tables["train"]
    mean, var = standardisation(X, table_train.row)
    augmenter = Augmenter(cfg.augment, cfg.features, mean) if cfg.augment.enabled else None
    train_ds, stop_workers = train_dataset(
        X,
        table_train,
        waveforms,
        augmenter,
        cfg.fit.batch_size,
        cfg.seed,
        n_classes,
        workers=cfg.fit.augment_workers,
        mixup_alpha=cfg.augment.mixup_alpha,
        targets=targets,
    )
    model = build_model(cfg.model, cfg.features.input_shape, n_classes, mean, var)
    # the model itself, an ensemble's members side by side, or teachers beside the one CNN saved
    if cfg.model.teachers:
        fitted, outputs = with_teachers(model, cfg.model, cfg.features.input_shape, n_classes, mean, var), "student"
    else:
        fitted = member_outputs(model)
        outputs = "one" if fitted is model else "ensemble"
    _compile(fitted, cfg.fit, -(-len(table_train.y) // cfg.fit.batch_size), outputs)
    try:
        history = fitted.fit(
            train_ds,
            validation_data=eval_dataset(X, tables["val"], n_classes),
            epochs=cfg.fit.epochs,
            class_weight=weights,
            callbacks=callbacks,
            verbose=_verbosity(),
        )
    finally:
        stop_workers()
    return model, history


def _fit_head_on_backbone(cfg: TrainConfig, X, tables: dict, n_classes: int, weights, callbacks):
    """A frozen pretrained backbone (training.backbones) embeds every training and validation window once; the
    head is fitted on those embeddings (seconds per epoch instead of a backbone pass per window per epoch); the
    model saved is backbone + head, features in, probabilities out, like the CNN."""
    from training import backbones

    backbone = backbones.build(cfg.model.backbone, cfg.features)
    emb = {name: embed(backbone, X, tables[name].row) for name in ("train", "val")}
    targets = {name: one_hot(tables[name].y, n_classes) for name in ("train", "val")}
    head = build_head(cfg.model, backbone.output.shape[-1], n_classes, *standardisation(emb["train"][:, None, :]))
    _compile(head, cfg.fit, -(-len(emb["train"]) // cfg.fit.batch_size))
    history = head.fit(
        emb["train"],
        targets["train"],
        validation_data=(emb["val"], targets["val"]),
        batch_size=cfg.fit.batch_size,
        epochs=cfg.fit.epochs,
        class_weight=weights,
        callbacks=callbacks,
        shuffle=True,
        verbose=_verbosity(),
    )
    return on_backbone(backbone, head), history


def _fit_pooled_logistic(cfg: TrainConfig, X, tables: dict, labels: list[str]):
    """A frozen backbone embeds every window once; each training clip becomes the mean and max of its windows'
    embeddings, and a logistic regression is fitted on those (fit_pooled_head). Returns (backbone, its
    PooledLogistic clip head, a one-step history of clip-level loss and accuracy on train and val, for the
    report)."""
    from training import backbones

    backbone = backbones.build(cfg.model.backbone, cfg.features)
    pooled = {name: pooled_clips(backbone, X, tables[name]) for name in ("train", "val")}
    head = fit_pooled_head(cfg, *pooled["train"], labels)
    history = {}
    for name, prefix in (("train", ""), ("val", "val_")):
        x, y = pooled[name]
        probs = head.probabilities(x)
        picked = np.clip(probs[np.arange(len(probs)), y], 1e-7, 1)
        history[f"{prefix}loss"] = [float(-np.log(picked).mean())]
        history[f"{prefix}accuracy"] = [float((probs.argmax(axis=1) == y).mean())]
    return backbone, head, history


def pooled_clips(backbone: keras.Model, X, table: Windows) -> tuple[np.ndarray, np.ndarray]:
    """(each clip's mean and max window embedding, its label), for the clips of `table` in table order."""
    emb = embed(backbone, X, table.row)
    bounds = clip_bounds(table).values()
    return np.stack([PooledLogistic.pool(emb[s]) for s in bounds]), np.array([table.y[s.start] for s in bounds])


def fit_pooled_head(cfg: TrainConfig, pooled: np.ndarray, y: np.ndarray, labels: list[str]) -> PooledLogistic:
    """A multinomial logistic regression on pooled clip embeddings: standardised input, L2 of strength
    1/head_c, the config's class weights over clips."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(pooled)
    fit = LogisticRegression(C=cfg.model.head_c, max_iter=5000, class_weight=resolve_class_weights(cfg, y, labels))
    fit.fit(scaler.transform(pooled), y)
    coef, bias = fit.coef_.T, fit.intercept_
    if coef.shape[1] == 1:  # two classes: scikit-learn fits one logit, p(class 1) = sigmoid(z) = softmax([0, z])
        coef, bias = np.concatenate([np.zeros_like(coef), coef], axis=1), np.r_[0.0, bias]
    if fit.classes_.tolist() != list(range(coef.shape[1])) or coef.shape[1] != len(labels):
        raise ValueError(f"every class needs training clips; the training split has classes {fit.classes_.tolist()}")
    return PooledLogistic(mean=scaler.mean_, scale=scaler.scale_, weights=coef, bias=bias)


def embed(backbone: keras.Model, X, rows: np.ndarray, chunk: int = 256) -> np.ndarray:
    """The backbone's embedding of windows X[rows], `chunk` windows at a time (X may be a FeatureStore)."""
    parts = [
        np.asarray(backbone.predict_on_batch(np.asarray(X[rows[lo : lo + chunk]]))) for lo in range(0, len(rows), chunk)
    ]
    return np.concatenate(parts) if parts else np.zeros((0, backbone.output.shape[-1]), np.float32)


def _data_summary(ds: data_mod.Dataset, tables: dict) -> dict:
    dur = ds.durations()
    per_split = {}
    for name, idx in ds.split.items():
        counts = {label: 0 for label in ds.labels}
        seconds = {label: 0.0 for label in ds.labels}
        for i in idx:
            counts[ds.clips[i].label] += 1
            seconds[ds.clips[i].label] += float(dur[i])
        per_split[name] = {
            "clips": int(len(idx)),
            "windows": int(len(tables[name].y)),
            "clips_per_class": counts,
            "seconds_per_class": {k: round(v, 1) for k, v in seconds.items()},
        }
    return {
        "classes": ds.labels,
        "clips": len(ds.clips),
        "duration_s": {
            "total": round(float(dur.sum()), 1),
            "min": round(float(dur.min()), 2),
            "median": round(float(np.median(dur)), 2),
            "max": round(float(dur.max()), 2),
        },
        "splits": per_split,
        "groups": sorted({c.group for c in ds.clips if c.group}),
        "skipped": [{"path": p, "reason": r} for p, r in ds.skipped],
    }

"""End to end: train a small model on a slice of real FSDD through the CLI and check everything it leaves behind."""

import csv
import json

import keras
import numpy as np
import pytest

from audiocore import artifact
from audiocore.decode import decode
from audiocore.features import extract
from training.cli import main
from training.config import TrainConfig
from training.model import build_model
from training.train import StopOnNaN, TrainingDiverged

pytestmark = pytest.mark.e2e
SPEAKERS = ("jackson", "theo")
FAST = ["--epochs", "8", "--set", "fit.batch_size=16"]  # ~9 steps an epoch on 140 training clips
ONE_CNN = ["--set", "model.members=1"]  # a teacher teaches one CNN; the defaults train two


@pytest.fixture(scope="module")
def slice_manifest(fsdd, tmp_path_factory):
    """10 digits x 2 speakers x 12 recordings = 240 real clips, official split rule (recordings 0-4 are test)."""
    path = tmp_path_factory.mktemp("slice") / "manifest.csv"
    with open(path, "w", newline="") as handle:
        w = csv.writer(handle)
        w.writerow(["path", "label", "speaker", "split"])
        for d in range(10):
            for s in SPEAKERS:
                for i in range(12):
                    w.writerow([fsdd / f"recordings/{d}_{s}_{i}.wav", d, s, "test" if i < 5 else "train"])
    return path


@pytest.fixture(scope="module")
def run(slice_manifest, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "r1"
    assert main(["train", "--data", str(slice_manifest), "--out", str(out), *FAST]) == 0
    return out


def test_metrics_json_has_every_split_and_metric(run):
    m = json.loads((run / "metrics.json").read_text())
    for split in ("train", "val", "test"):
        for key in ("accuracy", "balanced_accuracy", "macro_f1", "loss"):
            assert 0 <= m[split][key] <= (1 if key != "loss" else 50), (split, key)
        assert set(m[split]["per_class"]) == {str(d) for d in range(10)}
        assert set(m[split]["per_class"]["3"]) >= {"precision", "recall", "f1"}
    assert m["test"]["clips"] == 100
    assert set(m["baseline"]) == {"train", "val", "test"}
    assert m["class_weights"] and m["data"]["splits"]["train"]["clips"] + m["data"]["splits"]["val"]["clips"] == 140


def test_better_than_chance(run):
    m = json.loads((run / "metrics.json").read_text())
    assert m["test"]["accuracy"] > 0.3  # chance is 0.1


def test_report_and_plots_exist(run):
    report = (run / "report.md").read_text()
    for heading in ("## Metrics", "## Diagnosis", "## Confusion matrix", "## Data", "## Config", "baseline test"):
        assert heading in report
    assert "balanced accuracy on " in report and ("beats" in report or "are level" in report)  # the plain verdict
    for png in ("confusion_matrix.png", "learning_curves.png"):
        assert (run / png).read_bytes()[:4] == b"\x89PNG"
    assert (run / "history.csv").is_file() and (run / "checkpoints" / "best.keras").is_file()
    assert any((run / "tensorboard").rglob("events.out.tfevents.*"))


def test_model_folder_loads_without_bentoml_and_predicts(run, fsdd):
    model, meta, _ = artifact.load(run / "model")
    assert meta.labels == [str(d) for d in range(10)] and meta.features.sample_rate == 8000
    feats = extract(decode(fsdd / "recordings/4_jackson_3.wav", 8000).samples, meta.features)
    probs = model.predict(feats.windows, verbose=0)
    assert probs.shape == (1, 10) and np.isclose(probs.sum(), 1, atol=1e-4)


def test_model_is_in_the_bentoml_store_with_metadata(run):
    import bentoml

    m = json.loads((run / "metrics.json").read_text())
    stored = bentoml.models.get("audio_classifier:latest")
    assert str(stored.tag) == m["bentoml_tag"]
    assert stored.info.metadata["labels"] == [str(d) for d in range(10)]
    assert stored.info.metadata["features"]["kind"] == "mfcc"
    assert stored.info.metadata["data_fingerprint"] == m["fingerprint"]
    assert "test" in stored.info.metadata["metrics"]
    model, meta, _ = artifact.load(stored.path)
    assert meta.labels == stored.info.metadata["labels"]


def test_evaluate_command_reproduces_the_test_accuracy(run, slice_manifest, tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert (
        main(
            [
                "evaluate",
                "--model",
                str(run / "model"),
                "--data",
                str(slice_manifest),
                "--split",
                "test",
                "--output",
                str(out),
            ]
        )
        == 0
    )
    m = json.loads((run / "metrics.json").read_text())
    assert json.loads(out.read_text())["accuracy"] == pytest.approx(m["test"]["accuracy"])
    assert (
        main(["evaluate", "--model", "audio_classifier:latest", "--data", str(slice_manifest), "--split", "test"]) == 0
    )


def test_same_seed_same_metrics(run, slice_manifest, tmp_path):
    """Determinism: a second run with the same seed, data and config gives the same numbers, epoch by epoch."""
    out = tmp_path / "r2"
    assert main(["train", "--data", str(slice_manifest), "--out", str(out), *FAST, "--no-register"]) == 0
    a, b = (json.loads((p / "metrics.json").read_text()) for p in (run, out))
    assert a["history"] == b["history"]
    assert b["cache"] == {**a["cache"], "decoded_clips": "reused", "features": "reused"}  # nothing decoded twice
    for split in ("train", "val", "test"):
        assert a[split]["accuracy"] == b[split]["accuracy"] and a[split]["loss"] == b[split]["loss"]


def test_an_ensemble_trains_saves_and_scores_through_the_serving_path(slice_manifest, tmp_path):
    """model.members=2: one fit, one saved model averaging two CNNs; history keeps its keys, the report names the
    ensemble, and `evaluate` (the serving feature path) reproduces the run's test accuracy."""
    out = tmp_path / "ens"
    args = ["train", "--data", str(slice_manifest), "--out", str(out), "--epochs", "3", "--set", "fit.batch_size=16"]
    assert main([*args, "--set", "model.members=2", "--no-register"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(m["history"]) and len(m["history"]["loss"]) == 3
    assert "ensemble of 2 CNNs" in (out / "report.md").read_text()
    model, _, _ = artifact.load(out / "model")
    assert isinstance(model.get_layer("probabilities"), keras.layers.Average)
    scored = tmp_path / "eval.json"
    assert (
        main(
            [
                "evaluate",
                "--model",
                str(out / "model"),
                "--data",
                str(slice_manifest),
                "--split",
                "test",
                "--output",
                str(scored),
            ]
        )
        == 0
    )
    assert json.loads(scored.read_text())["accuracy"] == pytest.approx(m["test"]["accuracy"])


def test_distillation_saves_only_the_student(slice_manifest, tmp_path):
    """model.teachers=2: teachers and student in one fit; the saved model is one CNN, and it is what the run scored."""
    out = tmp_path / "kd"
    args = ["train", "--data", str(slice_manifest), "--out", str(out), "--epochs", "3", "--set", "fit.batch_size=16"]
    assert main([*args, "--set", "model.teachers=2", *ONE_CNN, "--no-register"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    model, _, _ = artifact.load(out / "model")
    assert model.name == "audio_cnn" and not any(layer.name.startswith("teacher") for layer in model.layers)
    history = m["history"]["val_accuracy"]
    assert m["val"]["accuracy"] == pytest.approx(history[m["best_epoch"] - 1], abs=1e-6)


def test_a_pretrained_teacher_shapes_the_targets_and_only_the_cnn_is_saved(slice_manifest, tmp_path):
    """teacher.config: the speech-embedding recipe is trained first, cross-fitted (no groups here: 5 stratified
    folds of the training clips), and its out-of-fold probabilities enter the CNN's targets; the saved model is the
    same one CNN as without a teacher (the serving cost), and `evaluate` reproduces its test accuracy."""
    out = tmp_path / "taught"
    args = ["train", "--data", str(slice_manifest), "--out", str(out), *FAST, "--no-register", *ONE_CNN]
    assert main([*args, "--set", "teacher.config=configs/fsdd-speech.yaml"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["teacher"]["parts"] == [f"fold{f}" for f in range(5)]
    assert m["teacher"]["train_accuracy"] > 0.8  # two voices it partly heard: a teacher worth learning from
    assert m["timing"]["teacher_s"] > 0 and m["config"]["teacher"]["cross_fit"] is True
    assert "Targets: labels blended with the probabilities of the teacher" in (out / "report.md").read_text()
    taught, _, _ = artifact.load(out / "model")
    cfg = TrainConfig().model.model_copy(update={"members": 1})
    plain = build_model(
        cfg, taught.input_shape[1:], 10, np.zeros(taught.input_shape[-1]), np.ones(taught.input_shape[-1])
    )
    assert taught.name == plain.name == "audio_cnn" and taught.count_params() == plain.count_params()
    assert [type(layer).__name__ for layer in taught.layers] == [type(layer).__name__ for layer in plain.layers]
    scored = tmp_path / "eval.json"
    cmd = ["evaluate", "--model", str(out / "model"), "--data", str(slice_manifest), "--split", "test"]
    assert main([*cmd, "--output", str(scored)]) == 0
    assert json.loads(scored.read_text())["accuracy"] == pytest.approx(m["test"]["accuracy"])


def test_a_cnn_teacher_is_fitted_per_part(slice_manifest, tmp_path):
    """A teacher without a pooled clip head (here a CNN, one epoch) is fitted once per cross-fit part, each on its
    own training clips, and predicts the clips it did not train on."""
    teacher = tmp_path / "teacher.yaml"
    teacher.write_text("fit:\n  epochs: 1\n  batch_size: 16\n  tensorboard: false\naugment:\n  enabled: false\n")
    out = tmp_path / "cnn-taught"
    args = ["train", "--data", str(slice_manifest), "--out", str(out), *FAST, "--no-register", *ONE_CNN]
    assert main([*args, "--set", f"teacher.config={teacher}"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["teacher"]["parts"] == [f"fold{f}" for f in range(5)] and m["teacher"]["config"] == str(teacher)
    assert sorted(p.name for p in (out / "teacher").iterdir()) == [f"fold{f}" for f in range(5)]
    assert 0 <= m["teacher"]["train_accuracy"] <= 1 and m["timing"]["teacher_s"] > 0


def test_weight_averaging_validates_and_saves_the_averaged_weights(slice_manifest, tmp_path):
    """fit.ema_momentum: the weights validated each epoch, kept by early stopping and saved are the moving average:
    the saved model scores the validation clips exactly as the history says the best epoch did."""
    out = tmp_path / "ema"
    args = ["train", "--data", str(slice_manifest), "--out", str(out), *FAST, "--no-register"]
    assert main([*args, "--set", "fit.ema_momentum=0.9"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    history = m["history"]["val_accuracy"]
    assert m["val"]["accuracy"] == pytest.approx(history[m["best_epoch"] - 1], abs=1e-6)
    assert len(set(history)) > 1  # the epochs differ, so the equality above picks one of them


def test_compare_prints_runs_side_by_side(run, capsys):
    assert main(["compare", str(run), str(run)]) == 0
    table = capsys.readouterr().out
    assert table.count("| r1 | mfcc | on | balanced |") == 2 and "test bal acc" in table


def test_cli_reports_data_errors_without_a_traceback(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "x")]) == 2
    assert "missing.csv does not exist" in capsys.readouterr().err


def test_leave_one_speaker_out(fsdd, tmp_path):
    rows = [
        (fsdd / f"recordings/{d}_{s}_{i}.wav", d, s)
        for d in range(10)
        for s in ("jackson", "theo", "george")
        for i in range(5)
    ]
    manifest = tmp_path / "m.csv"
    with open(manifest, "w", newline="") as handle:
        w = csv.writer(handle)
        w.writerow(["path", "label", "speaker"])
        w.writerows(rows)
    assert (
        main(
            [
                "cv",
                "--data",
                str(manifest),
                "--out",
                str(tmp_path / "cv"),
                "--epochs",
                "1",
                "--set",
                "augment.enabled=false",
                "--set",
                "data.min_clips_per_class=3",
            ]
        )
        == 0
    )
    summary = json.loads((tmp_path / "cv" / "summary.json").read_text())
    assert set(summary["folds"]) == {"george", "jackson", "theo"}
    for speaker in summary["folds"]:
        m = json.loads((tmp_path / "cv" / speaker / "metrics.json").read_text())
        assert m["data"]["splits"]["test"]["clips"] == 50
        if speaker != "george":  # the first fold decodes and caches; the others read the cache
            assert m["cache"]["decoded_clips"] == m["cache"]["features"] == "reused"
    assert summary["worst_test_accuracy"] <= summary["mean_test_accuracy"]
    assert summary["std_test_accuracy"] >= 0 and summary["std_baseline_test_accuracy"] >= 0
    diff = summary["cnn_minus_baseline"]["test accuracy"]
    expected = summary["mean_test_accuracy"] - summary["mean_baseline_test_accuracy"]
    assert abs(diff["mean"] - expected) < 1e-9 and diff["standard_error"] >= 0
    assert "over 3 held-out speaker folds" in summary["verdict"] and summary["group_column"] == "speaker"
    assert summary["verdict"].count("baseline") == 1  # balanced speakers: accuracy = balanced accuracy, said once
    assert summary["verdict"] in (tmp_path / "cv" / "summary.md").read_text()


def test_repeated_stratified_kfold_tests_every_clip_once_per_repeat(fsdd, tmp_path):
    rows = [(fsdd / f"recordings/{d}_{s}_{i}.wav", d) for d in range(3) for s in ("jackson", "theo") for i in range(6)]
    manifest = tmp_path / "m.csv"
    with open(manifest, "w", newline="") as handle:
        w = csv.writer(handle)
        w.writerow(["path", "label"])
        w.writerows(rows)
    args = ["cv", "--data", str(manifest), "--out", str(tmp_path / "kf"), "--folds", "3", "--repeats", "2"]
    args += ["--epochs", "1", "--set", "augment.enabled=false", "--set", "data.min_clips_per_class=3"]
    assert main(args) == 0
    summary = json.loads((tmp_path / "kf" / "summary.json").read_text())
    assert sorted(summary["folds"]) == [f"r{r}-f{f}" for r in range(2) for f in range(3)]
    assert (summary["folds_per_repeat"], summary["repeats"]) == (3, 2)
    for r in range(2):
        tested = []
        for f in range(3):
            with open(tmp_path / "kf" / f"r{r}-f{f}" / "manifest.csv", newline="") as handle:
                fold = list(csv.DictReader(handle))
            tested += [row["path"] for row in fold if row["split"] == "test"]
            labels = [row["label"] for row in fold if row["split"] == "test"]
            assert sorted(set(labels)) == ["0", "1", "2"] and len(labels) == 12  # stratified: 4 of each class
            m = json.loads((tmp_path / "kf" / f"r{r}-f{f}" / "run" / "metrics.json").read_text())
            assert m["data"]["splits"]["test"]["clips"] == 12
        assert sorted(tested) == sorted(str(p.resolve()) for p, _ in rows)  # every clip tested once per repeat
    assert summary["std_test_balanced_accuracy"] >= 0 and "over 6 folds (2 x 3-fold)" in summary["verdict"]


def test_nan_loss_stops_training_with_a_clear_message():
    cb = StopOnNaN()
    cb.set_model(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]))
    with pytest.raises(TrainingDiverged, match="lower fit.learning_rate"):
        cb.on_batch_end(3, {"loss": float("nan")})

"""Issue 12's ablation on FSDD: each lever's effect on held-out speakers, one row per variant.

`python scripts/ablation.py [--variants NAME ...] [--speakers S ...]` trains every variant with each listed
speaker held out (test = that speaker; validation drawn from the other five speakers' clips, as `cv` does), one
run at a time, into runs/ablation/<variant>/<speaker>/, skips runs already finished, and prints a Markdown table of
test accuracy per speaker, their mean and the fit time (a teacher's included), with the machine, the date and the
command template.

The default speakers are the three hardest of the issue's leave-one-speaker-out figures (george, jackson,
nicolas): a full six-fold `cv` per variant would take ~20 minutes on 2 cores; this takes ~9. Variants change
only what their overrides say; each row is compared with the first row of the same table.

`--seeds N ...` runs every variant once per seed (`--set seed=N` after its overrides) into
runs/ablation/<variant>@seed<N>/<speaker>/, and adds a second table: per variant the mean over seeds of the
speakers' mean and of the worst speaker, with their spread, and the difference to the first variant paired seed by
seed (same seed, same initial CNN and data order), with its standard error. One run's mean moves by ~0.02 with the
initial weights alone on these folds, so a lever needs this table, not one row, before it is called a gain.
"""

import argparse
import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a file from a checkout: the repository's packages, not the installed ones
from devtools import machine  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "fsdd"
OUT = ROOT / "runs" / "ablation"
SPEAKERS = ["george", "jackson", "nicolas"]
# the recipe before issue 12 (stretch and pitch at 0.25), written out so that it stays comparable when defaults move
# one CNN (model.members=1) without weight averaging (fit.ema_momentum=0), without a teacher and for 20 epochs in
# both: what every variant ran with before ensembles, averaging and the teacher (later overrides win)
ONE = ["model.members=1", "fit.ema_momentum=0", "teacher.config=null", "fit.epochs=20"]
BEFORE = ["augment.pitch_prob=0.25", "augment.pitch_semitones=2", "augment.stretch_prob=0.25", *ONE]
VTLP = ["augment.pitch_prob=0.8", "augment.pitch_semitones=3", "augment.stretch_prob=0.8", *ONE]
S2DEEP = "model.conv_blocks=[{filters: 16, stride: 2, pool: 1}, {filters: 32}, {filters: 64}, {filters: 64, pool: 1}]"
NARROW = "model.conv_blocks=[{filters: 12}, {filters: 24}, {filters: 48, pool: 1}]"
WIDE = "model.conv_blocks=[{filters: 32}, {filters: 64}, {filters: 128, pool: 1}]"
DROPOUT = (
    "model.conv_blocks=[{filters: 16, dropout: 0.1}, {filters: 32, dropout: 0.1}, {filters: 64, pool: 1, dropout: 0.1}]"
)
TEACHER = "teacher.config=configs/fsdd-speech.yaml"
VARIANTS: dict[str, tuple[str, list[str]]] = {
    "before": ("recipe before issue 12 (stretch, pitch at p=0.25, +/-2 semitones)", BEFORE),
    "whole-speaker-val": ("as 'before', validation = one whole other speaker", [*BEFORE, "data.val_split=group"]),
    "vtlp": (
        "stretch and pitch (VTLP-like warp) at p=0.8, +/-3 semitones (one CNN): the defaults until weight averaging",
        VTLP,
    ),
    "vtlp+mixup": ("vtlp + mixup, alpha 0.4", [*VTLP, "augment.mixup_alpha=0.4"]),
    "vtlp+wide-speed": ("vtlp + stretch range 0.7-1.4", [*VTLP, "augment.stretch_range=[0.7, 1.4]"]),
    "vtlp+s2deep": ("vtlp + stride-2 first conv, 4 conv blocks (receptive field ~2x)", [*VTLP, S2DEEP]),
    "vtlp+s2deep+gru": ("vtlp+s2deep + bidirectional GRU(32) over frames", [*VTLP, S2DEEP, "model.gru_units=32"]),
    "vtlp+logmel": ("vtlp + log-mel (40 bands, CMN) instead of MFCC", [*VTLP, "features.kind=logmel"]),
    "vtlp-seed2": ("vtlp with seed 2 instead of 1234: the spread from seed to seed", [*VTLP, "seed=2"]),
    "vtlp+40-cosine": (
        "vtlp, 40 epochs, warm-up + cosine decay, no early stop",
        [*VTLP, "fit.epochs=40", "fit.lr_schedule=cosine", "fit.early_stopping_patience=40"],
    ),
    "vtlp+mfcc13": (
        "vtlp + 13 MFCCs instead of 20 (less of the spectral fine structure)",
        [*VTLP, "features.n_mfcc=13"],
    ),
    "vtlp+top-db-50": ("vtlp + 50 dB dynamic range instead of 80 (noise floors cut)", [*VTLP, "features.top_db=50"]),
    "vtlp+deltas": ("vtlp + MFCC deltas and delta-deltas (60 features)", [*VTLP, "features.deltas=true"]),
    "vtlp+smooth": ("vtlp + label smoothing 0.1", [*VTLP, "fit.label_smoothing=0.1"]),
    "vtlp+spatial-dropout": ("vtlp + SpatialDropout2D 0.1 after every conv block", [*VTLP, DROPOUT]),
    "vtlp+wide": ("vtlp + twice the filters (32/64/128)", [*VTLP, WIDE]),
    "vtlp+members2": (
        "vtlp + an ensemble of 2 CNNs fitted side by side (model.members=2)",
        [*VTLP, "model.members=2"],
    ),
    "vtlp+members2-25ep": (
        "vtlp+members2 with 25 epochs instead of 20 (best epoch was the last in half the folds)",
        [*VTLP, "model.members=2", "fit.epochs=25"],
    ),
    "vtlp+members3": ("vtlp + an ensemble of 3 CNNs fitted side by side (model.members=3)", [*VTLP, "model.members=3"]),
    "vtlp+ema": (
        "vtlp + validate and keep the moving average of the weights (momentum 0.99 per step): the defaults until "
        "two CNNs",
        [*VTLP, "fit.ema_momentum=0.99"],
    ),
    "vtlp+members3-narrow": (
        "vtlp+members3 with three quarters of the filters (12/24/48): an ensemble within the 1.5x serving bound?",
        [*VTLP, "model.members=3", NARROW],
    ),
    "vtlp+members3-mutual": (
        "vtlp+members3 + deep mutual learning (each member's KL from the others' mean, weight 1)",
        [*VTLP, "model.members=3", "fit.mutual_learning=1.0"],
    ),
    "vtlp-seed2+ema": (
        "vtlp+ema with seed 2: does the moving average help with another seed?",
        [*VTLP, "seed=2", "fit.ema_momentum=0.99"],
    ),
    "vtlp+distil3": (
        "vtlp + one CNN distilled from 3 teacher CNNs fitted beside it (model.teachers=3): served as one CNN",
        [*VTLP, "model.teachers=3"],
    ),
    "vtlp+members3+ema": (
        "vtlp+members3 + the moving average of the weights (as vtlp+ema)",
        [*VTLP, "model.members=3", "fit.ema_momentum=0.99"],
    ),
    "vtlp+specaug": (
        "vtlp + stronger SpecAugment (2 masks of up to 10 frames, 2 of up to 4 MFCCs)",
        [*VTLP, "augment.time_mask_frames=10", "augment.freq_masks=2", "augment.freq_mask_bins=4"],
    ),
    "vtlp+ema+cmn-voiced": (
        "vtlp+ema with the cepstral mean over the frames within 40 dB of the loudest (not the padding and pauses)",
        [*VTLP, "fit.ema_momentum=0.99", "features.cmn_floor_db=40"],
    ),
    "vtlp+ema+cmvn-voiced": (
        "vtlp+ema-cmn-voiced + each coefficient divided by its deviation over those frames (mean and variance)",
        [*VTLP, "fit.ema_momentum=0.99", "features.cmn_floor_db=40", "features.cvn=true"],
    ),
    "vtlp+ema+logmel": (
        "vtlp+ema on log-mel (40 bands, CMN) instead of MFCC: a VTLP warp is then a shift along the conv's axis",
        [*VTLP, "fit.ema_momentum=0.99", "features.kind=logmel"],
    ),
    "vtlp-seed2+ema+cmn-voiced": (
        "vtlp+ema+cmn-voiced with seed 2: does it hold with another seed?",
        [*VTLP, "seed=2", "fit.ema_momentum=0.99", "features.cmn_floor_db=40"],
    ),
    "vtlp+ema+cmn-voiced30": (
        "vtlp+ema+cmn-voiced with frames within 30 dB of the loudest instead of 40",
        [*VTLP, "fit.ema_momentum=0.99", "features.cmn_floor_db=30"],
    ),
    "vtlp+ema+cmn-voiced50": (
        "vtlp+ema+cmn-voiced with frames within 50 dB of the loudest instead of 40",
        [*VTLP, "fit.ema_momentum=0.99", "features.cmn_floor_db=50"],
    ),
    "vtlp+members3+cmn-voiced": (
        "vtlp+members3 (the quality recipe) with the cepstral mean over the frames within 40 dB of the loudest",
        [*VTLP, "model.members=3", "features.cmn_floor_db=40"],
    ),
    "vtlp+ema+teacher": (
        "vtlp+ema + targets blended half and half with the speech-embedding teacher's out-of-speaker probabilities "
        "(T=2; teacher.config=configs/fsdd-speech.yaml): served as one CNN",
        [*VTLP, "fit.ema_momentum=0.99", TEACHER],
    ),
    "vtlp+ema+teacher-fitted": (
        "vtlp+ema+teacher with one teacher fitted on all training speakers (teacher.cross_fit=false)",
        [*VTLP, "fit.ema_momentum=0.99", TEACHER, "teacher.cross_fit=false"],
    ),
    "vtlp+ema+teacher-t1": (
        "vtlp+ema+teacher at temperature 1 (the teacher's probabilities as they are)",
        [*VTLP, "fit.ema_momentum=0.99", TEACHER, "teacher.temperature=1"],
    ),
    "vtlp+ema+teacher-t4": (
        "vtlp+ema+teacher at temperature 4 (softer)",
        [*VTLP, "fit.ema_momentum=0.99", TEACHER, "teacher.temperature=4"],
    ),
    "vtlp+ema+teacher-30ep": (
        "vtlp+ema+teacher with 30 epochs instead of 20 (the best epoch was the 19th or 20th in every fold)",
        [*VTLP, "fit.ema_momentum=0.99", TEACHER, "fit.epochs=30"],
    ),
    "vtlp+ema-30ep": (
        "vtlp+ema with 30 epochs instead of 20, without a teacher: what the epochs alone do",
        [*VTLP, "fit.ema_momentum=0.99", "fit.epochs=30"],
    ),
    "vtlp+ema+members2": (
        "vtlp+ema + a second CNN fitted beside the first, probabilities averaged (model.members=2): the defaults "
        "until 30 epochs",
        [*VTLP, "fit.ema_momentum=0.99", "model.members=2"],
    ),
    "vtlp+ema+members2-30ep": (
        "vtlp+ema+members2 with 30 epochs instead of 20: today's defaults",
        [*VTLP, "fit.ema_momentum=0.99", "model.members=2", "fit.epochs=30"],
    ),
    "vtlp-seed2+ema+teacher": (
        "vtlp+ema+teacher with seed 2: does it hold with another seed? (compare vtlp-seed2+ema)",
        [*VTLP, "seed=2", "fit.ema_momentum=0.99", TEACHER],
    ),
    "vtlp+ema+teacher-w25": (
        "vtlp+ema+teacher with the teacher's share at 0.25 instead of 0.5",
        [*VTLP, "fit.ema_momentum=0.99", TEACHER, "teacher.weight=0.25"],
    ),
}


def run_name(variant: str, seed: int | None) -> str:
    """The run folder's name: the variant, and the seed where --seeds gave one."""
    return variant if seed is None else f"{variant}@seed{seed}"


def overrides_of(variant: str, seed: int | None) -> list[str]:
    return [*VARIANTS[variant][1], *([] if seed is None else [f"seed={seed}"])]


def command(name: str, speaker: str, cache_dir: Path | None, overrides: list[str]) -> list[str]:
    cmd = [sys.executable, "-m", "training", "train", "--data", str(DATA), "--no-register"]
    cmd += ["--set", "data.group_column=speaker", "--set", f"data.test_groups=[{speaker}]"]
    cmd += ["--set", "fit.tensorboard=false", "--out", str(OUT / name / speaker)]
    if cache_dir is not None:
        cmd += ["--cache-dir", str(cache_dir)]
    for override in overrides:
        cmd += ["--set", override]
    return cmd


def run(variant: str, seed: int | None, speaker: str, cache_dir: Path | None) -> dict:
    name = run_name(variant, seed)
    metrics = OUT / name / speaker / "metrics.json"
    if not metrics.is_file():
        log = OUT / f"{name}-{speaker}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        cmd = command(name, speaker, cache_dir, overrides_of(variant, seed))
        with open(log, "w") as handle:
            subprocess.run(cmd, cwd=ROOT, check=True, stdout=handle, stderr=handle)
    return json.loads(metrics.read_text())


def table(results: dict[str, dict[str, dict]], speakers: list[str]) -> str:
    """One row per run name (a variant, or a variant at a seed): accuracy per speaker, mean, fit time."""
    head = "| variant | what changes | " + " | ".join(speakers) + " | mean | vs first row | fit s (mean) |"
    lines = [head, "|" + "---|" * (len(speakers) + 5)]
    first = None
    for name, runs in results.items():
        variant = name.split("@")[0]
        accs = [runs[s]["test"]["accuracy"] for s in speakers]
        mean = sum(accs) / len(accs)
        first = mean if first is None else first
        fit = sum(runs[s]["timing"]["fit_s"] + runs[s]["timing"].get("teacher_s", 0) for s in speakers) / len(speakers)
        cells = " | ".join(f"{a:.3f}" for a in accs)
        lines.append(
            f"| {name} | {VARIANTS[variant][0]} | {cells} | **{mean:.3f}** | {mean - first:+.3f} | {fit:.0f} |"
        )
    return "\n".join(lines)


def seed_table(results: dict[str, dict[str, dict]], variants: list[str], seeds: list[int], speakers: list[str]) -> str:
    """Per variant over the seeds: the speakers' mean and worst (mean ± sd over seeds), and the paired difference of
    the mean to the first variant (mean ± standard error over seeds)."""

    def stats(values: list[float]) -> tuple[float, float]:
        mean = sum(values) / len(values)
        sd = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5 if len(values) > 1 else 0.0
        return mean, sd

    def per_seed(variant: str, pick) -> list[float]:
        accs = [[results[run_name(variant, seed)][s]["test"]["accuracy"] for s in speakers] for seed in seeds]
        return [pick(a) for a in accs]

    mean_of = lambda accs: sum(accs) / len(accs)  # noqa: E731
    first = per_seed(variants[0], mean_of)
    lines = [
        f"| variant | mean over speakers, mean ± sd over {len(seeds)} seeds | worst speaker, mean ± sd | "
        f"- {variants[0]}, paired by seed (± s.e.) |",
        "|---|---|---|---|",
    ]
    for variant in variants:
        means, worsts = per_seed(variant, mean_of), per_seed(variant, min)
        diff, diff_sd = stats([m - f for m, f in zip(means, first, strict=True)])
        (m, m_sd), (w, w_sd) = stats(means), stats(worsts)
        lines.append(
            f"| {variant} | **{m:.3f}** ± {m_sd:.3f} | {w:.3f} ± {w_sd:.3f} | "
            f"{diff:+.3f} ± {diff_sd / len(seeds) ** 0.5:.3f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="*", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--speakers", nargs="*", default=SPEAKERS)
    parser.add_argument("--seeds", nargs="*", type=int, help="run every variant once per seed (default: its own)")
    parser.add_argument("--cache-dir", type=Path, help="training's feature cache (default: training's default)")
    args = parser.parse_args()
    started = datetime.now(UTC).isoformat(timespec="minutes")
    t = time.perf_counter()
    seeds = args.seeds or [None]
    results = {
        run_name(v, seed): {s: run(v, seed, s, args.cache_dir) for s in args.speakers}
        for seed in seeds
        for v in args.variants
    }
    template = " ".join(command("VARIANT", "SPEAKER", args.cache_dir, [])[1:])
    template = template.replace(str(DATA), "../shared/data/fsdd").replace(str(ROOT) + "/", "")
    finished = sorted(
        datetime.fromtimestamp((OUT / name / sp / "metrics.json").stat().st_mtime, UTC).isoformat(timespec="minutes")
        for name in results
        for sp in args.speakers
    )
    print(f"Machine: {machine.line()}. Called {started} UTC ({time.perf_counter() - t:.0f} s); the runs finished ")
    print(f"between {finished[0]} and {finished[-1]} UTC, one at a time.")
    print(f"Each run: `python {template} --set <override> ...` (a variant's overrides in the table)\n")
    print(table(results, args.speakers))
    if args.seeds:
        print()
        print(seed_table(results, args.variants, args.seeds, args.speakers))


if __name__ == "__main__":
    main()

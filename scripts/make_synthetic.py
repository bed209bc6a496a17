"""A large synthetic labelled data set (tones, chirps, noise bands, formant vowels, ...) for scale tests of
training's data path only: its classes are easy and artificial, so never quote an accuracy measured on it.

    python scripts/make_synthetic.py --out runs/scale/synth --clips 100000 --prefixes 10000,30000

writes <out>/<class>/<i>.wav (8 kHz, 16-bit, 0.3-1.0 s), <out>/manifest.csv (path,label) over all clips and
<out>/manifest-<n>.csv over the first n of them (smaller sets are prefixes of the larger one), manifests
last, so a manifest means its clips are complete. Clip i is drawn
from the seed and i alone (its class is i mod the number of classes): the same command writes the same files.
"""

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import lfilter

SAMPLE_RATE = 8000
VOWELS = {"vowel_a": (730, 1090, 2440), "vowel_i": (270, 2290, 3010), "vowel_u": (300, 870, 2240)}


def _envelope(n: int, rng: np.random.Generator) -> np.ndarray:
    attack, release = int(n * rng.uniform(0.02, 0.2)), int(n * rng.uniform(0.05, 0.4))
    env = np.ones(n)
    env[:attack] = np.linspace(0, 1, attack)
    env[n - release :] = np.linspace(1, 0, release)
    return env


def _resonate(x: np.ndarray, freq: float, bandwidth: float) -> np.ndarray:
    """Two-pole resonator (a formant) at `freq` Hz."""
    r = np.exp(-np.pi * bandwidth / SAMPLE_RATE)
    return lfilter([1 - r], [1, -2 * r * np.cos(2 * np.pi * freq / SAMPLE_RATE), r * r], x)


def _signal(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / SAMPLE_RATE
    if kind == "tone":
        f0 = rng.uniform(150, 1200)
        return sum(rng.uniform(0.2, 1) / k * np.sin(2 * np.pi * k * f0 * t) for k in (1, 2, 3))
    if kind in ("chirp_up", "chirp_down"):
        lo, hi = rng.uniform(100, 600), rng.uniform(1500, 3500)
        f0, f1 = (lo, hi) if kind == "chirp_up" else (hi, lo)
        return np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * t[-1])))
    if kind in ("noise_low", "noise_high"):
        white = rng.normal(size=n)
        low = lfilter([1], [1, -rng.uniform(0.85, 0.97)], white)
        return low / np.abs(low).max() if kind == "noise_low" else np.diff(white, prepend=0.0)
    if kind == "am_tone":
        f0, fm = rng.uniform(300, 1500), rng.uniform(4, 16)
        return (1 + 0.9 * np.sin(2 * np.pi * fm * t)) * np.sin(2 * np.pi * f0 * t)
    if kind == "clicks":
        x = np.zeros(n)
        x[:: int(SAMPLE_RATE / rng.uniform(5, 40))] = 1.0
        return _resonate(x, rng.uniform(500, 3000), 300)
    # a vowel: glottal pulse train at a speaking pitch through three formants, each jittered by up to 10 %
    pulses = np.zeros(n)
    pulses[:: int(SAMPLE_RATE / rng.uniform(90, 260))] = 1.0
    return sum(_resonate(pulses, f * rng.uniform(0.9, 1.1), 80 + 40 * k) / (k + 1) for k, f in enumerate(VOWELS[kind]))


CLASSES = ["tone", "chirp_up", "chirp_down", "noise_low", "noise_high", "am_tone", "clicks", *VOWELS]


def clip(i: int, seed: int) -> tuple[str, np.ndarray]:
    """Clip i: (label, float32 samples at 8 kHz)."""
    rng = np.random.default_rng([seed, i])
    kind = CLASSES[i % len(CLASSES)]
    n = int(SAMPLE_RATE * rng.uniform(0.3, 1.0))
    x = _signal(kind, n, rng) * _envelope(n, rng)
    x = x / (np.abs(x).max() + 1e-9) * 10 ** (rng.uniform(-20, -1) / 20)
    x = x + rng.normal(scale=10 ** (rng.uniform(-70, -45) / 20), size=n)  # a little background noise
    return kind, np.clip(x, -1, 1).astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--clips", type=int, default=100_000)
    p.add_argument("--prefixes", default="", help="comma-separated sizes n: also write manifest-<n>.csv")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    prefixes = sorted({int(v) for v in args.prefixes.split(",") if v} | {args.clips})
    if prefixes[0] < 1 or prefixes[-1] > args.clips:
        p.error("every prefix must be between 1 and --clips")
    for kind in CLASSES:
        (args.out / kind).mkdir(parents=True, exist_ok=True)
    rows, t0 = [], time.monotonic()
    for i in range(args.clips):
        label, x = clip(i, args.seed)
        rel = f"{label}/{i:06d}.wav"
        sf.write(args.out / rel, x, SAMPLE_RATE, subtype="PCM_16")
        rows.append((rel, label))
        if (i + 1) % 10_000 == 0:
            print(f"{i + 1}/{args.clips} clips, {time.monotonic() - t0:.0f} s", file=sys.stderr)
    for n in prefixes:
        name = "manifest.csv" if n == args.clips else f"manifest-{n}.csv"
        with open(args.out / name, "w", newline="") as handle:
            w = csv.writer(handle)
            w.writerow(["path", "label"])
            w.writerows(rows[:n])
    print(f"{args.clips} clips in {len(CLASSES)} classes under {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

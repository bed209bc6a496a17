#!/usr/bin/env bash
# The main job: train the default FSDD model unless the BentoML store already has one, then show where it is.
# (The service issue extends this to "then serve".)
set -euo pipefail
PY=${PY:-.venv/bin/python}
DATA=${DATA:-../shared/data/fsdd}
MODEL=${MODEL_NAME:-audio_classifier}

if $PY -m bentoml models get "$MODEL:latest" >/dev/null 2>&1; then
    echo "model $MODEL:latest is in the BentoML store; not retraining (delete it or run 'make train' to refresh)"
else
    if [ ! -e "$DATA" ]; then
        echo "no training data at $DATA: set DATA=/path/to/clips or run scripts/fetch_fsdd.sh" >&2
        exit 2
    fi
    out="runs/default-$(date +%Y%m%d-%H%M%S)"
    $PY -m training train --data "$DATA" --out "$out"
    echo "report: $out/report.md"
fi
$PY -m bentoml models list "$MODEL"

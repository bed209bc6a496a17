#!/usr/bin/env bash
# The main job: train the default FSDD model unless the BentoML store already has one, then serve it
# (HTTP on $AUDIOCLF_HTTP_PORT, default 3000; gRPC on $AUDIOCLF_GRPC_PORT, default 50051).
set -euo pipefail
PY=${PY:-.venv/bin/python}
DATA=${DATA:-../shared/data/fsdd}
TAG=${AUDIOCLF_MODEL_TAG:-audio_classifier:latest}

if $PY -m bentoml models get "$TAG" >/dev/null 2>&1; then
    echo "model $TAG is in the BentoML store; serving it (run 'make train' to train a new version)"
else
    if [ ! -e "$DATA" ]; then
        echo "no training data at $DATA: set DATA=/path/to/clips or run scripts/fetch_fsdd.py" >&2
        exit 2
    fi
    out="runs/default-$(date +%Y%m%d-%H%M%S)"
    $PY -m training train --data "$DATA" --out "$out"
    echo "report: $out/report.md"
fi
exec $PY -m service

#!/usr/bin/env bash
# Build the Bento for one variant and export it as an archive with the model inside (what `make bento` runs).
#   k8s/build_bento.sh [cpu|gpu] [OUT_DIR] [MODEL_TAG]
# Offline-capable: bentofile*.yaml install pinned requirements and never lock against PyPI. The model comes from
# the BentoML store ($BENTOML_HOME); MODEL_TAG (default audio_classifier:latest) picks the version to package.
set -euo pipefail
cd "$(dirname "$0")/.."
VARIANT=${1:-cpu}
OUT=${2:-runs/bento}
MODEL=${3:-audio_classifier:latest}
PY=${PY:-.venv/bin/python}
case "$VARIANT" in
    cpu) FILE=bentofile.yaml ;;
    gpu) FILE=bentofile.gpu.yaml ;;
    *) echo "variant must be cpu or gpu, not $VARIANT" >&2; exit 2 ;;
esac
mkdir -p "$OUT"
# The bentofile names the model as audio_classifier:latest; resolve the requested one to that exact version.
exact=$($PY -c 'import sys, bentoml; print(bentoml.models.get(sys.argv[1]).tag)' "$MODEL")
tmpfile=$(mktemp "bentofile.build.XXXXXX.yaml")
trap 'rm -f "$tmpfile"' EXIT
sed "s|^  - audio_classifier:latest\b.*|  - $exact|" "$FILE" > "$tmpfile"
tag=$($PY -m bentoml build -f "$tmpfile" --output tag . | tail -1 | sed 's/^__tag__://')
archive="$OUT/${tag/:/-}.bento"
$PY -m bentoml export "$tag" "$archive" >/dev/null
echo "bento $tag (model $exact): $archive"

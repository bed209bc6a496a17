#!/usr/bin/env bash
# Debian packages the project needs beyond Python wheels, installed only when missing:
#   prometheus: `promtool check metrics` and a real Prometheus server in the service's metrics tests.
# soundfile's wheel bundles libsndfile (wav, flac, ogg, mp3), so no audio libraries are needed.
set -euo pipefail
missing=()
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "installing Debian packages: ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

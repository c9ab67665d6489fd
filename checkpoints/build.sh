#!/usr/bin/env bash
# Rebuild the shipped checkpoints from the development sets with the command line tool's defaults
# (10 minutes of training each, calibration included; seed 0):
#   bash checkpoints/build.sh [DATA]      (DATA defaults to ../shared/data)
# Training is budgeted in time, so a faster machine trains more steps and the result differs slightly.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data}
for name in bottle ksdd weld; do
  python -m rbd train "$DATA/$name" --out "checkpoints/$name" --seed 0 --device cpu --quiet
done

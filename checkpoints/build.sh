#!/usr/bin/env bash
# Rebuild the shipped checkpoints from the development sets with the command line tool's defaults
# (10 minutes of training each, calibration included; seed 0), each with its test set's metrics recorded:
#   bash checkpoints/build.sh [DATA]      (DATA defaults to ../shared/data)
# Training is budgeted in time, so a faster machine trains more steps and the result differs slightly.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data}
for name in bottle ksdd weld; do
  python -m rbd train "$DATA/$name" --out "checkpoints/$name" --seed 0 --device cpu --quiet
  # its own test, recorded in the checkpoint (the app's model line and the model card say what it found)
  python -c "import rbd, sys; d = rbd.load(sys.argv[1]); rbd.save(d, sys.argv[1], metrics=rbd.evaluate(d, sys.argv[2]).summary())" \
    "checkpoints/$name" "$DATA/$name"
done

#!/usr/bin/env bash
# The source paper's protocol on the quick offline preset (MNIST-1D, generated locally):
# tune the step-decay grid, meta-train the controller, evaluate with 10 seeds against the
# tuned step decay, constant, cosine, ASLR and the lookahead, then transfer the controller
# (and the step decay tuned with it) from the MLP to the 1-D LeNet.
# Runs on 2 CPU cores; docs/results.md reports what it printed and how long it took.
set -euo pipefail
cd "$(dirname "$0")/.."
LRGYM=${LRGYM:-.venv/bin/lrgym}
OUT=${OUT:-runs/quick-mnist1d-mlp}

$LRGYM experiment mnist1d-mlp --transfer-to mnist1d-lenet \
    --timesteps 12000 --n-envs 2 --seeds 10 --jobs 2 --out "$OUT" "$@"

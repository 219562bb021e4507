#!/usr/bin/env bash
# The source paper's experiments on the paper presets (a GPU is expected; --device auto):
#   Table 1: Fashion-MNIST with a CNN, step decay tuned on the grid vs the learned controller;
#   Table 2: a controller trained on CIFAR-10 (CNN) transferred to Fashion-MNIST (CNN),
#            against the step decay tuned on CIFAR-10 and transferred the same way.
# Both with 10 evaluation seeds. Extra flags are passed to both commands (e.g. --jobs 8).
set -euo pipefail
cd "$(dirname "$0")/.."
LRGYM=${LRGYM:-.venv/bin/lrgym}
OUT=${OUT:-runs/paper}

$LRGYM experiment fashion-mnist-lenet --seeds 10 --out "$OUT/fashion-mnist-lenet" "$@"
$LRGYM experiment cifar10-lenet --transfer-to fashion-mnist-lenet --seeds 10 --out "$OUT/cifar10-lenet" "$@"

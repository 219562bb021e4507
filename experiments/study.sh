#!/usr/bin/env bash
# The study (docs/study.md): which design makes a learned controller win on tasks it never saw.
#
# 1. the step decay tuned across mnist1d-family's train instances (the fair reference,
#    and the base schedule of the residual cells);
# 2. the ablation staircase, every cell meta-trained with the same budget of controller
#    decisions (BUDGET):
#      A  mnist1d-mlp only, xu state, val_loss reward             (today's recipe)
#      B  mnist1d-family train set, xu, val_loss
#      C  family, scale-free state, val_loss
#      D  family, scale-free, log_improvement (gamma 1)
#      E  family, scale-free, log_improvement, residual action over the family step decay
#      F  as E, reward relative to the base schedule's own run, paid at the end (gamma 1, GAE lambda 1)
# 3. every cell and the baselines on INSTANCES test instances x SEEDS paired seeds;
# 4. the aggregate (IQM, bootstrap intervals, probability of improvement, profiles).
#
# Every stage resumes: a cell whose folder exists continues from its last checkpoint (or
# stops at once when it is done), tunings and evaluations reuse their caches. On 2 CPU
# cores the whole study takes about two hours (docs/study.md has the measured times).
set -euo pipefail
cd "$(dirname "$0")/.."
LRGYM=${LRGYM:-.venv/bin/lrgym}
OUT=${OUT:-runs/study}
BUDGET=${BUDGET:-3000}      # controller decisions per cell (150 family episodes of 20 decisions)
JOBS=${JOBS:-2}
INSTANCES=${INSTANCES:-test:20}
SEEDS=${SEEDS:-3}
FAMILY=mnist1d-family
CONTROLLERS=$OUT/eval-controllers

# 1. the family-tuned step decay, written where the evaluation looks for it
$LRGYM tune $FAMILY --jobs "$JOBS" --out "$CONTROLLERS/step-grid"
CHOICE=$(ls "$CONTROLLERS"/step-grid/step-grid-family-*.json | head -n 1)

# 2. the cells
train() {
    local out=$1; shift
    local resume=()
    [ -d "$out/periodic" ] && resume=(--resume)
    $LRGYM train "$@" --timesteps "$BUDGET" --out "$out" --no-progress "${resume[@]}"
}
SCALE_FREE=(--set features=scale-free)
RESIDUAL=(--set action=residual --set "base_schedule=@$CHOICE")
train "$OUT/A" mnist1d-mlp
train "$OUT/B" $FAMILY
train "$OUT/C" $FAMILY "${SCALE_FREE[@]}"
train "$OUT/D" $FAMILY --agent ppo-outcome "${SCALE_FREE[@]}" --set reward=log_improvement
train "$OUT/E" $FAMILY --agent ppo-outcome "${SCALE_FREE[@]}" --set reward=log_improvement "${RESIDUAL[@]}"
train "$OUT/F" $FAMILY --agent ppo-monte-carlo "${SCALE_FREE[@]}" --set reward=relative_terminal "${RESIDUAL[@]}"

# 3. the evaluation on test instances never seen in training or selection
EVALUATE=($LRGYM evaluate $FAMILY --instances "$INSTANCES" --seeds "$SEEDS" --jobs "$JOBS" --allow-long-tuning)
"${EVALUATE[@]}" --agents step-grid-small,constant,cosine,hypergradient,prodigy --out "$OUT/eval-baselines"
"${EVALUATE[@]}" --agents "step-grid-family,ppo:$OUT/A,ppo:$OUT/B,ppo:$OUT/C,ppo:$OUT/D,ppo:$OUT/E,ppo:$OUT/F" \
    --out "$CONTROLLERS"

# 4. the aggregate
$LRGYM aggregate "$CONTROLLERS" "$OUT/eval-baselines" --reference step-grid-family \
    --compare-with step-grid-small,prodigy,hypergradient --plot-agents ppo:F,ppo:E,step-grid-small \
    --out "$OUT/summary"

# 5. the best cell (F) on the old single-task protocol (10 seeds of mnist1d-mlp against the
#    step decay tuned on it, shipped beside checkpoints/mnist1d-mlp-ppo) and transferred to
#    tasks outside the family (against the family-tuned step decay, transferred as it is)
mkdir -p "$OUT/single-task/step-grid"
cp checkpoints/mnist1d-mlp-ppo/step-grid-mnist1d-mlp-*.json "$OUT/single-task/step-grid/"
$LRGYM evaluate mnist1d-mlp --agents "step-grid,ppo:$OUT/F,ppo:checkpoints/mnist1d-mlp-ppo,prodigy" --seeds 10 \
    --jobs "$JOBS" --out "$OUT/single-task"
$LRGYM transfer "$OUT/F" mnist1d-lenet --baseline-config "$CHOICE" --target-baselines prodigy,constant \
    --seeds 10 --jobs "$JOBS" --out "$OUT/transfer-mnist1d-lenet"
# Fashion-MNIST (apt-get install dataset-fashion-mnist): 5 seeds, a LeNet on 28x28 is slower
$LRGYM transfer "$OUT/F" fashion-mnist-quick --baseline-config "$CHOICE" --target-baselines prodigy,constant \
    --seeds 5 --jobs "$JOBS" --out "$OUT/transfer-fashion-mnist-quick"

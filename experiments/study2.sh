#!/usr/bin/env bash
# Study 2 (docs/study.md, part 2): a learned controller against what a practitioner would
# actually use, on sealed test instances and on a benchmark we did not design (issue #21).
#
# Stages (STAGES="a b ..." runs some of them; default: every stage whose inputs exist):
#   tune          the tunings on mnist1d-family's TRAIN instances: the family step decay of
#                 study 1 (read from the checkpoint folder that shipped it), the step decay
#                 tuned per optimizer (42 configurations x 8 train instances of each optimizer),
#                 warm-up + cosine tuned per optimizer (13 rates x 8 instances of each)
#   references    every reference on the SEALED test instances (TEST, x SEEDS paired seeds),
#                 one folder and one resumable stage per agent; the per-instance oracle tunes
#                 on each test instance's tuning seeds 1000-1001, never the evaluation seeds.
#                 Nothing is chosen from these results.
#   rule          the DAC4SGD winning rule on the same instances        
#   cells         F, O, P, R x PPO seeds (PPO_SEEDS) at BUDGET decisions
#   select        every cell on VALIDATION instances; the shipped cell is the lowest IQM
#                 against step-grid-per-optimizer there (never on test)
#   final         every cell on the sealed test instances
#   aggregate     pooled: IQM, probability of improvement, Wilcoxon and sign tests on
#                 per-instance mean log ratios, per-optimizer tables
#   transfer      the shipped cell, without retraining, on fashion-mnist-quick (Adam and momentum
#                 SGD) and mnist1d-mlp against the references transferred as they are; on the
#                 DAC4SGD family
#   account       compute.md: each finished stage's wall and CPU time, the trainee runs per method
#
# Every stage resumes and skips when done: a stage that finished has a record in
# RESULTS/stages/NAME.json (command, wall and CPU seconds, torch threads, jobs, host); a
# reference or tuning stopped half-way keeps the choices it cached; a cell continues from
# its last periodic checkpoint. Every run uses one torch thread (lrgym pins it; recorded in
# results.csv's torch_threads column). Remove a stage's record to run it again.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"   # this checkout's lrgym, whatever is installed
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
PY=${PY:-.venv/bin/python}
LRGYM=${LRGYM:-"$PY -m lrgym.cli"}
RESULTS=${RESULTS:-docs/results/study2}   # small files, committed
RUNS=${RUNS:-runs/study2}                 # controllers (checkpoints), git-ignored
STAGES=${STAGES:-all}
SET=${SET:-}                              # --set flags for every run (a smoke test: SET="--set steps=20")
JOBS=${JOBS:-1}
FAMILY=mnist1d-family
TEST=${TEST:-test:100-159}                # sealed: touched only by references and the final evaluation
SEEDS=${SEEDS:-3}
VALIDATION=${VALIDATION:-validation:100-139}   # apart from the first ones, which choose each cell's checkpoint
VALIDATION_SEEDS=${VALIDATION_SEEDS:-2}
BUDGET=${BUDGET:-6000}                    # controller decisions per cell (twice study 1's 3000)
PPO_SEEDS=${PPO_SEEDS:-"0 1"}
CELLS=${CELLS:-"F O P R"}
P_BASE=${P_BASE:-constant}                # cell P: residual over Prodigy with a constant (or cosine) multiplier
POPULATION=${POPULATION:-8}               # #17: family populations of 8 seeds per instance (empty: one env)
RULE_AGENT=${RULE_AGENT-dac4sgd-winner}    # #18: the DAC4SGD winning rule (empty: skip)
DAC_FAMILY=${DAC_FAMILY-dac4sgd-fashion-mnist}  # #18: the DAC4SGD family (empty: skip)
# shellcheck disable=SC2206
REFERENCES=(${REFERENCES:-step-grid-per-optimizer step-grid-family prodigy prodigy-cosine schedulefree constant-tuned
            cosine-tuned hypergradient-tuned warmup-cosine-per-optimizer step-grid-oracle})
CHOICES=$RESULTS/choices

wanted() { [[ " $STAGES " == *" all "* || " $STAGES " == *" $1 "* ]]; }

# stage NAME COMMAND...: run COMMAND unless RESULTS/stages/NAME.json records that it finished;
# then record its wall and CPU seconds (of the attempt that finished).
stage() {
    local name=$1; shift
    local record=$RESULTS/stages/$name.json
    if [ -f "$record" ]; then echo "== $name: done ($record)"; return 0; fi
    echo "== $name: $*"
    mkdir -p "$RESULTS/stages"
    # bash -c: a stage may be a function of this script (exported below), and time needs a program
    /usr/bin/time -f "%e %U %S" -o "$RESULTS/stages/$name.time" bash -c '"$@"' "$name" "$@"
    read -r wall user system < "$RESULTS/stages/$name.time"
    rm "$RESULTS/stages/$name.time"
    $PY - "$record" "$name" "$wall" "$user" "$system" "$JOBS" "$*" <<'EOF'
import datetime, json, os, socket, sys
record, name, wall, user, system, jobs, command = sys.argv[1:]
# lrgym pins one torch thread in every run (and records it in results.csv); this is the environment's bound.
json.dump({"stage": name, "command": command, "wall_s": float(wall), "cpu_s": round(float(user) + float(system), 1),
           "torch_threads": int(os.environ["OMP_NUM_THREADS"]), "jobs": int(jobs), "host": socket.gethostname(),
           "finished": datetime.datetime.now().isoformat(timespec="seconds")}, open(record, "w"), indent=2)
EOF
}

# The choice files of a tuning, as the evaluation caches find them (OUT/step-grid/).
seed_cache() { mkdir -p "$1/step-grid"; cp "$CHOICES"/*.json "$1/step-grid/"; }
choice_of() { ls "$CHOICES"/"$1"-$FAMILY-*.json | grep -v -- '-\(adam\|momentum\|sgd\)\.json$' | head -n 1; }

export PY LRGYM RESULTS RUNS JOBS FAMILY BUDGET POPULATION CHOICES P_BASE SET
export -f seed_cache choice_of

# ---------------------------------------------------------------------------- tunings (train instances)
if wanted tune; then
    mkdir -p "$CHOICES"
    # study 1's choice (504 episodes), shipped beside its controller; a smoke test (SET) tunes its own
    [ -z "$SET" ] && cp -n checkpoints/mnist1d-family-ppo/step-grid-family-$FAMILY-*.json "$CHOICES/"
    stage tune-family $LRGYM tune $FAMILY $SET --jobs "$JOBS" --out "$CHOICES"
    stage tune-per-optimizer $LRGYM tune $FAMILY --agent step-grid-per-optimizer $SET --jobs "$JOBS" --out "$CHOICES"
    stage tune-warmup-cosine $LRGYM tune $FAMILY --agent warmup-cosine-per-optimizer $SET --jobs "$JOBS" --out "$CHOICES"
fi

evaluate_on() {  # evaluate_on SPLIT SEEDS FOLDER AGENT: one agent on a family split, its choices cached
    seed_cache "$3"
    $LRGYM evaluate $FAMILY $SET --instances "$1" --seeds "$2" --agents "$4" --jobs "$JOBS" --allow-long-tuning \
        --out "$3" 2>&1
}
export -f evaluate_on

# ---------------------------------------------------------------------------- references (sealed test)
if wanted references; then
    for agent in "${REFERENCES[@]}"; do
        stage "test-$agent" evaluate_on "$TEST" "$SEEDS" "$RESULTS/test/$agent" "$agent"
    done
fi
if wanted rule; then
    if [ -z "$RULE_AGENT" ]; then echo "== rule: skipped (RULE_AGENT is empty)"
    else stage "test-$RULE_AGENT" evaluate_on "$TEST" "$SEEDS" "$RESULTS/test/$RULE_AGENT" "$RULE_AGENT"; fi
fi

# ---------------------------------------------------------------------------- cells (train instances)
cell_arguments() {  # the task fields of a cell
    local family_choice per_optimizer
    family_choice=$(choice_of step-grid-family); per_optimizer=$(choice_of step-grid-per-optimizer)
    local common=(--agent ppo-monte-carlo --set reward=relative_terminal --set action=residual)
    case $1 in
        F) echo "${common[*]} --set features=scale-free --set base_schedule=@$family_choice" ;;
        O) echo "${common[*]} --set features=scale-free-optimizer --set base_schedule=@$per_optimizer" ;;
        P) echo "${common[*]} --set features=scale-free --set optimizer=prodigy --set optimizer_kwargs={}" \
                "--set base_schedule=@experiments/study2/prodigy-$P_BASE.json" ;;
        R) echo "${common[*]} --set features=scale-free --set base_schedule=@$family_choice --set base_lr_spread=1.0" ;;
        *) echo "unknown cell $1 (F, O, P, R)" >&2; return 2 ;;
    esac
}
train_cell() {  # train_cell CELL SEED
    local out=$RUNS/$1-s$2 resume=() population=()
    [ -d "$out/periodic" ] && resume=(--resume)
    # A population of N seeds per drawn instance (#17), with PPO's rollout kept at the 1-env recipe's 240
    # decisions (same updates per decision). Cell P runs Prodigy, which a population cannot stack: one env.
    [ -n "$POPULATION" ] && [ "$1" != P ] && population=(--population "$POPULATION" --rollout 240)
    # shellcheck disable=SC2046
    $LRGYM train $FAMILY $SET $(cell_arguments "$1") --seed "$2" --timesteps "$BUDGET" "${population[@]}" \
        --out "$out" --no-progress "${resume[@]}"
}
export -f cell_arguments train_cell
controllers() { for cell in $CELLS; do for seed in $PPO_SEEDS; do echo "$cell-s$seed"; done; done; }
if wanted cells; then
    [ -z "$POPULATION" ] && echo "== cells: without #17's family populations each cell takes hours here"
    for cell in $CELLS; do for seed in $PPO_SEEDS; do stage "cell-$cell-s$seed" train_cell "$cell" "$seed"; done; done
fi

# ---------------------------------------------------------------------------- selection (validation)
if wanted select; then
    for agent in step-grid-per-optimizer prodigy; do
        stage "validation-$agent" evaluate_on "$VALIDATION" "$VALIDATION_SEEDS" "$RESULTS/validation/$agent" "$agent"
    done
    for controller in $(controllers); do
        stage "validation-$controller" evaluate_on "$VALIDATION" "$VALIDATION_SEEDS" \
            "$RESULTS/validation/$controller" "ppo:$RUNS/$controller"
    done
    stage select-aggregate $LRGYM aggregate "$RESULTS"/validation/* --reference step-grid-per-optimizer \
        --compare-with prodigy --out "$RESULTS/selection"
    $PY - "$RESULTS/selection/shipped.txt" "$RESULTS"/validation/* <<'EOF'
import sys
from lrgym.evaluation.aggregate import aggregate
from lrgym.evaluation.aggregate_report import pooled_rows
rows = pooled_rows(sys.argv[2:], "results.csv")
cells = [a for a in aggregate(rows, "step-grid-per-optimizer", repetitions=10) if a.agent.startswith("ppo:")]
best = min(cells, key=lambda a: a.iqm)
open(sys.argv[1], "w").write(best.agent.removeprefix("ppo:") + "\n")
print(f"shipped cell (lowest validation IQM against step-grid-per-optimizer): {best.agent} {best.iqm:.3f}")
EOF
fi

# ---------------------------------------------------------------------------- final evaluation (sealed test)
if wanted final; then
    for controller in $(controllers); do
        stage "test-$controller" evaluate_on "$TEST" "$SEEDS" "$RESULTS/test/$controller" "ppo:$RUNS/$controller"
    done
fi
if wanted aggregate; then
    # Every finished evaluation (the oracle may still be tuning: its folder then holds only its cache).
    finished=(); for folder in "$RESULTS"/test/*; do [ -f "$folder/results.csv" ] && finished+=("$folder"); done
    oracle=""; [ -f "$RESULTS/test/step-grid-oracle/results.csv" ] && oracle=step-grid-oracle,
    shipped=$(cat "$RESULTS/selection/shipped.txt" 2>/dev/null || true)
    plot=(); [ -n "$shipped" ] && plot=(--plot-agents "ppo:$shipped,${oracle}warmup-cosine-per-optimizer")
    stage aggregate $LRGYM aggregate "${finished[@]}" --reference step-grid-per-optimizer \
        --compare-with "prodigy,step-grid-family,${oracle}warmup-cosine-per-optimizer,schedulefree${RULE_AGENT:+,$RULE_AGENT}" \
        "${plot[@]}" --out "$RESULTS/aggregate"
    if [ -n "$oracle" ]; then  # the moonshot's yardstick: every cell and the main references against the oracle
        stage aggregate-oracle $LRGYM aggregate "$RESULTS"/test/[FOPR]-s* "$RESULTS"/test/step-grid-oracle \
            "$RESULTS"/test/step-grid-per-optimizer "$RESULTS"/test/prodigy --reference step-grid-oracle \
            --out "$RESULTS/aggregate-oracle"
    fi
fi

# ---------------------------------------------------------------------------- transfer (no retraining)
# References transferred as they are (tuned on mnist1d-family: --agent-config), Prodigy, Schedule-Free,
# the winning rule, and the step decay tuned on the target itself (the yardstick of "within 5%").
if wanted transfer; then
    shipped=$(cat "$RESULTS/selection/shipped.txt")
    TRANSFERRED=(--agent-config "step-grid-per-optimizer=$(choice_of step-grid-per-optimizer)"
                 --agent-config "step-grid-family=$(choice_of step-grid-family)")
    OTHERS="prodigy,prodigy-cosine,schedulefree${RULE_AGENT:+,$RULE_AGENT}"
    for target in "fashion-mnist-quick adam" "fashion-mnist-quick momentum" "mnist1d-mlp adam"; do
        set -- $target
        stage "transfer-$1-$2" $LRGYM evaluate "$1" --set optimizer="$2" --seeds 5 --jobs "$JOBS" --allow-long-tuning \
            --agents "step-grid-per-optimizer,ppo:$RUNS/$shipped,step-grid-family,$OTHERS,step-grid" \
            "${TRANSFERRED[@]}" --out "$RESULTS/transfer/$1-$2"
        # One task: seed-resampled intervals only. The yardstick is the step decay tuned on the target itself.
        stage "transfer-$1-$2-aggregate" $LRGYM aggregate "$RESULTS/transfer/$1-$2" --reference step-grid \
            --compare-with "prodigy,schedulefree,step-grid-per-optimizer${RULE_AGENT:+,$RULE_AGENT}" \
            --out "$RESULTS/transfer/$1-$2/aggregate"
    done
    if [ -z "$DAC_FAMILY" ]; then echo "== transfer to DAC4SGD: skipped (DAC_FAMILY is empty)"
    else
        # Three folders, so that the transferred and the target-tuned per-optimizer step decay (one name)
        # are never pooled: aggregate the cell's folder with either.
        DAC=(evaluate "$DAC_FAMILY" --instances test:20 --seeds 3 --jobs "$JOBS" --allow-long-tuning)
        stage "transfer-$DAC_FAMILY-cell" $LRGYM "${DAC[@]}" --agents "ppo:$RUNS/$shipped" \
            --out "$RESULTS/transfer/$DAC_FAMILY/cell"
        stage "transfer-$DAC_FAMILY-transferred" $LRGYM "${DAC[@]}" \
            --agents "step-grid-per-optimizer,step-grid-family,$OTHERS" "${TRANSFERRED[@]}" \
            --out "$RESULTS/transfer/$DAC_FAMILY/transferred"
        stage "transfer-$DAC_FAMILY-tuned" $LRGYM "${DAC[@]}" --agents step-grid-per-optimizer \
            --out "$RESULTS/transfer/$DAC_FAMILY/tuned-on-target"
        for against in transferred tuned-on-target; do
            stage "transfer-$DAC_FAMILY-aggregate-$against" $LRGYM aggregate "$RESULTS/transfer/$DAC_FAMILY/cell" \
                "$RESULTS/transfer/$DAC_FAMILY/$against" --reference step-grid-per-optimizer \
                --out "$RESULTS/transfer/$DAC_FAMILY/aggregate-$against"
        done
    fi
fi

# ---------------------------------------------------------------------------- the compute account
# Always rewritten (it only reads): every finished stage's wall and CPU time, the trainee runs per method.
if wanted account; then
    $PY experiments/study2_account.py "$RESULTS" "$RUNS" > "$RESULTS/compute.md"
    echo "== account: wrote $RESULTS/compute.md"
fi

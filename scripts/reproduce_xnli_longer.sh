#!/usr/bin/env bash
# A longer task stage for the two systems the paper's claim is about (issue 7 follow-up): LayAlign and MindMerger,
# seed 0, from the stage-1 models scripts/reproduce_xnli.sh trained, STEPS task steps (default 300, 3x the main
# comparison) with the frozen models in bf16 under autocast (faster on this CPU), then XNLI dev by choice scoring.
#
#   bash scripts/reproduce_xnli_longer.sh            # after scripts/reproduce_xnli.sh; resumable
#   STEPS=1000 CHOICE_LIMIT=300 bash scripts/reproduce_xnli_longer.sh
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/reproduction}
DATA=${DATA:-../shared/data}
STEPS=${STEPS:-300}
CHOICE_LIMIT=${CHOICE_LIMIT:-100}
export OMP_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1
start=$(date +%s)

longer() {  # VARIANT NAME
  local dir=$OUT/$1-s0
  layalign train --config "configs/reproduction/$1.yaml" --resume seed=0 data_dir="$DATA" \
      init_from="$dir/translation" output_dir="$dir/task-$STEPS" max_steps="$STEPS" eval_every=100 \
      model.dtype=bfloat16 mixed_precision=bf16
  layalign evaluate --model "$dir/task-$STEPS/best" --benchmark xnli --data "$DATA/xnli/dev" \
      --limit "$CHOICE_LIMIT" --batch-size 16 --scoring choices --name "$2, $STEPS steps (seed 0)" \
      --out "$OUT/eval-choices/$1-s0-$STEPS"
}

longer layalign LayAlign > "$OUT/logs/layalign-s0-$STEPS.log" 2>&1 & a=$!
longer mindmerger MindMerger > "$OUT/logs/mindmerger-s0-$STEPS.log" 2>&1 & b=$!
wait $a; wait $b
layalign compare "$OUT/eval-choices/mindmerger-s0-$STEPS" "$OUT/eval-choices/layalign-s0-$STEPS" \
    --out "$OUT/compare-choices-$STEPS"
echo "$(( ($(date +%s) - start) / 60 )) min" > "$OUT/wall_time_longer.txt"

#!/usr/bin/env bash
# Small-scale reproduction on XNLI (issue 7): LLM only (prompted), LangBridge, MindMerger and LayAlign on the
# offline default pair (multilingual-e5-small + SmolLM2-135M-Instruct), the full two-stage pipeline with the same
# data budget and optimiser steps for every trained system, two seeds for MindMerger and LayAlign, evaluation on
# the XNLI dev set in all 15 languages, then the comparison table, the chart, the translation-stage chrF and the
# trained LayAlign's gate / layer-mix heatmaps.
#
# Superseded by scripts/comparison.py (the decisive comparison: more seeds, llm-lora, paired bootstrap); kept as
# the command that produced docs/results/reproduction.md.
#
#   bash scripts/reproduce_xnli.sh                   # everything; rerunning resumes and skips what is done
#   OUT=runs/repro LIMIT=100 LANES=1 bash scripts/reproduce_xnli.sh
#
# Every system is evaluated twice: by generation (greedy, the label word read from the output, as the paper) on
# LIMIT rows per language, and by choice scoring (the most likely of the three label words) on CHOICE_LIMIT rows.
# LANES=2 runs two trainings at a time with one thread each (2 cores); LIMIT = XNLI dev rows per language;
# TRAIN_OVERRIDES are added to every `layalign train` (a dry run: TRAIN_OVERRIDES="max_steps=2 dev_size=8").
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/reproduction}
DATA=${DATA:-../shared/data}
LIMIT=${LIMIT:-40}
CHOICE_LIMIT=${CHOICE_LIMIT:-100}
LANES=${LANES:-2}
TRANSLATION_LIMIT=${TRANSLATION_LIMIT:-10}
read -r -a OVERRIDES <<< "${TRAIN_OVERRIDES:-}"
export TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1
[ "$LANES" -gt 1 ] && export OMP_NUM_THREADS=1
mkdir -p "$OUT/logs"
start=$(date +%s)

system() {  # VARIANT SEED NAME: both training stages, then XNLI dev
  local variant=$1 seed=$2 name=$3 dir=$OUT/$1-s$2
  layalign train --config configs/reproduction/translation.yaml --resume model.variant="$variant" seed="$seed" \
      data_dir="$DATA" output_dir="$dir/translation" "${OVERRIDES[@]}"
  layalign train --config "configs/reproduction/$variant.yaml" --resume seed="$seed" data_dir="$DATA" \
      init_from="$dir/translation" output_dir="$dir/task" "${OVERRIDES[@]}"
  layalign evaluate --model "$dir/task/best" --benchmark xnli --data "$DATA/xnli/dev" --limit "$LIMIT" \
      --batch-size 16 --max-new-tokens 5 --name "$name (seed $seed)" --out "$OUT/eval/$variant-s$seed"
  choices "$dir/task/best" "$name (seed $seed)" "$variant-s$seed"
}

choices() {  # MODEL NAME DIR: XNLI dev by choice scoring
  layalign evaluate --model "$1" --benchmark xnli --data "$DATA/xnli/dev" --limit "$CHOICE_LIMIT" --batch-size 16 \
      --scoring choices --name "$2" --out "$OUT/eval-choices/$3"
}

llm_only() {
  layalign evaluate --model llm:smollm2-135m-instruct --benchmark xnli --data "$DATA/xnli/dev" --limit "$LIMIT" \
      --batch-size 16 --max-new-tokens 5 --name "LLM only (prompted)" --out "$OUT/eval/llm-only"
  choices llm:smollm2-135m-instruct "LLM only (prompted)" llm-only
}

lane() {  # run "variant:seed:name" items one after another, logging each
  for item in "$@"; do
    IFS=: read -r variant seed name <<< "$item"
    echo "[$(date +%H:%M:%S)] $name seed $seed" >&2
    system "$variant" "$seed" "$name" > "$OUT/logs/$variant-s$seed.log" 2>&1 \
        || { echo "$name seed $seed failed, see $OUT/logs/$variant-s$seed.log" >&2; return 1; }
  done
}

jobs_a=("layalign:0:LayAlign" "mindmerger:0:MindMerger" "langbridge:0:LangBridge")
jobs_b=("layalign:1:LayAlign" "mindmerger:1:MindMerger")
if [ "$LANES" -gt 1 ]; then
  lane "${jobs_a[@]}" & a=$!
  { lane "${jobs_b[@]}"; llm_only > "$OUT/logs/llm-only.log" 2>&1; } & b=$!
  wait $a; wait $b
else
  lane "${jobs_a[@]}" "${jobs_b[@]}"
  llm_only > "$OUT/logs/llm-only.log" 2>&1
fi

# translation stage quality (NTREX-128, held out from training), the seed-0 stage-1 models
for variant in layalign mindmerger langbridge; do
  layalign evaluate --model "$OUT/$variant-s0/translation/best" --benchmark translation --data "$DATA/parallel" \
      --langs ar bg de el es fr hi ru sw th tr ur vi zh --limit "$TRANSLATION_LIMIT" --batch-size 16 \
      --max-new-tokens 48 --name "$variant stage 1" --out "$OUT/eval/translation-$variant" \
      > "$OUT/logs/translation-$variant.log" 2>&1
done

layalign compare "$OUT/eval/llm-only" "$OUT/eval/langbridge-s0" "$OUT/eval/mindmerger-s0" "$OUT/eval/mindmerger-s1" \
    "$OUT/eval/layalign-s0" "$OUT/eval/layalign-s1" --out "$OUT/compare"
layalign compare "$OUT/eval-choices/llm-only" "$OUT/eval-choices/langbridge-s0" "$OUT/eval-choices/mindmerger-s0" \
    "$OUT/eval-choices/mindmerger-s1" "$OUT/eval-choices/layalign-s0" "$OUT/eval-choices/layalign-s1" \
    --out "$OUT/compare-choices"
layalign compare "$OUT/eval/translation-langbridge" "$OUT/eval/translation-mindmerger" \
    "$OUT/eval/translation-layalign" --out "$OUT/compare-translation"
for seed in 0 1; do
  layalign inspect "$OUT/layalign-s$seed/task/best" --out "$OUT/compare/layalign-s$seed-fusion.png"
done > "$OUT/inspect.txt"
echo "$(( ($(date +%s) - start) / 60 )) min" > "$OUT/wall_time.txt"
echo "done in $(cat "$OUT/wall_time.txt"): $OUT/compare; report: python scripts/reproduction_report.py --run $OUT" >&2

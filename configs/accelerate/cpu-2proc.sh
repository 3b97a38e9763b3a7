#!/usr/bin/env bash
# Two data-parallel processes on the CPU (gloo). accelerate's own `--cpu --num_processes 2` starts a single
# process unless MPI is set up, so this goes through its torchrun path with the CPU forced.
#   bash configs/accelerate/cpu-2proc.sh --config configs/small/translation.yaml gradient_accumulation_steps=1
exec env ACCELERATE_USE_CPU=true OMP_NUM_THREADS=1 accelerate launch --multi_gpu --num_processes 2 \
    --num_machines 1 --mixed_precision no --dynamo_backend no -m layalign train "$@"

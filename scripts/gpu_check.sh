#!/usr/bin/env bash
# Smoke check of distributed training on a GPU machine: torchrun (NCCL) on a tiny model, then
# accelerate launch with the default configuration on the full e5-small shape, random weights
# (timing and device placement only). Usage: bash scripts/gpu_check.sh [BASE_DIR], where BASE_DIR
# holds the base model's config.json and tokenizer files (default: the built base model).
set -u
base="${1:-models/base/multilingual-e5-small}"
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD" PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
nvidia-smi -L
python3 scripts/gpu_random_base.py "$base" || exit 1
echo "== torchrun, 1 GPU, tiny model, 30 steps"
CXTHEMES_MODELS_DIR=/tmp/m1 torchrun --nproc_per_node 1 -m service.cli train \
  --base-model /tmp/tiny --max-steps 30 --no-baselines --version gpu-ddp | tail -5
test -f /tmp/m1/gpu-ddp/bundle.json || exit 1
echo "== accelerate launch, 1 GPU, full-size random weights, default configuration"
CXTHEMES_MODELS_DIR=/tmp/m2 accelerate launch --num_processes 1 -m service.cli train \
  --base-model /tmp/full --no-baselines --version gpu-full | tail -5
python3 -c "import json; print('training_seconds', json.load(open('/tmp/m2/gpu-full/bundle.json'))['training_seconds'])"

#!/usr/bin/env bash
# The GPU check, one script, meant to take under 10 minutes on one H100:
#   1. the device-dependent tests on CUDA (fast path == hooked forward, logits and gradients, bf16 autocast);
#   2. life32 training throughput under bf16 autocast, with MFU against the measured bf16 matmul ceiling;
#   3. 200 training steps of life32, checking that the loss falls;
#   4. a 1-GPU torchrun run (the DDP code path on NCCL);
#   5. the hypothesis report on the checkpoint of step 3.
# Usage: bash bench/gpu_check.sh            (DRY_RUN=1 prints the commands without running them)
# Results: bench/results/gpu_check/ (logs, JSON); copy the numbers into bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-bench/results/gpu_check}
RUN=gpu_check_$(date +%Y%m%d-%H%M%S)
TRAIN_200="train.steps=200 train.warmup_steps=20 train.log_every=10 train.eval_every=100 train.eval_boards=64 \
train.save_every=200 train.final_eval=false train.run_id=$RUN device=cuda"
TRAIN_DDP="train.steps=20 train.warmup_steps=5 train.log_every=5 train.eval_every=1000 train.save_every=20 \
train.final_eval=false train.run_id=${RUN}_ddp device=cuda"

run() {  # print, then run unless DRY_RUN=1; every command's output goes to a log file too
    echo "+ $*"
    if [ "${DRY_RUN:-0}" != 1 ]; then
        mkdir -p "$OUT"
        "$@" 2>&1 | tee -a "$OUT/log.txt"
    fi
}

run nvidia-smi
run env INTERFERE_TEST_DEVICE=cuda "$PY" -m pytest -q -m device tests/test_model.py
run "$PY" bench/train_throughput.py --config-name exp/life32 --device cuda --autocast bf16 --steps 20 \
    --out "$OUT/train_throughput_life32.json"
run "$PY" train.py --config-name exp/life32 $TRAIN_200
run "$PY" -c "import json, sys; log = [json.loads(l) for l in open('runs/$RUN/log.jsonl')]; \
loss = [r['loss'] for r in log if 'loss' in r]; print('loss', loss[0], '->', loss[-1]); \
sys.exit(0 if loss[-1] < 0.9 * loss[0] else 'the loss did not fall')"
run "$PY" -m torch.distributed.run --standalone --nproc_per_node=1 train.py --config-name exp/life32 $TRAIN_DDP
run "$PY" -m interfere report --run-id "$RUN" --seeds 1 --no-controls --out "$OUT/report"
echo "gpu_check: done; results in $OUT"

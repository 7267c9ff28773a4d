#!/usr/bin/env bash
# One lent-GPU session, in one call, most important first: where a backward's time
# goes and the target sizes (benchmarks.gpu --quick), the CUDA tests on the real
# device, the MLP step, the whole step beside PyTorch (section (e)), the full grid of
# layer backwards, one MNIST epoch per mode. FULL=0 (skip the grid) fits one 10-minute call.
# Each step has its own time limit, so a slow or failing step still leaves the
# others' results. Logs and JSON go to ${OUT:-gpu-out}/.
#     bash benchmarks/gpu_session.sh            # FULL=0: skip the full grid; TRAIN=0: the epochs
. "$(dirname "$0")/gpu_common.sh"
step quick 110 $PY -m benchmarks.gpu --quick --only launch --only layer_backward --only topk \
    --out "$OUT/results-gpu-quick.json"
step tests 120 env SPARSEBP_REAL_GPU=1 $PY -m pytest -q -x -p no:cacheprovider tests/test_cuda.py \
    tests/test_cuda_step.py
step mlp 70 $PY -m benchmarks.gpu --quick --only mlp_step --out "$OUT/results-gpu-mlp.json"
step whole 150 $PY -m benchmarks.gpu --only whole_step --out "$OUT/results-gpu-step.json"
if [ "${FULL:-1}" = 1 ]; then
    step full 150 $PY -m benchmarks.gpu --only layer_backward --only topk --out "$OUT/results-gpu.json"
fi
if [ "${TRAIN:-1}" = 1 ]; then
    for mode in dense unified; do
        step "train-$mode" 45 $PY -m sparsebp train mnist --backend cuda --epochs 1 --mode $mode --k 20 \
            --no-progress --out "$OUT/train-$mode.json"
    done
fi
cat "$OUT/quick.log"; tail -n 4 "$OUT/tests.log"; tail -n 12 "$OUT/mlp.log"; tail -n 60 "$OUT/whole.log"
[ -f "$OUT/full.log" ] && grep -A 40 "^## (b)" "$OUT/full.log" | head -40
tail -n 3 "$OUT"/train-*.log 2>/dev/null

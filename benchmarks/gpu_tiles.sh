#!/usr/bin/env bash
# The two tile sizes of our GEMM (SPARSEBP_CUDA_TILE=32 or 64), side by side in one
# GPU session: the target sizes with the launch breakdown for each, the CUDA tests
# at the default tile, then the full grid of layer backwards for each, then the MLP
# step. Logs and JSON go to ${OUT:-gpu-out}/.
set -u
OUT=${OUT:-gpu-out}; mkdir -p "$OUT"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/device.txt"
step() {  # step NAME SECONDS COMMAND...
    local name=$1 secs=$2; shift 2
    local t0=$SECONDS
    timeout "$secs" "$@" > "$OUT/$name.log" 2>&1
    echo "=== $name: exit $? after $((SECONDS - t0))s"
}
for t in 32 64; do
    step "quick-$t" 60 env SPARSEBP_CUDA_TILE=$t $PY -m benchmarks.gpu --quick --only topk --only layer_backward \
        --only launch --out "$OUT/quick-$t.json"
done
step tests 90 env SPARSEBP_REAL_GPU=1 $PY -m pytest -q -x -p no:cacheprovider tests/test_cuda.py
for t in 32 64; do
    step "full-$t" 70 env SPARSEBP_CUDA_TILE=$t $PY -m benchmarks.gpu --only layer_backward --out "$OUT/full-$t.json"
done
step mlp 40 $PY -m benchmarks.gpu --quick --only mlp_step --out "$OUT/mlp.json"
for t in 32 64; do grep -A 4 "^## (b)" "$OUT/quick-$t.log"; grep -A 40 "^## (d)" "$OUT/quick-$t.log"; done
tail -n 2 "$OUT/tests.log"
for t in 32 64; do grep -A 30 "^## (b)" "$OUT/full-$t.log"; done
tail -n 10 "$OUT/mlp.log"

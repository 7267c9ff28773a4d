#!/usr/bin/env bash
# One lent-GPU session, in one call: the CUDA tests on the real device, then the
# GPU benchmarks (target sizes first, then the full grid), then one MNIST epoch
# on the cuda backend, dense and meProp. Each step has its own time limit, so a
# slow or failing step still leaves the others' results. Logs and JSON go to
# ${OUT:-gpu-out}/.
#     bash benchmarks/gpu_session.sh
set -u
OUT=${OUT:-gpu-out}; mkdir -p "$OUT"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/device.txt"
$PY -c "import numba, numba_cuda, numpy; print('numba', numba.__version__, 'numba-cuda', numba_cuda.__version__, 'numpy', numpy.__version__)" | tee -a "$OUT/device.txt"
step() {  # step NAME SECONDS COMMAND...
    local name=$1 secs=$2; shift 2
    echo "=== $name (limit ${secs}s)"
    local t0=$SECONDS
    timeout "$secs" "$@" > "$OUT/$name.log" 2>&1
    echo "=== $name: exit $? after $((SECONDS - t0))s"
}
step quick 100 $PY -m benchmarks.gpu --quick --out "$OUT/results-gpu-quick.json"
step tests 170 env SPARSEBP_REAL_GPU=1 $PY -m pytest -q -x -p no:cacheprovider tests/test_cuda.py
step full 190 $PY -m benchmarks.gpu --out "$OUT/results-gpu.json"
for mode in dense topk; do
    step "train-$mode" 45 $PY -m sparsebp train mnist --backend cuda --epochs 1 --mode $mode --k 20 \
        --no-progress --out "$OUT/train-$mode.json"
done
tail -n 25 "$OUT/quick.log"; tail -n 4 "$OUT/tests.log"
grep -A 40 "^## (b)" "$OUT/full.log" | head -40
tail -n 3 "$OUT"/train-*.log

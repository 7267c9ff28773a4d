# Sourced by the GPU session scripts: where results go, which Python, the device's
# name and versions in $OUT/device.txt, and `step NAME SECONDS COMMAND...`, which runs
# one step under its own time limit with its log in $OUT/NAME.log, so a slow or
# failing step still leaves the others' results.
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

#!/usr/bin/env bash
# Configurations of our GEMM side by side in one GPU session. CONFIGS lists
# TILE:LOADS[:MINBLOCKS] (SPARSEBP_CUDA_TILE, _LOADS, _MINBLOCKS; the H100 call of
# 2026-11-26 ran "32:16 64:16"). For each: the target sizes with the launch
# breakdown (section (d), which also times the unified GEMM pair in either order);
# then the CUDA tests at the default configuration; with FULL=1 the full grid of
# layer backwards for each; then the MLP step. Logs and JSON go to ${OUT:-gpu-out}/.
#     bash benchmarks/gpu_tiles.sh                               # up to ~7 min
#     FULL=1 CONFIGS="64:16 64:16:2" bash benchmarks/gpu_tiles.sh  # up to ~7 min
# (`python -m benchmarks.gpu_resources` gives each configuration's registers, blocks
# per SM and SASS instruction counts without a GPU.)
. "$(dirname "$0")/gpu_common.sh"
CONFIGS=${CONFIGS:-64:16 64:16:2 64:8 64:4}
run() {  # run NAME SECONDS TILE:LOADS[:MINBLOCKS] ARGS...
    local name=$1 secs=$2 tile loads minblocks; IFS=: read -r tile loads minblocks <<< "$3"; shift 3
    step "$name" "$secs" env SPARSEBP_CUDA_TILE=$tile SPARSEBP_CUDA_LOADS=$loads \
        SPARSEBP_CUDA_MINBLOCKS=${minblocks:-1} $PY -m benchmarks.gpu "$@"
}
for c in $CONFIGS; do
    run "quick-${c//:/-}" 75 "$c" --quick --only topk --only layer_backward --only launch --out "$OUT/quick-${c//:/-}.json"
done
step tests 90 env SPARSEBP_REAL_GPU=1 $PY -m pytest -q -x -p no:cacheprovider tests/test_cuda.py
if [ "${FULL:-0}" = 1 ]; then
    for c in $CONFIGS; do
        run "full-${c//:/-}" 70 "$c" --only layer_backward --out "$OUT/full-${c//:/-}.json"
    done
fi
step mlp 40 $PY -m benchmarks.gpu --quick --only mlp_step --out "$OUT/mlp.json"
for c in $CONFIGS; do
    echo "## $c"; grep -A 4 "^## (b)" "$OUT/quick-${c//:/-}.log"
    grep "gemm2\|topk_unified_kernel\|GEMM pair" "$OUT/quick-${c//:/-}.log"
done
tail -n 2 "$OUT/tests.log"
for c in $CONFIGS; do [ -f "$OUT/full-${c//:/-}.log" ] && echo "## $c" && grep -A 30 "^## (b)" "$OUT/full-${c//:/-}.log"; done
tail -n 10 "$OUT/mlp.log"

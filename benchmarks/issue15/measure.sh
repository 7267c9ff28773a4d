#!/usr/bin/env bash
# Issue 15's measurements, one after the other (about 3-4 minutes of one core each
# step; the threads step uses both). Writes into benchmarks/issue15/.
set -u
cd "$(dirname "$0")/../.."
O=benchmarks/issue15
unset OPENBLAS_NUM_THREADS NUMBA_NUM_THREADS OMP_NUM_THREADS MKL_NUM_THREADS
log() { echo "== $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg): $*"; }
log grid;       python -m sparsebp bench layer --n 500 2000 4000 --batch 1 32 128 --k 10 50 --reference --threads 1 --json $O/grid.json > $O/grid.md 2>&1
log mnist;      python -m sparsebp bench layer --n 500 --batch 50 --k 20 --reference --threads 1 --json $O/mnist-layer.json > $O/mnist-layer.md 2>&1
log mlp;        python -m benchmarks.run --only breakdown mlp --no-compile --threads 1 --out $O/mlp.json > $O/mlp.md 2>&1
log threads;    python -m benchmarks.threads > $O/threads.md 2>&1
log solo;       python -m sparsebp bench layer --n 500 2000 --batch 32 --k 10 --modes dense unified --threads 1 --json $O/solo.json > $O/solo.md 2>&1
log pair
python -m sparsebp bench layer --n 500 2000 --batch 32 --k 10 --modes dense unified --threads 1 --json $O/pair-a.json > $O/pair-a.md 2>&1 &
python -m sparsebp bench layer --n 500 2000 --batch 32 --k 10 --modes dense unified --threads 1 --json $O/pair-b.json > $O/pair-b.md 2>&1
wait
log done

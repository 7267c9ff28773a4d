#!/usr/bin/env bash
# The cells the idle run of measure.sh left unjudged, measured again (about 5 minutes):
# unified against the reference at n = 4000, B = 32, k = 50 and n = 2000, B = 128, k = 50,
# and the n = 500 pair (solo, then two at once). Writes recheck-*.{md,json} here.
set -u
cd "$(dirname "$0")/../.."
O=benchmarks/issue15
unset OPENBLAS_NUM_THREADS NUMBA_NUM_THREADS OMP_NUM_THREADS MKL_NUM_THREADS
log() { echo "== $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg): $*"; }
log cells
python -m sparsebp bench layer --n 4000 --batch 32 --k 50 --reference --threads 1 --json $O/recheck-4000.json > $O/recheck-4000.md 2>&1
python -m sparsebp bench layer --n 2000 --batch 128 --k 50 --reference --threads 1 --json $O/recheck-2000.json > $O/recheck-2000.md 2>&1
log solo
python -m sparsebp bench layer --n 500 --batch 32 --k 10 --modes dense unified --threads 1 --json $O/recheck-solo.json > $O/recheck-solo.md 2>&1
log pair
python -m sparsebp bench layer --n 500 --batch 32 --k 10 --modes dense unified --threads 1 --json $O/recheck-pair-a.json > $O/recheck-pair-a.md 2>&1 &
python -m sparsebp bench layer --n 500 --batch 32 --k 10 --modes dense unified --threads 1 --json $O/recheck-pair-b.json > $O/recheck-pair-b.md 2>&1
wait
log done

#!/bin/sh
# One POS run on UD English EWT (XPOS), one thread, in the background of the caller:
#   sh results/pos/run.sh MODE K SEED [more flags]   -> results/pos/MODE-kK-seedS.{json,log}
# (POS_OUT=DIR: into DIR instead)
# Run from the repository root; the data directory is $SPARSEBP_DATA/ud-english-ewt
# or ../shared/data/ud-english-ewt.
set -e
mode=$1 k=$2 seed=$3; shift 3
export OPENBLAS_NUM_THREADS=1 NUMBA_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
data=${SPARSEBP_DATA:-../shared/data}/ud-english-ewt
name=${POS_OUT:-results/pos}/$mode-k$k-seed$seed
{ uptime; /usr/bin/time -f "cpu user %U s, system %S s, wall %e s" \
    python -m sparsebp train pos --data "$data" --mode "$mode" --k "$k" --seed "$seed" \
    --threads 1 --no-progress --out "$name.json" "$@"; uptime; } > "$name.log" 2>&1

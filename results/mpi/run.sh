#!/bin/sh
# Issue 16's converged comparison: the default MNIST configuration (top-k k = 20,
# Adam without bias correction, dropout 0.1, 20 epochs, seed 1) trained by two
# data-parallel ranks and by one process, the same code, one thread a process.
# Since each rank draws one process's dropout masks (sparsebp/distributed.py,
# "Randomness"), the two runs are one computation up to the order of float sums.
#   sh results/mpi/run.sh [more flags]
#     -> results/mpi/mnist-topk-k20-P2-seed1.{json,log}, then ...-P1-seed1.{json,log}
# (MPI_OUT=DIR: into DIR instead; more flags go to both runs, e.g. --epochs 1.)
# Run from the repository root, with the [mpi] extra installed; the P = 2 run
# takes both cores, so the two run one after the other.
set -e
export OPENBLAS_NUM_THREADS=1 NUMBA_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
out=${MPI_OUT:-results/mpi}
run() {   # run NAME COMMAND...: the command's output and times into $out/NAME.log
    name=$out/$1; shift
    { uptime; /usr/bin/time -f "cpu user %U s, system %S s, wall %e s" "$@" --out "$name.json"; uptime; } \
        > "$name.log" 2>&1
}
common="--mode topk --k 20 --seed 1 --threads 1 --no-progress"
run mnist-topk-k20-P2-seed1 mpiexec -n 2 python -m sparsebp train mnist --distributed $common "$@"
run mnist-topk-k20-P1-seed1 python -m sparsebp train mnist $common "$@"

#!/usr/bin/env bash
# The same layer grid, MNIST cell and MLP step timed in this thread's CPU time
# (--clock cpu, one thread), for a loaded machine. Writes benchmarks/issue15/cpu-*.
set -u
cd "$(dirname "$0")/../.."
O=benchmarks/issue15
log() { echo "== $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg): $*"; }
log grid;  python -m sparsebp bench layer --n 500 2000 4000 --batch 1 32 128 --k 10 50 --reference --threads 1 --clock cpu --budget 0.15 --json $O/cpu-grid.json > $O/cpu-grid.md 2>&1
log mnist; python -m sparsebp bench layer --n 500 --batch 50 --k 20 --reference --threads 1 --clock cpu --json $O/cpu-mnist-layer.json > $O/cpu-mnist-layer.md 2>&1
log mlp;   python -m benchmarks.run --only breakdown mlp --no-compile --threads 1 --clock cpu --out $O/cpu-mlp.json > $O/cpu-mlp.md 2>&1
log done

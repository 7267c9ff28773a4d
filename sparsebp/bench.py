"""Speed experiments: time one layer per call, and a grid of layers side by side.

    from sparsebp import bench
    t = bench.time_layer(layer, x, dy, reps=50)   # per-call times, µs: t["backward_us"] (50,)
    layer = sb.Linear.from_weights(W, b, k=20, mode="unified")   # layers sharing W

    sparsebp bench layer --n 500 2000 --batch 1 32 --k 10 50 --modes dense topk unified \\
        --threads 1 --json out.json

The grid (`layer_grid`) is the benchmark lab's method: every mode of a cell is
first checked against kernels/reference.py on the inputs it is then timed on;
then the modes are timed side by side in one process, in interleaved rounds
(`Timer`), cycling through 8 inputs. Honest baselines (`native_blas`): this
process runs without OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE (it re-executes itself
once without them, so NumPy's OpenBLAS picks its native kernels), prints the BLAS
kernel, the thread counts and the load, and marks a cell "not judged" when the
load exceeded the cores or its rounds' spread exceeded 20%.
"""
import json
import os
import platform
import sys
import time

import numpy as np

from .threads import set_threads, threads

BLAS_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
INPUTS = 8          # timed calls cycle through 8 inputs (one repeated input flatters
                    # a selection: the branch predictor learns it)
SPREAD_LIMIT = 0.20


# ---------------------------------------------------------------- the process
def native_blas():
    """Re-execute this process without BLAS_OVERRIDES, once, if any is set: OpenBLAS
    reads them when NumPy loads it, so they cannot be undone later. Tests and
    training leave them alone; only benchmarks call this. The removed values are
    kept in SPARSEBP_BLAS_UNSET (reported by `machine`)."""
    found = {v: os.environ[v] for v in BLAS_OVERRIDES if v in os.environ}
    if not found or os.environ.get("SPARSEBP_BLAS_UNSET"):
        return
    env = {k: v for k, v in os.environ.items() if k not in found}
    env["SPARSEBP_BLAS_UNSET"] = ",".join(f"{k}={v}" for k, v in found.items())
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable] + sys.orig_argv[1:], env)


def machine():
    """What a result depends on: versions, CPU, BLAS kernel, threads, load."""
    import numba
    info = {"python": platform.python_version(), "numpy": np.__version__, "numba_version": numba.__version__,
            "cpu": platform.processor() or platform.machine(), **threads(),
            "blas_env_unset": os.environ.get("SPARSEBP_BLAS_UNSET", ""),
            "blas_env": {v: os.environ.get(v) for v in BLAS_OVERRIDES}, "load": os.getloadavg()[0]}
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return info


def describe(m):
    """One line for the top of every benchmark's output."""
    env = ", ".join(f"{k}={v}" for k, v in m["blas_env"].items() if v) or "none"
    unset = f" (unset here: {m['blas_env_unset']})" if m["blas_env_unset"] else ""
    return (f"machine: {m['cpu']}, {m['cores']} cores; Python {m['python']}, NumPy {m['numpy']}, "
            f"Numba {m['numba_version']}; BLAS {m['blas_name']} {m['blas_version']} kernel {m['blas_kernel']}, "
            f"{m['blas']} threads; Numba {m['numba']} threads ({m['numba_layer'] or 'layer not started'}, "
            f"OMP_WAIT_POLICY={m['omp_wait_policy']}); BLAS overrides: {env}{unset}; "
            f"load average {m['load']:.2f}")


def load_check(load, cores=None):
    """A warning (str) when the load average exceeds the cores, else ''."""
    cores = cores or os.cpu_count()
    return f"load {load:.2f} > {cores} cores" if load > cores else ""


def start(n_threads=1):
    """What every benchmark does first: native BLAS (may re-execute the process), its
    threads (`set_threads`; 0 leaves the defaults), the machine line and a warning when
    the load already exceeds the cores. Returns `machine()`."""
    native_blas()
    if n_threads:
        set_threads(n_threads)
    m = machine()
    print(describe(m), flush=True)
    if load_check(m["load"]):
        print(f"WARNING: {load_check(m['load'])}: the timings below are not judged", flush=True)
    return m


# ---------------------------------------------------------------- timing
class Timer:
    """Times implementations side by side: rounds in which each runs a batch of calls
    in turn (a batch lasts about `batch_s`), after warm-up. Returns per implementation
    the median over the rounds of its mean time per call, in µs; `spread` (after a
    call) is, per implementation, (max - min) / median of the medians of three
    consecutive thirds of the rounds: how much the repeated rounds disagree.
    Interleaving spreads any drift of the machine over all implementations alike.

    clock: "wall" (time.perf_counter) or "cpu" (time.thread_time: this thread's CPU
    time, which other processes' load hardly inflates; meaningful only when the timed
    code runs on this thread alone, i.e. one BLAS and one Numba thread)."""

    CLOCKS = {"wall": time.perf_counter, "cpu": time.thread_time}

    def __init__(self, budget_s=0.25, batch_s=0.002, min_rounds=7, max_rounds=300, clock="wall"):
        self.budget_s, self.batch_s = budget_s, batch_s
        self.min_rounds, self.max_rounds = min_rounds, max_rounds
        self.clock, self.now = clock, self.CLOCKS[clock]
        self.spread = {}

    def __call__(self, fns):
        """fns: {name: fn} -> {name: median microseconds per call}."""
        inner, total = {}, 0.0
        for name, fn in fns.items():
            for _ in range(3):
                fn()
            t0 = time.perf_counter()
            fn()
            once = max(time.perf_counter() - t0, 1e-7)
            inner[name] = max(1, int(self.batch_s / once))
            total += inner[name] * once
        rounds = int(min(max(self.budget_s * len(fns) / total, self.min_rounds), self.max_rounds))
        ts = {name: np.empty(rounds) for name in fns}
        now = self.now
        for r in range(rounds):
            for name, fn in fns.items():
                t0 = now()
                for _ in range(inner[name]):
                    fn()
                ts[name][r] = (now() - t0) / inner[name]
        self.spread = {}
        for name, t in ts.items():
            thirds = [np.median(p) for p in np.array_split(t, 3) if len(p)]
            self.spread[name] = float((max(thirds) - min(thirds)) / np.median(t))
        return {name: float(np.median(t) * 1e6) for name, t in ts.items()}


def time_layer(layer, x, dy, reps=100, warmup=3):
    """Times layer.forward(x) and layer.backward(dy), each call on its own.

    x: (B, n_in), dy: (B, n_out). Returns {"forward_us": (reps,), "backward_us": (reps,)}
    float64 arrays of µs per call (not cumulative, warm-up excluded); GPU work is
    waited for inside each timing. Take the median for a summary."""
    from .backend import synchronize
    out = {"forward_us": np.empty(reps), "backward_us": np.empty(reps)}
    for i in range(warmup + reps):
        synchronize()
        t0 = time.perf_counter()
        layer.forward(x)
        synchronize()
        t1 = time.perf_counter()
        layer.backward(dy)
        synchronize()
        t2 = time.perf_counter()
        if i >= warmup:
            out["forward_us"][i - warmup] = (t1 - t0) * 1e6
            out["backward_us"][i - warmup] = (t2 - t1) * 1e6
    return out

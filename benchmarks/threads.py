"""Does a threaded kernel slow the BLAS call after it? Dense alone vs dense after it.

    python -m benchmarks.threads [--quick]

The kernel: the per-example meProp backward (hand loops, split across Numba's
threads: 2 B k n = 25.6 M multiply-adds at B = 128, n = 2000, k = 50, above
`kernels.cpu.PARALLEL_MIN_WORK`). The BLAS call: the dense backward of the same
layer, with BLAS's default threads. Each round times the dense backward alone,
then the kernel, then the dense backward right after it; the slow-down is the
median of the second over the first. Each column runs in a fresh interpreter,
because GNU OpenMP reads its wait policy once: PASSIVE (sparsebp's default, set by
`sparsebp.threads` unless the environment sets it), ACTIVE (spin), and GNU's
default (spin a while, then sleep). The issue's bound: at most 10% slower.
"""
import json
import os
import subprocess
import sys
import time

COLUMNS = [("passive (sparsebp's default)", "PASSIVE"), ("GNU default", ""), ("active (spin)", "ACTIVE")]


def measure(rounds, B=128, n=2000, k=50):
    """{row: µs} in this process (default threads for BLAS and Numba)."""
    import numpy as np

    import sparsebp as sb
    from sparsebp.kernels import cpu as C
    from sparsebp import bench
    C.BLAS_MIN_BATCH = 10**9                  # the hand loops, threaded: the case in question
    rng = np.random.default_rng(0)
    dy, x, W = (rng.standard_normal(s).astype(np.float32) for s in [(B, n), (B, n), (n, n)])
    dx, dW, idx = np.empty_like(x), np.empty_like(W), np.empty((B, k), np.int32)
    C.topk_rows(idx, dy, k)
    dense = lambda: C.dense_backward(dx, dW, dy, x, W)            # noqa: E731
    kernel = lambda: C.topk_backward(dx, dW, dy, x, W, idx)       # noqa: E731
    for _ in range(3):
        dense(), kernel()
    t = {"dense alone": [], "threaded kernel": [], "dense after the kernel": []}
    for _ in range(rounds):
        for name, fn in (("dense alone", dense), ("threaded kernel", kernel), ("dense after the kernel", dense)):
            t0 = time.perf_counter()
            fn()
            t[name].append(time.perf_counter() - t0)
    out = {name: float(np.median(v) * 1e6) for name, v in t.items()}
    out["slow-down of the dense call"] = out["dense after the kernel"] / out["dense alone"] - 1
    saved = C.PARALLEL_MIN_WORK
    C.PARALLEL_MIN_WORK = 10**12
    out["the kernel on one thread"] = bench.Timer(budget_s=0.1)({"k": kernel})["k"]
    C.PARALLEL_MIN_WORK = saved
    out["threads"] = sb.threads()
    return out


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(measure(int(sys.argv[2]))))
        return
    from sparsebp import bench
    bench.native_blas()
    rounds = 30 if "--quick" in sys.argv else 200
    print(bench.describe(bench.machine()))
    cols = []
    for name, policy in COLUMNS:
        env = {**os.environ, "OMP_WAIT_POLICY": policy}
        res = subprocess.run([sys.executable, "-m", "benchmarks.threads", "--child", str(rounds)], env=env,
                             capture_output=True, text=True, check=True)
        cols.append(json.loads(res.stdout.strip().splitlines()[-1]))
    th = cols[0]["threads"]
    print(f"\nB = 128, n = 2000, k = 50; BLAS {th['blas']} threads, Numba {th['numba']} ({th['numba_layer']}); "
          f"load average now {os.getloadavg()[0]:.2f}\n")
    print("| µs, median | " + " | ".join(c[0] for c in COLUMNS) + " |\n|" + " --- |" + " ---: |" * len(COLUMNS))
    for row in cols[0]:
        if row == "threads":
            continue
        fmt = "{:+.0%}" if row.startswith("slow-down") else "{:,.0f}"
        print(f"| {row} | " + " | ".join(fmt.format(c[row]) for c in cols) + " |")
    if bench.load_check(os.getloadavg()[0]):
        print(f"\nWARNING: {bench.load_check(os.getloadavg()[0])}: not judged")


if __name__ == "__main__":
    main()

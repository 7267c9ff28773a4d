"""Why MNIST-sized kernels run on one thread: the MLP step with Numba's threads on and off.

    python -m benchmarks.threads

Each column runs in a fresh interpreter (GNU OpenMP reads its environment once):
one thread (the default, `kernels.cpu.PARALLEL_MIN_WORK`), every kernel threaded
(`PARALLEL_MIN_WORK = 0`) with OpenMP's default spinning wait, with a short spin
(`GOMP_SPINCOUNT=10000`) and with a passive wait (`OMP_WAIT_POLICY=passive`).
Rows: the MNIST MLP step at B = 50 (Adam, k = 20) per mode, and the unified
50×500 layer backward alone; medians in µs (run.Timer, one mode at a time).
"""
import json
import os
import subprocess
import sys

COLUMNS = [("one thread", {}, False), ("threaded", {}, True),
           ("threaded, GOMP_SPINCOUNT=10000", {"GOMP_SPINCOUNT": "10000"}, True),
           ("threaded, OMP_WAIT_POLICY=passive", {"OMP_WAIT_POLICY": "passive"}, True)]


def measure(threaded):
    """{row: µs} in this process."""
    import numpy as np

    from sparsebp.kernels import cpu as C
    import sparsebp as sb
    from benchmarks import sections as S
    from benchmarks.run import Timer
    if threaded:
        C.PARALLEL_MIN_WORK = 0
    sb.set_backend("cpu")
    timer, out = Timer(), {}
    batches = [S.mnist_batch(50, i)[:2] for i in range(S.INPUTS)]
    for mode in ("unified", "topk", "dense"):
        step = S.train_step(*S.build(mode))
        out[f"MLP step, B = 50, {mode}"] = timer({mode: S.cycling(step, batches)})[mode]
    rng = np.random.default_rng(6)
    dy, x, W = S.layer_case(rng, 50, 500)
    dx, dW, u = np.empty_like(x), np.empty_like(W), np.empty(20, np.int32)

    def unified():
        C.topk_unified(u, dy, 20)
        C.unified_backward(dx, dW, dy, x, W, u)
    out["unified layer backward, 50×500, k = 20"] = timer({"u": unified})["u"]
    return out


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(measure(sys.argv[2] == "1")))
        return
    cols = []
    for name, env, threaded in COLUMNS:
        res = subprocess.run([sys.executable, "-m", "benchmarks.threads", "--child", "1" if threaded else "0"],
                             env={**os.environ, **env}, capture_output=True, text=True, check=True)
        cols.append(json.loads(res.stdout.strip().splitlines()[-1]))
    print("| µs, median | " + " | ".join(c[0] for c in COLUMNS) + " |\n|" + " --- |" + " ---: |" * len(COLUMNS))
    for row in cols[0]:
        print(f"| {row} | " + " | ".join(f"{c[row]:,.0f}" for c in cols) + " |")


if __name__ == "__main__":
    main()

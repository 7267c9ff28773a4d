"""The CPU kernels of an earlier revision against today's, side by side in one process.

    python -m benchmarks.before_after [REV]     # REV: a git revision, default 2fc5aef

`benchmarks/README.md`'s "What was changed for speed" table is this script's output
(REV 2fc5aef: the first, straightforward Numba kernels). The old `kernels/cpu.py` and
`kernels/reference.py` are read with `git show` into a temporary package, so both
versions' kernels run on the same inputs, interleaved by run.Timer (medians); the MLP
rows run today's engine on each version's kernels. Needs git and the repository.
"""
import importlib
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from sparsebp import kernels
import sparsebp as sb
from benchmarks import sections as S
from benchmarks.run import Timer
from sparsebp import backend

ROOT = Path(__file__).resolve().parent.parent


def load_kernels(rev):
    """kernels/cpu.py (with the reference it imports) of git revision rev, as a module."""
    pkg = Path(tempfile.mkdtemp()) / "kernels_before"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    for name in ("cpu.py", "reference.py"):
        src = subprocess.run(["git", "show", f"{rev}:kernels/{name}"], cwd=ROOT, check=True,
                             capture_output=True, text=True).stdout
        (pkg / name).write_text(src)
    sys.path.insert(0, str(pkg.parent))
    return importlib.import_module("kernels_before.cpu")


def kernel_rows(old, new, timer):
    rng = np.random.default_rng(5)
    B, n, k = 50, 500, 20
    dys = [(rng.standard_normal((B, n)).astype(np.float32),) for _ in range(S.INPUTS)]
    x, W = rng.standard_normal((B, n)).astype(np.float32), rng.standard_normal((n, n)).astype(np.float32)
    dx, dW = np.empty_like(x), np.empty_like(W)
    idx, u = np.empty((B, k), np.int32), np.empty(k, np.int32)
    x1, dy1, db = x[:1].copy(), dys[0][0][:1].copy(), np.empty(n, np.float32)
    Wa = rng.standard_normal((500, 784)).astype(np.float32)
    Ga, state = rng.standard_normal(Wa.shape).astype(np.float32), {}
    all_rows, few_rows = np.arange(500, dtype=np.int32), np.arange(0, 500, 25, dtype=np.int32)

    def per_example(K):
        return S.cycling(lambda dy: (K.topk_rows(idx, dy, k), K.topk_backward(dx, dW, dy, x, W, idx),
                                     K.union_rows(idx, n)), dys)

    def unified(K):
        return S.cycling(lambda dy: (K.topk_unified(u, dy, k), K.unified_backward(dx, dW, dy, x, W, u)), dys)

    def adam(K, rows):
        st = state.setdefault((K, len(rows)), [Wa.copy(), np.zeros_like(Wa), np.zeros_like(Wa),
                                                np.zeros(500, np.int64)])
        return lambda: K.adam_rows(*st[:4], Ga, rows, 1e-3, 0.9, 0.999, 1e-8, 5.0)

    cases = [("per-example top-k, 50×500, k = 20", lambda K: S.cycling(lambda dy: K.topk_rows(idx, dy, k), dys)),
             ("layer backward 50×500, k = 20, per-example (select, dx, dW, union)", per_example),
             ("layer backward 50×500, k = 20, unified (select, dx, dW)", unified),
             ("dense layer backward at B = 1, n = 500", lambda K: lambda: K.dense_backward(dx[:1], dW, dy1, x1, W)),
             ("ReLU backward, 50×500", lambda K: lambda: K.relu_backward(dx, dys[1][0], x)),
             ("bias gradient, 1×500", lambda K: lambda: K.bias_grad(db, dy1)),
             ("Adam, 500×784, all rows", lambda K: adam(K, all_rows)),
             ("Adam, 500×784, 20 rows", lambda K: adam(K, few_rows))]
    rows = []
    for name, make in cases:
        t = timer({"before": make(old), "after": make(new)})
        rows.append((name, t["before"], t["after"]))
    return rows


def mlp_rows(old, new, timer):
    """Today's engine on each version's kernels: whole steps, and the dense Adam update."""
    rows = []
    for B, mode in [(50, "unified"), (50, "topk"), (1, "unified"), (50, "dense")]:
        batches = [S.mnist_batch(B, i)[:2] for i in range(S.INPUTS)]
        fns = {}
        for label, K in (("before", old), ("after", new)):
            backend._state["K"] = K
            model, opt, lf = S.build(mode)
            one = S.train_step(model, opt, lf)

            def step(x, y, one=one, K=K):
                backend._state["K"] = K
                one(x, y)
            step(*batches[0])
            if mode == "dense":                        # the update alone, all 648,010 weights
                def update(opt=opt, K=K):
                    backend._state["K"] = K
                    opt.step()
                fns[label] = update
            else:
                fns[label] = S.cycling(step, batches)
        t = timer(fns)
        what = ("MLP update, dense Adam on all 648,010 weights, B = 50" if mode == "dense"
                else f"MLP step, B = {B}, {'per-example' if mode == 'topk' else mode}")
        rows.append((what, t["before"], t["after"]))
    backend._state["K"] = kernels.get("cpu")
    return rows


def main(argv=None):
    rev = (argv or sys.argv[1:] or ["2fc5aef"])[0]
    from sparsebp import bench
    bench.start(1)                                     # native BLAS, one thread, machine line
    old, new = load_kernels(rev), kernels.get("cpu")
    sb.set_backend("cpu")
    timer = Timer()
    for K in (old, new):                               # compile both before timing
        kernel_rows(K, K, Timer(budget_s=0.01, min_rounds=1))
    rows = kernel_rows(old, new, timer) + mlp_rows(old, new, timer)
    print(f"| µs, median | before ({rev}) | after | speed-up |\n| --- | ---: | ---: | ---: |")
    for name, b, a in rows:
        print(f"| {name} | {b:,.1f} | {a:,.1f} | {b / a:.1f}x |")


if __name__ == "__main__":
    main()

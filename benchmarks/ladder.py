"""Section (e) of `python -m benchmarks.run`: the kernel ladder, simple rung beside tuned.

kernels/cpu_simple.py holds the plain first version of the meProp kernels (a heap
top-k, row loops for the products); kernels/cpu.py the tuned one. Both are
validated against kernels/reference.py on the inputs they are then timed on, and
timed side by side (one thread), so a learner sees what each idea of cpu.py buys.
"""
import numpy as np

from benchmarks.sections import INPUTS, R, C, close, cycling, layer_case
from sparsebp.kernels import cpu_simple as S

FULL = dict(Bs=(1, 50), ns=(500, 2000), ks=(20,))
QUICK = dict(Bs=(50,), ns=(500,), ks=(20,))
RUNGS = {"simple": S, "tuned": C}


def validate_ladder(dy, x, W, k):
    """Every rung's selections equal the reference's; its products match it (float32)."""
    B, n_out = dy.shape
    for name, impl in RUNGS.items():
        for sel_fn, back_fn, shape in [("topk_rows", "topk_backward", (B, k)),
                                       ("topk_unified", "unified_backward", (k,))]:
            idx, ridx = np.empty(shape, np.int32), np.empty(shape, np.int32)
            getattr(impl, sel_fn)(idx, dy, k)
            getattr(R, sel_fn)(ridx, dy, k)
            assert np.array_equal(idx, ridx), f"{name} {sel_fn} differs from the reference"
            rows = np.unique(idx)
            rdx, rdW = np.empty_like(x), np.zeros_like(W)
            getattr(R, back_fn)(rdx, rdW, dy, x, W, ridx)
            dx, dW = np.full_like(x, np.nan), np.full_like(W, np.nan)
            getattr(impl, back_fn)(dx, dW, dy, x, W, idx)
            close(f"{name} {back_fn} dx", dx, rdx)
            close(f"{name} {back_fn} dW", dW[rows], rdW[rows])
            assert np.isnan(np.delete(dW, rows, axis=0)).all(), f"{name} {back_fn} wrote other rows"


def bench_ladder(timer, Bs, ns, ks):
    """[{B, n, k, <kernel>_<rung>_us, <kernel>_speedup}] for the three meProp kernels."""
    rows, rng = [], np.random.default_rng(5)
    for B in Bs:
        for n in ns:
            _, x, W = layer_case(rng, B, n)
            dys = [(rng.standard_normal((B, n)).astype(np.float32),) for _ in range(INPUTS)]
            dx, dW = np.empty_like(x), np.empty_like(W)
            for k in ks:
                for (dy,) in dys[:2]:
                    validate_ladder(dy, x, W, k)
                idx, u = np.empty((B, k), np.int32), np.empty(k, np.int32)
                R.topk_rows(idx, dys[0][0], k)
                R.topk_unified(u, dys[0][0], k)
                fns = {}
                for rung, impl in RUNGS.items():
                    fns[f"topk_rows_{rung}_us"] = cycling(
                        lambda dy, impl=impl: impl.topk_rows(idx, dy, k), dys)
                    fns[f"topk_backward_{rung}_us"] = cycling(
                        lambda dy, impl=impl: impl.topk_backward(dx, dW, dy, x, W, idx), dys)
                    fns[f"unified_backward_{rung}_us"] = cycling(
                        lambda dy, impl=impl: impl.unified_backward(dx, dW, dy, x, W, u), dys)
                r = dict(B=B, n=n, k=k, **timer(fns))
                for kern in ("topk_rows", "topk_backward", "unified_backward"):
                    r[f"{kern}_speedup"] = r[f"{kern}_simple_us"] / r[f"{kern}_tuned_us"]
                rows.append(r)
    return rows


US, X = "{:.1f}", "{:.1f}x"
TABLE = ("(e) the kernel ladder: kernels/cpu_simple.py (heap top-k, row loops) beside "
         "kernels/cpu.py, one thread, microseconds", [
             ("B", "B", "{}"), ("n", "n_in = n_out", "{}"), ("k", "k", "{}"),
             ("topk_rows_simple_us", "top-k: heap", US), ("topk_rows_tuned_us", "top-k: tuned", US),
             ("topk_rows_speedup", "speed-up", X),
             ("topk_backward_simple_us", "top-k products: row loop", US),
             ("topk_backward_tuned_us", "tuned", US), ("topk_backward_speedup", "speed-up", X),
             ("unified_backward_simple_us", "unified products: row loop", US),
             ("unified_backward_tuned_us", "tuned", US), ("unified_backward_speedup", "speed-up", X)])

"""Numba CPU optimizer kernels (re-exported by `kernels.cpu`); see reference.py.

W, G and every state array are 2-D (n_rows, n_cols); `rows` lists the rows to
update and every other row of W and of the state stays bit-identical.

What makes them fast:
- The update runs in the weights' dtype (float32: 8 lanes per AVX2 instruction),
  as the reference's NumPy does: a Python scalar does not promote a float32 array.
  M and V (Adam), H (AdaGrad) and W (SGD, AdaGrad) are the reference's float32
  operations in the same order, so they match it bit for bit.
- `error_model="numpy"`: Numba's default Python error model checks every division
  for zero, which stops LLVM from vectorizing it; IEEE division gives the same values.
- Adam's bias corrections are computed once per distinct step count (in float64,
  as the reference), not once per row: all rows of a dense layer share one.
- `sgd_step`, `adagrad_step`, `adam_step` update every parameter of a model in
  one call (tuples with one array per parameter): a call from Python costs a few
  microseconds whatever it does, and a meProp step at batch 1 updates so few rows
  that those costs, once per parameter, were most of the update. The per-row
  formulas are written once, in the per-parameter kernels the step kernels loop over.
  Numba compiles a step kernel once per number of parameters (a tuple's length is
  part of its type) and caches each in `__pycache__`.
"""
import numpy as np
from numba import njit, prange

# parallel=True would also turn NumPy calls (np.arange, astype, np.zeros...) into
# parallel loops that start the thread pool even when a kernel runs on one thread,
# and its spinning workers then slow the next BLAS call (benchmarks/README.md,
# "Threads"). Only explicit prange loops are parallel; kernels/cpu.py uses it too.
PRANGE_ONLY = dict(prange=True, comprehension=False, reduction=False, inplace_binop=False,
                   setitem=False, numpy=False, stencil=False, fusion=False)


@njit(cache=True)
def _as_dtype(W, *values):
    """The Python floats as W's dtype (an array, to unpack)."""
    out = np.empty(len(values), W.dtype)
    for i, v in enumerate(values):
        out[i] = v
    return out


@njit(cache=True)
def _clip_bounds(W, clip):
    """(-clip, clip) in W's dtype, or (-inf, inf) when clip = 0 (no clipping)."""
    c = clip if clip > 0 else np.inf
    return _as_dtype(W, -c, c)


@njit(cache=True)
def sgd_rows(W, G, rows, lr, clip):
    """W[r] -= lr * g[r].  W, G: (n_rows, n_cols); rows: (r,) int."""
    lo, hi = _clip_bounds(W, clip)
    lr_ = _as_dtype(W, lr)[0]
    for r in rows:
        for i in range(W.shape[1]):
            W[r, i] -= lr_ * min(max(G[r, i], lo), hi)


@njit(cache=True, error_model="numpy")
def adagrad_rows(W, H, G, rows, lr, eps, clip):
    """H[r] += g^2; W[r] -= lr g / (sqrt(H[r]) + eps).  W, H, G: (n_rows, n_cols); rows: (r,)."""
    lo, hi = _clip_bounds(W, clip)
    lr_, eps_ = _as_dtype(W, lr, eps)
    for r in rows:
        for i in range(W.shape[1]):
            g = min(max(G[r, i], lo), hi)
            h = H[r, i] + g * g
            H[r, i] = h
            W[r, i] -= lr_ * g / (np.sqrt(h) + eps_)


@njit(cache=True)
def sgd_step(Ws, Gs, rows, lr, clip):
    """sgd_rows on every parameter: Ws, Gs, rows: tuples, one entry per parameter."""
    for p in range(len(Ws)):
        sgd_rows(Ws[p], Gs[p], rows[p], lr, clip)


@njit(cache=True)
def adagrad_step(Ws, Hs, Gs, rows, lr, eps, clip):
    """adagrad_rows on every parameter: tuples, one entry per parameter."""
    for p in range(len(Ws)):
        adagrad_rows(Ws[p], Hs[p], Gs[p], rows[p], lr, eps, clip)


@njit(cache=True, error_model="numpy")
def _adam_range(W, M, V, T, G, rows, lr, beta1, beta2, eps, clip, global_t, q_lo, q_hi):
    """Adam on rows[q_lo:q_hi]: one fused pass per row over M, V and W.
    global_t = 0: the row's own count T[r] + 1; > 0: global_t (see reference.adam_step)."""
    lo, hi = _clip_bounds(W, clip)
    b1, c1m, b2, c2m, eps_ = _as_dtype(W, beta1, 1 - beta1, beta2, 1 - beta2, eps)
    t_prev = np.int64(-1)
    step, vscale = _as_dtype(W, 0.0, 0.0)
    n_cols = W.shape[1]
    for q in range(q_lo, q_hi):
        r = rows[q]
        T[r] = global_t if global_t > 0 else T[r] + 1
        if T[r] != t_prev:             # lr / (1 - beta1^t) and 1 / (1 - beta2^t)
            t_prev = T[r]
            step, vscale = _as_dtype(W, lr / (1.0 - beta1 ** np.float64(t_prev)),
                                     1.0 / (1.0 - beta2 ** np.float64(t_prev)))
        if n_cols == 1:                # a bias: no inner loop to set up per entry
            g = min(max(G[r, 0], lo), hi)
            m = b1 * M[r, 0] + c1m * g
            v = b2 * V[r, 0] + c2m * g * g
            M[r, 0] = m
            V[r, 0] = v
            W[r, 0] -= step * m / (np.sqrt(v * vscale) + eps_)
            continue
        for i in range(n_cols):
            g = min(max(G[r, i], lo), hi)
            m = b1 * M[r, i] + c1m * g
            v = b2 * V[r, i] + c2m * g * g
            M[r, i] = m
            V[r, i] = v
            W[r, i] -= step * m / (np.sqrt(v * vscale) + eps_)


@njit(cache=True, parallel=PRANGE_ONLY)
def adam_rows_split(W, M, V, T, G, rows, lr, beta1, beta2, eps, clip, global_t, nt):
    """Adam on one parameter's rows, cut into nt parts, one per thread (nt = 1: no threads)."""
    n = rows.shape[0]
    if nt == 1:
        _adam_range(W, M, V, T, G, rows, lr, beta1, beta2, eps, clip, global_t, 0, n)
    else:
        for t in prange(nt):
            _adam_range(W, M, V, T, G, rows, lr, beta1, beta2, eps, clip, global_t,
                        t * n // nt, (t + 1) * n // nt)


@njit(cache=True)
def threads_for(work, parts, min_work, most):
    """kernels.cpu's thread rule (`_threads`), for a kernel that decides per
    parameter inside the JIT: 1 below min_work, else `most`, at most `parts`."""
    return 1 if work < min_work else max(1, min(most, parts))


@njit(cache=True)
def adam_step_split(Ws, Ms, Vs, Ts, Gs, rows, lr, beta1, beta2, eps, clip, global_t,
                    min_work, most):
    """adam_rows_split on every parameter (tuples, one entry per parameter), each
    with the threads its own size earns (threads_for: min_work, at most `most`)."""
    for p in range(len(Ws)):
        W, sel = Ws[p], rows[p]
        adam_rows_split(W, Ms[p], Vs[p], Ts[p], Gs[p], sel, lr, beta1, beta2, eps, clip, global_t,
                        threads_for(4 * sel.shape[0] * W.shape[1], sel.shape[0], min_work, most))

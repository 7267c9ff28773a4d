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
- Consecutive selected rows are one flat run of elements (`_run_end`): a bias
  (n, 1) with all rows selected is one loop over n numbers, which vectorizes,
  instead of n loops of one (Adam on 500 bias rows: 3.0 -> 2.5 us, hot).
- Adam's bias corrections are computed once per distinct step count (in float64,
  as the reference), not once per row: all rows of a dense layer share one.
- `sgd_step`, `adagrad_step`, `adam_step` update every parameter of a model in
  one call (tuples with one array per parameter), as the CUDA backend does in one
  launch. Here that saves little (a call from Python costs under a microsecond;
  the MNIST update at batch 1 is 21-23 us of arithmetic either way). The element
  formulas are written once (`_sgd_flat`, `_adagrad_flat`, `_adam_flat`), used by
  the per-parameter kernels the step kernels loop over. Numba compiles a step
  kernel once per tuple length (optim.py pads to 8) and caches it in `__pycache__`.
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
def _run_end(rows, q, q_hi):
    """The end of the run of consecutive rows from rows[q] (rows[q], rows[q] + 1, ...)
    within rows[q:q_hi]. A run's rows lie back to back in memory, so the update
    loops once over their elements: a loop that vectorizes however narrow a row
    is (a bias: n rows of one number)."""
    r0, end = rows[q], q + 1
    while end < q_hi and rows[end] == r0 + (end - q):
        end += 1
    return end


@njit(cache=True)
def _sgd_flat(W, G, e_lo, e_hi, lr, lo, hi):
    """The SGD update of flat elements [e_lo, e_hi) of W (1-D views)."""
    W, G = W[e_lo:e_hi], G[e_lo:e_hi]
    for e in range(W.shape[0]):
        W[e] -= lr * min(max(G[e], lo), hi)


@njit(cache=True)
def sgd_rows(W, G, rows, lr, clip):
    """W[r] -= lr * g[r].  W, G: (n_rows, n_cols) C-contiguous; rows: (r,) int."""
    lo, hi = _clip_bounds(W, clip)
    lr_ = _as_dtype(W, lr)[0]
    Wf, Gf, n_cols = W.reshape(W.size), G.reshape(G.size), W.shape[1]
    q = 0
    while q < rows.shape[0]:
        end = _run_end(rows, q, rows.shape[0])
        _sgd_flat(Wf, Gf, rows[q] * n_cols, (rows[q] + end - q) * n_cols, lr_, lo, hi)
        q = end


@njit(cache=True, error_model="numpy")
def _adagrad_flat(W, H, G, e_lo, e_hi, lr, eps, lo, hi):
    """The AdaGrad update of flat elements [e_lo, e_hi) of W and H (1-D views)."""
    W, H, G = W[e_lo:e_hi], H[e_lo:e_hi], G[e_lo:e_hi]
    for e in range(W.shape[0]):
        g = min(max(G[e], lo), hi)
        h = H[e] + g * g
        H[e] = h
        W[e] -= lr * g / (np.sqrt(h) + eps)


@njit(cache=True, error_model="numpy")
def adagrad_rows(W, H, G, rows, lr, eps, clip):
    """H[r] += g^2; W[r] -= lr g / (sqrt(H[r]) + eps).  W, H, G: (n_rows, n_cols) C-contiguous; rows: (r,)."""
    lo, hi = _clip_bounds(W, clip)
    lr_, eps_ = _as_dtype(W, lr, eps)
    Wf, Hf, Gf, n_cols = W.reshape(W.size), H.reshape(H.size), G.reshape(G.size), W.shape[1]
    q = 0
    while q < rows.shape[0]:
        end = _run_end(rows, q, rows.shape[0])
        _adagrad_flat(Wf, Hf, Gf, rows[q] * n_cols, (rows[q] + end - q) * n_cols, lr_, eps_, lo, hi)
        q = end


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
def _adam_flat(W, M, V, G, e_lo, e_hi, step, vscale, b1, c1m, b2, c2m, eps, lo, hi):
    """The Adam update of flat elements [e_lo, e_hi) of W, M and V (1-D views), all
    of one step count: step = lr / (1 - beta1^t), vscale = 1 / (1 - beta2^t).
    Sliced first: a loop from 0 over the slices vectorizes, one from e_lo does not
    (LLVM cannot rule out a negative index there; 2.5x slower)."""
    W, M, V, G = W[e_lo:e_hi], M[e_lo:e_hi], V[e_lo:e_hi], G[e_lo:e_hi]
    for e in range(W.shape[0]):
        g = min(max(G[e], lo), hi)
        m = b1 * M[e] + c1m * g
        v = b2 * V[e] + c2m * g * g
        M[e] = m
        V[e] = v
        W[e] -= step * m / (np.sqrt(v * vscale) + eps)


@njit(cache=True, error_model="numpy")
def _adam_range(W, M, V, T, G, rows, lr, beta1, beta2, eps, clip, global_t, q_lo, q_hi):
    """Adam on rows[q_lo:q_hi] (W, M, V, G C-contiguous): the rows' step counts
    first (global_t = 0: T[r] + 1; > 0: global_t, see reference.adam_step), then
    one pass over the elements of each run of consecutive rows with one count."""
    lo, hi = _clip_bounds(W, clip)
    b1, c1m, b2, c2m, eps_ = _as_dtype(W, beta1, 1 - beta1, beta2, 1 - beta2, eps)
    for q in range(q_lo, q_hi):
        T[rows[q]] = global_t if global_t > 0 else T[rows[q]] + 1
    Wf, Mf, Vf, Gf = W.reshape(W.size), M.reshape(M.size), V.reshape(V.size), G.reshape(G.size)
    n_cols = W.shape[1]
    t_prev = np.int64(-1)
    step, vscale = _as_dtype(W, 0.0, 0.0)
    q = q_lo
    while q < q_hi:
        end = _run_end(rows, q, q_hi)
        while q < end:                 # the run's rows of one step count
            t, e = T[rows[q]], q + 1
            while e < end and T[rows[e]] == t:
                e += 1
            if t != t_prev:            # lr / (1 - beta1^t) and 1 / (1 - beta2^t), once per count
                t_prev = t
                step, vscale = _as_dtype(W, lr / (1.0 - beta1 ** np.float64(t)),
                                         1.0 / (1.0 - beta2 ** np.float64(t)))
            _adam_flat(Wf, Mf, Vf, Gf, rows[q] * n_cols, (rows[q] + e - q) * n_cols,
                       step, vscale, b1, c1m, b2, c2m, eps_, lo, hi)
            q = e


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
        nt = threads_for(4 * sel.shape[0] * W.shape[1], sel.shape[0], min_work, most)
        if nt == 1:        # directly: a call of the parallel function costs ~0.5 us even so
            _adam_range(W, Ms[p], Vs[p], Ts[p], Gs[p], sel, lr, beta1, beta2, eps, clip, global_t,
                        0, sel.shape[0])
        else:
            adam_rows_split(W, Ms[p], Vs[p], Ts[p], Gs[p], sel, lr, beta1, beta2, eps, clip,
                            global_t, nt)


# ---------------------------------------------------------------- weight averaging
@njit(cache=True, error_model="numpy")
def _moving_average_flat(S, W, a):
    """S, W: (n,) flat views of one parameter; a: S's dtype. The reference's
    float operations in its order, one pass instead of NumPy's three."""
    for i in range(S.shape[0]):
        S[i] += a * (W[i] - S[i])


def moving_average(S, W, a):
    """S += a (W - S) (see reference.moving_average); S, W contiguous, any shape."""
    _moving_average_flat(S.reshape(-1), W.reshape(-1), S.dtype.type(a))

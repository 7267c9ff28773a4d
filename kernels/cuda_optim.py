"""Row-sparse optimizer kernels of the CUDA backend (re-exported by `kernels.cuda`).

W, G and every state array are 2-D (n_rows, n_cols) device arrays (a bias comes
as (n, 1)); `rows` lists the rows to update, and every other row of W and of the
state stays bit-identical, as in `kernels/reference.py`.

| kernel | implements (reference.py) | the idea that makes it fast |
| --- | --- | --- |
| `sgd_rows` | `sgd_rows` | one block per selected row, threads along it: W[r] -= lr g[r], clipped |
| `adagrad_rows` | `adagrad_rows` | the same layout; H and W updated in one pass |
| `adam_rows` | `adam_rows` | the same layout; M, V, T and W in one pass, the bias corrections once per row |

What makes them fast:
- One block per selected row, threads along the row: only the selected rows of
  W, G and the state are read or written, every access coalesced, and each
  optimizer is one fused pass (one launch) over its arrays.
- The element work runs in the weights' dtype, as the reference's NumPy does
  (a Python scalar does not promote a float32 array): float32 arithmetic runs at
  full rate on every GPU, where float64 runs at 1/32 to 1/64 of it on consumer
  cards. The host casts the scalars once per call; Adam's bias corrections are
  computed once per row in float64 from the row's own step count, then cast.
- The formulas are those of `kernels/cpu_optim.py`, in the same order, so the
  two backends agree to float32 rounding.
"""
import math

import numpy as np
from numba import cuda

from .cuda_launch import gpu_kernel, to_device
from .cuda_select import THREADS


def row_threads(W):
    """Threads per row: whole warps, no more than the row needs, at most THREADS."""
    return min(THREADS, 32 * max(1, math.ceil(W.shape[1] / 32)))


def _clip_bounds(f, clip):
    """(-clip, clip) in type f, or (-inf, inf) for clip = 0 (no clipping)."""
    c = clip if clip > 0 else np.inf
    return f(-c), f(c)


def _make(f):
    """The three kernels for weights of float type f (np.float32 or np.float64)."""

    @gpu_kernel
    def sgd(W, G, rows, lr, lo, hi):
        r = rows[cuda.blockIdx.x]
        for i in range(cuda.threadIdx.x, W.shape[1], cuda.blockDim.x):
            W[r, i] -= lr * min(max(G[r, i], lo), hi)

    @gpu_kernel
    def adagrad(W, H, G, rows, lr, eps, lo, hi):
        r = rows[cuda.blockIdx.x]
        for i in range(cuda.threadIdx.x, W.shape[1], cuda.blockDim.x):
            g = min(max(G[r, i], lo), hi)
            h = H[r, i] + g * g
            H[r, i] = h
            W[r, i] -= lr * g / (math.sqrt(h) + eps)

    @gpu_kernel
    def adam(W, M, V, T, G, rows, lr, beta1, beta2, b1, c1m, b2, c2m, eps, lo, hi):
        """lr, beta1, beta2: float64; b1 = beta1, c1m = 1 - beta1 (and b2, c2m),
        eps, lo, hi: type f."""
        r = rows[cuda.blockIdx.x]
        t = T[r] + 1
        step = f(lr / (1.0 - beta1 ** t))         # lr / (1 - beta1^t), once per row
        vscale = f(1.0 / (1.0 - beta2 ** t))      # 1 / (1 - beta2^t)
        for i in range(cuda.threadIdx.x, W.shape[1], cuda.blockDim.x):
            g = min(max(G[r, i], lo), hi)
            m = b1 * M[r, i] + c1m * g
            v = b2 * V[r, i] + c2m * g * g
            M[r, i] = m
            V[r, i] = v
            W[r, i] -= step * m / (math.sqrt(v * vscale) + eps)
        cuda.syncthreads()                       # every thread has read T[r]
        if cuda.threadIdx.x == 0:
            T[r] = t

    return sgd, adagrad, adam


_kernels = {}


def _for(W):
    """(type f, its kernels) for W's dtype, compiled on first use."""
    f = np.dtype(W.dtype).type
    if f not in _kernels:
        _kernels[f] = _make(f)
    return f, _kernels[f]


def sgd_rows(W, G, rows, lr, clip):
    """W[r] -= lr * g[r].  W, G: (n_rows, n_cols); rows: (r,) int."""
    if len(rows):
        f, (sgd, _, _) = _for(W)
        sgd[len(rows), row_threads(W)](W, G, to_device(rows), f(lr), *_clip_bounds(f, clip))


def adagrad_rows(W, H, G, rows, lr, eps, clip):
    """H[r] += g^2;  W[r] -= lr * g / (sqrt(H[r]) + eps).  W, H, G: (n_rows, n_cols)."""
    if len(rows):
        f, (_, adagrad, _) = _for(W)
        adagrad[len(rows), row_threads(W)](W, H, G, to_device(rows), f(lr), f(eps),
                                            *_clip_bounds(f, clip))


def adam_rows(W, M, V, T, G, rows, lr, beta1, beta2, eps, clip):
    """Adam on the selected rows with per-row step counts T: (n_rows,) int64, as the
    reference. One fused pass updates M, V, W and the row's count."""
    if len(rows):
        f, (_, _, adam) = _for(W)
        adam[len(rows), row_threads(W)](
            W, M, V, T, G, to_device(rows), float(lr), float(beta1), float(beta2),
            f(beta1), f(1 - beta1), f(beta2), f(1 - beta2), f(eps), *_clip_bounds(f, clip))

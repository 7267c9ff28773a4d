"""Row-sparse optimizer kernels of the CUDA backend (re-exported by `kernels.cuda`).

W, G and every state array are 2-D (n_rows, n_cols) device arrays (a bias comes
as (n, 1)); `rows` lists the rows to update, and every other row of W and of the
state stays bit-identical, as in `kernels/reference.py`.

| kernel | implements (reference.py) | the idea that makes it fast |
| --- | --- | --- |
| `sgd_step` | `sgd_step` | one launch for every parameter: blocks dealt to the parameters' selected rows in turn; W[r] -= lr g[r], clipped |
| `adagrad_step` | `adagrad_step` | the same layout; H and W updated in one pass |
| `adam_step` | `adam_step` | the same layout; M, V, T and W in one pass, the bias corrections once per row |
| `sgd_rows`, `adagrad_rows`, `adam_rows` | the same | the step kernels on one parameter |

What makes them fast:
- One launch per optimizer step, whatever the number of parameters: the
  parameters' arrays come as tuples (Numba passes a tuple of arrays as its
  arrays' fields, one after the other), and each block finds its parameter by
  counting the blocks of those before it (`_slot`). A launch costs 10-25 us of
  host time (benchmarks/README.md), several times a small layer's update. Nothing
  is allocated on the device: the row lists are the backward's own arrays, and
  Adam's global step count is an argument, not an array written each step.
- A block takes one selected row, threads along it, or, for rows narrower than
  the block (a bias: one column), THREADS // n_cols rows at once: only the
  selected rows of W, G and the state are read or written, every access
  coalesced, each optimizer one fused pass over its arrays.
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


def _rows_per_block(n_cols, threads):
    """Selected rows of one parameter that a block updates: one row of n_cols >=
    threads, else threads // n_cols rows side by side (a bias: a block's worth)."""
    return max(1, threads // n_cols)


_rows_per_block_dev = cuda.jit(device=True)(_rows_per_block)


@cuda.jit(device=True)
def _slot(Ws, rows):
    """This thread's (parameter p, row r, first column i0, column stride).

    The grid's blocks are dealt to the parameters in order, ceil(r_p / R_p)
    blocks to parameter p (R_p: _rows_per_block); within a block, thread t works
    on row slot t // width and columns t % width, t % width + width, ...
    r = -1: no row for this thread (spare slots of a parameter's last block)."""
    b = cuda.blockIdx.x
    for p in range(len(Ws)):
        R = _rows_per_block_dev(Ws[p].shape[1], cuda.blockDim.x)
        sel = rows[p]
        n_blocks = (sel.shape[0] + R - 1) // R
        if b < n_blocks:
            width = cuda.blockDim.x // R
            j = cuda.threadIdx.x // width
            q = b * R + j
            r = sel[q] if j < R and q < sel.shape[0] else -1
            return p, r, cuda.threadIdx.x % width, width
        b -= n_blocks
    return 0, -1, 0, 1


def _grid(Ws, rows):
    """Blocks of a step launch: _slot's count over every parameter."""
    return sum(-(-len(r) // _rows_per_block(W.shape[1], THREADS)) for W, r in zip(Ws, rows))


def _clip_bounds(f, clip):
    """(-clip, clip) in type f, or (-inf, inf) for clip = 0 (no clipping)."""
    c = clip if clip > 0 else np.inf
    return f(-c), f(c)


def _make(f):
    """The three step kernels for weights of float type f (np.float32 or np.float64).
    Ws, Gs, rows and the state: tuples, one device array per parameter."""

    @gpu_kernel
    def sgd(Ws, Gs, rows, lr, lo, hi):
        p, r, i0, width = _slot(Ws, rows)
        if r >= 0:
            W, G = Ws[p], Gs[p]
            for i in range(i0, W.shape[1], width):
                W[r, i] -= lr * min(max(G[r, i], lo), hi)

    @gpu_kernel
    def adagrad(Ws, Hs, Gs, rows, lr, eps, lo, hi):
        p, r, i0, width = _slot(Ws, rows)
        if r >= 0:
            W, H, G = Ws[p], Hs[p], Gs[p]
            for i in range(i0, W.shape[1], width):
                g = min(max(G[r, i], lo), hi)
                h = H[r, i] + g * g
                H[r, i] = h
                W[r, i] -= lr * g / (math.sqrt(h) + eps)

    @gpu_kernel
    def adam(Ws, Ms, Vs, Ts, Gs, rows, lr, beta1, beta2, b1, c1m, b2, c2m, eps, lo, hi, global_t):
        """lr, beta1, beta2: float64; b1 = beta1, c1m = 1 - beta1 (and b2, c2m),
        eps, lo, hi: type f; global_t: int64 (reference.adam_step)."""
        p, r, i0, width = _slot(Ws, rows)
        t = 0
        if r >= 0:
            W, M, V, G = Ws[p], Ms[p], Vs[p], Gs[p]
            t = global_t if global_t > 0 else Ts[p][r] + 1
            step = f(lr / (1.0 - beta1 ** t))         # lr / (1 - beta1^t), once per row
            vscale = f(1.0 / (1.0 - beta2 ** t))      # 1 / (1 - beta2^t)
            for i in range(i0, W.shape[1], width):
                g = min(max(G[r, i], lo), hi)
                m = b1 * M[r, i] + c1m * g
                v = b2 * V[r, i] + c2m * g * g
                M[r, i] = m
                V[r, i] = v
                W[r, i] -= step * m / (math.sqrt(v * vscale) + eps)
        cuda.syncthreads()                       # every thread of the row has read T[r]
        if r >= 0 and i0 == 0:
            Ts[p][r] = t

    return sgd, adagrad, adam


_kernels = {}


def _for(W):
    """(type f, its kernels) for W's dtype, compiled on first use."""
    f = np.dtype(W.dtype).type
    if f not in _kernels:
        _kernels[f] = _make(f)
    return f, _kernels[f]


def _on_device(rows):
    return tuple(to_device(r) for r in rows)


def sgd_step(Ws, Gs, rows, lr, clip):
    """W[r] -= lr * g[r] on every parameter's rows: tuples, one entry per parameter."""
    rows = _on_device(rows)
    blocks = _grid(Ws, rows)
    if blocks:
        f, (sgd, _, _) = _for(Ws[0])
        sgd[blocks, THREADS](tuple(Ws), tuple(Gs), rows, f(lr), *_clip_bounds(f, clip))


def adagrad_step(Ws, Hs, Gs, rows, lr, eps, clip):
    """H[r] += g^2;  W[r] -= lr * g / (sqrt(H[r]) + eps), on every parameter's rows."""
    rows = _on_device(rows)
    blocks = _grid(Ws, rows)
    if blocks:
        f, (_, adagrad, _) = _for(Ws[0])
        adagrad[blocks, THREADS](tuple(Ws), tuple(Hs), tuple(Gs), rows, f(lr), f(eps),
                                 *_clip_bounds(f, clip))


def adam_step(Ws, Ms, Vs, Ts, Gs, rows, lr, beta1, beta2, eps, clip, global_t):
    """Adam on every parameter's rows, per-row step counts Ts[p]: (n_rows,) int64
    (global_t: see reference.adam_step). One pass updates M, V, W and T."""
    rows = _on_device(rows)
    blocks = _grid(Ws, rows)
    if blocks:
        f, (_, _, adam) = _for(Ws[0])
        adam[blocks, THREADS](
            tuple(Ws), tuple(Ms), tuple(Vs), tuple(Ts), tuple(Gs), rows, float(lr), float(beta1),
            float(beta2), f(beta1), f(1 - beta1), f(beta2), f(1 - beta2), f(eps),
            *_clip_bounds(f, clip), int(global_t))


def sgd_rows(W, G, rows, lr, clip):
    """W[r] -= lr * g[r].  W, G: (n_rows, n_cols); rows: (r,) int."""
    sgd_step((W,), (G,), (rows,), lr, clip)


def adagrad_rows(W, H, G, rows, lr, eps, clip):
    """H[r] += g^2;  W[r] -= lr * g / (sqrt(H[r]) + eps).  W, H, G: (n_rows, n_cols)."""
    adagrad_step((W,), (H,), (G,), (rows,), lr, eps, clip)


def adam_rows(W, M, V, T, G, rows, lr, beta1, beta2, eps, clip):
    """Adam on the selected rows with per-row step counts T: (n_rows,) int64, as the
    reference. One fused pass updates M, V, W and the row's count."""
    adam_step((W,), (M,), (V,), (T,), (G,), (rows,), lr, beta1, beta2, eps, clip, 0)

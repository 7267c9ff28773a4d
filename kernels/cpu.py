"""Numba CPU kernels: the same names and arguments as `kernels/reference.py`.

Only the kernels where meProp saves work are written here: the top-k selections,
the sparse backward products and the row-sparse optimizer updates. The dense
parts (the forward GEMM, the dense backward, element-wise layers, the loss) are
BLAS/NumPy calls already, so they are re-exported from the reference unchanged.

Every function compiles with `cache=True` (the first import costs the compile,
later processes load it from `__pycache__`) and also runs with
`NUMBA_DISABLE_JIT=1` as plain Python, so pdb and coverage work on it.
"""
import numpy as np
from numba import njit

from .reference import (  # noqa: F401  (dense parts: BLAS already)
    bias_grad, dense_backward, empty, linear_forward, mul, relu_backward,
    relu_forward, softmax_xent_backward, softmax_xent_forward, tanh_backward,
    tanh_forward, to_device, to_host, zeros,
)

name = "cpu"


# ---------------------------------------------------------------- selection
@njit(cache=True, inline="always")
def _less(a, i, j):
    """Heap order: smaller magnitude first; among equals the higher index first,
    so that it is the one evicted and the lower index wins the tie."""
    return a[i] < a[j] or (a[i] == a[j] and i > j)


@njit(cache=True)
def _sift_down(heap, a, pos, k):
    while True:
        child = 2 * pos + 1
        if child >= k:
            return
        if child + 1 < k and _less(a, heap[child + 1], heap[child]):
            child += 1
        if not _less(a, heap[child], heap[pos]):
            return
        heap[pos], heap[child] = heap[child], heap[pos]
        pos = child


@njit(cache=True)
def _heap_topk(out, a, k):
    """out: (k,) int32 out, ascending; a: (n,) magnitudes.

    A size-k min-heap over one pass of a (as the official C# code): after the
    first few entries almost every value loses to the heap's minimum in one
    comparison, so the cost is about n comparisons plus O(k log k).
    """
    n = a.shape[0]
    if k == n:
        for i in range(n):
            out[i] = i
        return
    heap = np.empty(k, np.int64)
    for i in range(k):
        heap[i] = i
    for pos in range(k // 2 - 1, -1, -1):
        _sift_down(heap, a, pos, k)
    for i in range(k, n):
        # i is larger than every index in the heap, so a tie never replaces
        if a[i] > a[heap[0]]:
            heap[0] = i
            _sift_down(heap, a, 0, k)
    heap.sort()
    for j in range(k):
        out[j] = heap[j]


@njit(cache=True)
def topk_rows(idx, dy, k):
    """idx: (B, k) int32 out, rows ascending; dy: (B, n) float32/64."""
    B, n = dy.shape
    a = np.empty(n, dy.dtype)
    for b in range(B):
        for i in range(n):
            a[i] = abs(dy[b, i])
        _heap_topk(idx[b], a, k)


@njit(cache=True)
def topk_unified(idx, dy, k):
    """idx: (k,) int32 out, ascending; dy: (B, n). Column sums of |dy| in float64."""
    B, n = dy.shape
    s = np.zeros(n, np.float64)
    for b in range(B):
        for i in range(n):
            s[i] += abs(dy[b, i])
    _heap_topk(idx, s, k)


@njit(cache=True)
def union_rows(idx, n_out):
    """Returns (r,) int32 ascending: the union of idx (B, k) int32. O(B k + n_out)."""
    mark = np.zeros(n_out, np.uint8)
    count = 0
    for b in range(idx.shape[0]):
        for j in range(idx.shape[1]):
            if not mark[idx[b, j]]:
                mark[idx[b, j]] = 1
                count += 1
    rows = np.empty(count, np.int32)
    count = 0
    for r in range(n_out):
        if mark[r]:
            rows[count] = r
            count += 1
    return rows


@njit(cache=True)
def zero_unselected(G, rows):
    """G: (n_rows, n_cols); rows: (r,) int. Zeroes every row not in rows."""
    keep = np.zeros(G.shape[0], np.uint8)
    for r in rows:
        keep[r] = 1
    for r in range(G.shape[0]):
        if not keep[r]:
            for i in range(G.shape[1]):
                G[r, i] = 0.0


# ---------------------------------------------------------------- sparse backward
@njit(cache=True)
def topk_backward(dx, dW, dy, x, W, idx):
    """Per-example meProp backward; see reference.topk_backward.

    dx: (B, n_in) out; dW: (n_out, n_in) out (union rows only); dy: (B, n_out);
    x: (B, n_in); W: (n_out, n_in); idx: (B, k) int32.
    Each kept entry costs two axpys of length n_in over contiguous rows: one
    row of W into dx[b], x[b] into one row of dW. The first write to a row of dW
    assigns instead of adding, so no separate zeroing pass is needed.
    """
    B, n_in = x.shape
    seen = np.zeros(W.shape[0], np.uint8)
    for b in range(B):
        for i in range(n_in):
            dx[b, i] = 0.0
        for j in range(idx.shape[1]):
            r = idx[b, j]
            v = dy[b, r]
            for i in range(n_in):
                dx[b, i] += v * W[r, i]
            if seen[r]:
                for i in range(n_in):
                    dW[r, i] += v * x[b, i]
            else:
                seen[r] = 1
                for i in range(n_in):
                    dW[r, i] = v * x[b, i]


@njit(cache=True)
def unified_backward(dx, dW, dy, x, W, idx):
    """Unified meProp backward; see reference.unified_backward.

    dx: (B, n_in) out; dW: (n_out, n_in) out (rows idx only); dy: (B, n_out);
    x: (B, n_in); W: (n_out, n_in); idx: (k,) int32.
    """
    B, n_in = x.shape
    for b in range(B):
        for i in range(n_in):
            dx[b, i] = 0.0
        for j in range(idx.shape[0]):
            v = dy[b, idx[j]]
            for i in range(n_in):
                dx[b, i] += v * W[idx[j], i]
    for j in range(idx.shape[0]):
        r = idx[j]
        for i in range(n_in):
            dW[r, i] = 0.0
        for b in range(B):
            v = dy[b, r]
            for i in range(n_in):
                dW[r, i] += v * x[b, i]


# ---------------------------------------------------------------- optimizers
@njit(cache=True, inline="always")
def _clip(g, clip):
    if clip > 0:
        return min(max(g, -clip), clip)
    return g


@njit(cache=True)
def sgd_rows(W, G, rows, lr, clip):
    """W, G: (n_rows, n_cols); rows: (r,) int. One pass over the selected rows."""
    for r in rows:
        for i in range(W.shape[1]):
            W[r, i] -= lr * _clip(G[r, i], clip)


@njit(cache=True)
def adagrad_rows(W, H, G, rows, lr, eps, clip):
    """W, H, G: (n_rows, n_cols); rows: (r,) int."""
    for r in rows:
        for i in range(W.shape[1]):
            g = _clip(G[r, i], clip)
            H[r, i] += g * g
            W[r, i] -= lr * g / (np.sqrt(H[r, i]) + eps)


@njit(cache=True)
def adam_rows(W, M, V, T, G, rows, lr, beta1, beta2, eps, clip):
    """W, M, V, G: (n_rows, n_cols); T: (n_rows,) int64 per-row step counts; rows: (r,).

    The bias corrections are computed once per row (in float64, as the
    reference), then one fused pass updates M, V and W.
    """
    for r in rows:
        T[r] += 1
        c1 = 1.0 / (1.0 - beta1 ** np.float64(T[r]))
        c2 = 1.0 / (1.0 - beta2 ** np.float64(T[r]))
        for i in range(W.shape[1]):
            g = _clip(G[r, i], clip)
            m = beta1 * M[r, i] + (1 - beta1) * g
            v = beta2 * V[r, i] + (1 - beta2) * g * g
            M[r, i] = m
            V[r, i] = v
            W[r, i] -= lr * (m * c1) / (np.sqrt(v * c2) + eps)

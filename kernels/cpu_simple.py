"""The first rung: the meProp kernels written plainly in Numba, to read before kernels/cpu.py.

The same names and arguments as `kernels/reference.py` for the four kernels of
the method, each the obvious loop: a size-k heap per row for the top-k (what the
paper's C# code does), and row loops for the two sparse products. They are
correct (tests/test_cpu_simple.py checks them against the reference) and already
far cheaper than a dense backward; `kernels/cpu.py` is what they became once
measured (`python -m benchmarks.run` times both side by side: section (e)).
Not a backend: the engine never calls them.

| kernel | the simple idea | what kernels/cpu.py does instead |
| --- | --- | --- |
| `topk_rows` | a min-heap of the k best (`_heap_topk`), then sort the k indices | a lower bound, quickselect on ~2k candidates, a branch-free pass: no heap, no sort |
| `topk_unified` | column sums, then the same heap | the same, on the sums |
| `topk_backward` | per example, per kept unit: one row of W into dx, x into one row of dW | 4 rows per pass; the entries grouped by row so each row of dW is written once |
| `unified_backward` | per example and per kept unit, the same two row updates | gathered coefficients, two output rows per pass over W or x |
"""
import numpy as np
from numba import njit

name = "cpu_simple"


@njit(cache=True)
def _worse(key, i, j):
    """Whether entry i ranks below entry j: smaller |value|, or equal and a higher index."""
    return key[i] < key[j] or (key[i] == key[j] and i > j)


@njit(cache=True)
def _sift_down(heap, key, k):
    """Restore the min-heap (worst entry at heap[0]) after heap[0] was replaced."""
    p = 0
    while True:
        c = 2 * p + 1
        if c >= k:
            return
        if c + 1 < k and _worse(key, heap[c + 1], heap[c]):
            c += 1                                   # the worse child
        if not _worse(key, heap[c], heap[p]):
            return
        heap[p], heap[c] = heap[c], heap[p]
        p = c


@njit(cache=True)
def _heap_topk(out, key, k):
    """out: (k,) int32, ascending: the k best entries of key (n,), lower index wins ties.

    Heap-sort the first k entries into a min-heap, then each later entry that beats
    the worst kept one replaces it (O(n log k)). An entry never beats an equal one
    already kept: it has a higher index, so the tie rule holds by construction.
    """
    n = key.shape[0]
    heap = np.empty(k, np.int32)
    for j in range(k):                               # insert, sifting up
        heap[j] = j
        c = j
        while c > 0 and _worse(key, heap[c], heap[(c - 1) // 2]):
            heap[c], heap[(c - 1) // 2] = heap[(c - 1) // 2], heap[c]
            c = (c - 1) // 2
    for i in range(k, n):
        if _worse(key, heap[0], i):
            heap[0] = i
            _sift_down(heap, key, k)
    out[:] = np.sort(heap)


@njit(cache=True)
def topk_rows(idx, dy, k):
    """idx: (B, k) int32 out, each row ascending; dy: (B, n) float; 1 <= k <= n."""
    for b in range(dy.shape[0]):
        _heap_topk(idx[b], np.abs(dy[b]), k)


@njit(cache=True)
def topk_unified(idx, dy, k):
    """idx: (k,) int32 out, ascending: the top-k of the column sums of |dy| (float64)."""
    s = np.zeros(dy.shape[1], np.float64)
    for b in range(dy.shape[0]):
        for i in range(dy.shape[1]):
            s[i] += abs(dy[b, i])
    _heap_topk(idx, s, k)


@njit(cache=True)
def topk_backward(dx, dW, dy, x, W, idx):
    """dx: (B, n_in) out; dW: (n_out, n_in) out, union rows only; idx: (B, k) int32.

    dx[b] = sum_j dy[b, idx[b, j]] W[idx[b, j]];  dW[r] = sum over b that kept r of dy[b, r] x[b].
    """
    B, k = idx.shape
    for b in range(B):                               # zero the rows that will be summed into
        for j in range(k):
            dW[idx[b, j]] = 0.0
    for b in range(B):
        dx[b] = 0.0
        for j in range(k):
            r = idx[b, j]
            v = dy[b, r]
            dx[b] += v * W[r]                        # one row of W into dx
            dW[r] += v * x[b]                        # x into one row of dW


@njit(cache=True)
def unified_backward(dx, dW, dy, x, W, idx):
    """dx: (B, n_in) out = dy[:, idx] W[idx]; dW[idx] = dy[:, idx]^T x; idx: (k,) int32."""
    for j in range(idx.shape[0]):
        dW[idx[j]] = 0.0
    for b in range(dy.shape[0]):
        dx[b] = 0.0
        for j in range(idx.shape[0]):
            r = idx[j]
            v = dy[b, r]
            dx[b] += v * W[r]
            dW[r] += v * x[b]

"""Numba CPU kernels: the same names and arguments as `kernels/reference.py`.

Read beside the specification (reference.py); `kernels/cpu_simple.py` has the
plain first version of the three meProp kernels, a rung to read before these.

| kernel | implements (reference.py) | the idea that makes it fast |
| --- | --- | --- |
| `topk_rows` | `topk_rows` | per row: a lower bound on the k-th largest magnitude leaves ~2k candidates, quickselect finds the threshold, one branch-free pass takes the k (`_select`) |
| `topk_unified` | `topk_unified` | column sums of abs(dy) read row by row (contiguous), then the same `_select` on the n sums |
| `union_rows` | `union_rows` | a mark per row, then one pass over the n_out marks: O(B k + n_out), no sort |
| `topk_backward` | `topk_backward` | dx: each example combines its k rows of W, 4 per pass (`_combo`); dW: the B k kept entries grouped by row first (`_by_row`), so each row of dW is written once |
| `unified_backward` | `unified_backward` | the k kept columns gathered once both ways round; dx and dW rows two at a time, each row of W or x loaded once for both (`_combo2`); from B >= 32 and B k >= 1600 the two gathered products go to BLAS (the measured rule at `BLAS_MIN_BATCH`) |
| `dense_backward` | `dense_backward` | BLAS; at B = 1 dW is an outer product (np.multiply: 5x faster than matmul there) |
| `bias_grad` | `bias_grad` | one pass, row by row, no temporary |
| `relu_forward`, `relu_backward` | the same | one fused pass, no boolean mask |
| `softmax_xent_forward`, `softmax_xent_backward`, `softmax_xent` | the same | one pass per row instead of NumPy's nine small operations |
| `zero_unselected` | `zero_unselected` | a mark per row, then zero the unmarked rows in place |
| `embedding_forward`, `embedding_backward` | the same | row copies; backward zeroes then adds only the batch's rows |
| `lstm_forward`, `lstm_backward` | the same | the whole recurrence in one jitted call (kernels/cpu_lstm.py): a register-blocked recurrent product, a fitted float32 tanh that vectorizes, `_select` per step and `_combo` over the kept rows of W_hh |
| `sgd_rows`, `adagrad_rows`, `adam_rows` | the same | one fused pass per selected row (kernels/cpu_optim.py) |
| `sgd_step`, `adagrad_step`, `adam_step` | the same | every parameter's rows in one call: one dispatch per step, not one per parameter |
| `moving_average` | the same | one pass instead of NumPy's three (kernels/cpu_optim.py) |
| `prepare_dy` | `prepare_dy` | this file's kernels called in turn (`_composed_prepare_dy`) |
| `linear_forward`, `tanh_forward`, `tanh_backward`, `cube_forward`, `cube_backward`, `mul`, `gather_rows`, `empty`, `zeros`, `to_device`, `to_host`, `copy_to` | the same | re-exported from reference.py: BLAS or one NumPy call already |

Written here: the top-k selections, the sparse backward products, the bias
gradient, ReLU and the softmax cross-entropy (one pass each, where NumPy makes
temporaries), and, in `kernels/cpu_optim.py`, the row-sparse optimizer updates.
The dense GEMMs (the forward, the dense backward) are BLAS calls already and, with
tanh and dropout's multiply, are re-exported from the reference.

What makes them fast (benchmarks/README.md has the numbers):
- Selection never sorts a row: a cheap lower bound on the k-th largest |value|
  leaves a few candidates (about 2k of n), and quickselect finishes on those.
- The sparse products combine 4 rows of W (or of x) per pass over an output row,
  so each output row is loaded and stored once per 4 kept entries, and each
  selected row of dW is written once (assigned, never zeroed first).
- Kernels with at least `PARALLEL_MIN_WORK` multiply-adds split across Numba's
  threads (disjoint output rows: no locks, no atomics); see that constant for
  why MNIST-sized kernels stay on one thread by default.

A public kernel that can use threads is a small Python function that picks the
thread count and calls its `@njit(parallel=PRANGE_ONLY)` body (named with a
leading underscore). Every kernel compiles with `cache=True` (the first import costs the
compile, later processes load it from `__pycache__`) and also runs with
`NUMBA_DISABLE_JIT=1` as plain Python, so pdb and coverage work on it.
"""
import sys

import numpy as np
from numba import get_num_threads, njit, prange

from .cpu_optim import (  # noqa: F401
    PRANGE_ONLY, adagrad_rows, adagrad_step, adam_rows_split, adam_step_split, moving_average, sgd_rows,
    sgd_step,
)
from .reference import (  # noqa: F401  (dense parts: BLAS already)
    ACTIVATIONS, _composed_prepare_dy, copy_to, cube_backward, cube_forward, empty, gather_rows, linear_forward,
    mul, tanh_backward,
    tanh_forward, to_device, to_host, zeros,
)

name = "cpu"

# A kernel with at least this much work (multiply-adds, or element updates)
# splits it across Numba's threads; below it, it runs on the calling thread.
# Threads pay off in isolation from ~0.2M multiply-adds, but Numba's OpenMP
# workers then spin for milliseconds and slow the next BLAS call (the forward
# GEMM) that needs the same cores: on 2 cores the MNIST training step got 1.7x to
# 4x slower (benchmarks/README.md). So the default keeps MNIST-sized kernels on
# one thread. It is read at every call: `kernels.cpu.PARALLEL_MIN_WORK = 0`
# makes every kernel use all threads.
PARALLEL_MIN_WORK = 16_000_000


def _threads(work, parts):
    """Threads for a kernel: 1 below PARALLEL_MIN_WORK, else Numba's, at most parts."""
    if work < PARALLEL_MIN_WORK:
        return 1
    return max(1, min(get_num_threads(), parts))


# ---------------------------------------------------------------- selection
@njit(cache=True)
def _lower_bound(key, pos, c, k):
    """A value t <= the k-th largest of key[pos[0:c]] (key[0:c] if pos is None), c >= k.

    Why at least k entries are >= t: cut the c entries into k nonempty blocks
    (block j is [j c / k, (j + 1) c / k)) and let t be the least of the k block
    maxima. Every block's maximum is one of its own entries and is >= t, so the k
    blocks give k distinct entries >= t; hence the k-th largest is >= t, and the
    filter `key >= t` never drops an entry of the top k. It is cheap (one pass, no
    branches that depend on the data) and tight on random data: about 3k of the n
    entries pass. (float64 for the running maximum: Numba's float32 max() is twice as slow.)"""
    t = np.inf
    for j in range(k):
        m = 0.0
        for q in range(j * c // k, (j + 1) * c // k):
            m = max(m, key[q] if pos is None else key[pos[q]])
        t = min(t, m)
    return t


@njit(cache=True)
def _kth_largest(vals, key, cand, c, k):
    """The k-th largest of key[cand[0:c]] by quickselect (Hoare partitions, median-of-3
    pivots): O(c) on average. vals: (c,) scratch of key's dtype."""
    for q in range(c):
        vals[q] = key[cand[q]]
    lo, hi, kk = 0, c - 1, c - k                 # the kk-th smallest, counting from 0
    while lo < hi:
        a, b, d = vals[lo], vals[(lo + hi) // 2], vals[hi]
        pivot = max(min(a, b), min(max(a, b), d))
        i, j = lo, hi
        while i <= j:
            while vals[i] < pivot:
                i += 1
            while vals[j] > pivot:
                j -= 1
            if i <= j:
                vals[i], vals[j] = vals[j], vals[i]
                i += 1
                j -= 1
        if kk <= j:
            hi = j
        elif kk >= i:
            lo = i
        else:
            break
    return vals[kk]


@njit(cache=True)
def _take_by_threshold(out, key, cand, c, k, tv):
    """out = the candidates (in index order) above tv, then the lowest-index ones equal
    to it. Branch-free: about half the candidates are taken, in no predictable pattern,
    and an `if` here mispredicted often enough to cost as much as the quickselect.
    The taken ones are compacted into cand itself (m <= q), then copied: out has room
    for exactly k."""
    # The tie counter: `ties` starts as how many entries equal to tv may be taken,
    # k minus the number strictly above tv (the reference's `ties[: k - above.size]`).
    ties = k
    for q in range(c):
        ties -= key[cand[q]] > tv
    # Branch-free compaction: every candidate is written at cand[m], and m moves on
    # only if it is taken (m += take, 0 or 1), so a rejected one is overwritten by
    # the next. Walking in index order, an entry equal to tv is taken while `ties`
    # is left: the lowest indices win, as the tie rule says, and out comes ascending.
    m = 0
    for q in range(c):
        i = cand[q]
        v = key[i]
        take = (v > tv) | ((v == tv) & (ties > 0))
        ties -= (v == tv) & take
        cand[m] = i
        m += take
    for j in range(k):
        out[j] = cand[j]


@njit(cache=True)
def _select(out, a, k, key, cand, vals):
    """out: (k,) int32 out, ascending: the top-k of |a| (a: (n,)), lower index wins ties.

    Scratch: key, vals (n,) of a's dtype; cand (n,) int32.
    1. A lower bound t on the k-th largest |a| (`_lower_bound`) keeps the candidates
       >= t, in index order, branch-free: about 3k of n for random data. A second
       bound over the candidates leaves about 2k.
    2. Quickselect finds the k-th largest value among them, tv.
    3. One pass over the candidates, in index order, takes those > tv and then the
       lowest-index ones equal to tv: the k indices, already ascending.
    (The C# code's size-k heap costs a sift per replacement, with a mispredicted
    branch per level: 4x slower here.)
    """
    n = a.shape[0]
    if k == n:
        for i in range(n):
            out[i] = i
        return
    for i in range(n):
        key[i] = abs(a[i])
    t = _lower_bound(key, None, n, k)
    c = 0
    for i in range(n):                   # the same branch-free compaction: keep i if key >= t
        cand[c] = i
        c += key[i] >= t
    t = _lower_bound(key, cand, c, k)
    c2 = 0
    for q in range(c):
        cand[c2] = cand[q]
        c2 += key[cand[q]] >= t
    _take_by_threshold(out, key, cand, c2, k, _kth_largest(vals, key, cand, c2, k))


@njit(cache=True)
def _select_rows(idx, dy, k, lo, hi):
    n = dy.shape[1]
    key, cand, vals = np.empty(n, dy.dtype), np.empty(n, np.int32), np.empty(n, dy.dtype)
    for b in range(lo, hi):
        _select(idx[b], dy[b], k, key, cand, vals)


def topk_rows(idx, dy, k):
    """idx: (B, k) int32 out, rows ascending; dy: (B, n) float32/64."""
    _topk_rows(idx, dy, k, _threads(8 * dy.size, dy.shape[0]))


@njit(cache=True, parallel=PRANGE_ONLY)
def _topk_rows(idx, dy, k, nt):
    B = dy.shape[0]
    if nt == 1:
        _select_rows(idx, dy, k, 0, B)
    else:
        for t in prange(nt):
            _select_rows(idx, dy, k, t * B // nt, (t + 1) * B // nt)


@njit(cache=True)
def _col_abs_sums(s, dy, lo, hi):
    """s[lo:hi] = sum over b of |dy[b, lo:hi]|, in float64; row by row (contiguous)."""
    for i in range(lo, hi):
        s[i] = 0.0
    for b in range(dy.shape[0]):
        for i in range(lo, hi):
            s[i] += abs(dy[b, i])


def topk_unified(idx, dy, k):
    """idx: (k,) int32 out, ascending; dy: (B, n). Column sums of |dy| in float64."""
    _topk_unified(idx, dy, k, _threads(dy.size, dy.shape[1]))


@njit(cache=True, parallel=PRANGE_ONLY)
def _topk_unified(idx, dy, k, nt):
    n = dy.shape[1]
    s = np.empty(n, np.float64)
    if nt == 1:
        _col_abs_sums(s, dy, 0, n)
    else:
        for t in prange(nt):
            _col_abs_sums(s, dy, t * n // nt, (t + 1) * n // nt)
    _select(idx, s, k, np.empty(n, np.float64), np.empty(n, np.int32), np.empty(n, np.float64))


def union_rows(idx, n_out, out=None):
    """As reference.union_rows (out is the GPU's: a new array here)."""
    return _union_rows(idx, n_out)


@njit(cache=True)
def _union_rows(idx, n_out):
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


# ---------------------------------------------------------------- element-wise
# One fused pass each, no temporaries: NumPy's versions make a boolean mask or
# reduce through its generic machinery, 3-5x slower at these sizes (B x 500).
@njit(cache=True)
def bias_grad(db, dy):
    """db: (n_out,) out = sum over the batch of dy: (B, n_out), row by row."""
    for i in range(dy.shape[1]):
        db[i] = dy[0, i]
    for b in range(1, dy.shape[0]):
        for i in range(dy.shape[1]):
            db[i] += dy[b, i]


@njit(cache=True)
def relu_forward(y, x):
    """y = max(x, 0); a NaN stays NaN, as np.maximum does.  Both (B, n)."""
    for b in range(x.shape[0]):
        for i in range(x.shape[1]):
            v = x[b, i]
            y[b, i] = 0.0 if v <= 0 else v


@njit(cache=True)
def relu_backward(dx, dy, y):
    """dx = dy * (y > 0), the product as the reference (dy * 0 is -0.0 or NaN where it is)."""
    for b in range(dy.shape[0]):
        for i in range(dy.shape[1]):
            dx[b, i] = dy[b, i] * (1.0 if y[b, i] > 0 else 0.0)


@njit(cache=True)
def _softmax_xent(probs, logits, labels):
    """Returns the summed -log p[label] in float64 (the caller divides by B)."""
    B, C = logits.shape
    total = np.float64(0.0)
    for b in range(B):
        top = logits[b, 0]
        for c in range(1, C):
            top = max(top, logits[b, c])
        s = logits[b, 0] * 0                       # a zero of the logits' dtype
        for c in range(C):
            e = np.exp(logits[b, c] - top)         # the shift: exp never overflows
            probs[b, c] = e
            s += e
        for c in range(C):
            probs[b, c] /= s
        total -= (logits[b, labels[b]] - top) - np.log(s)
    return total


def softmax_xent_forward(probs, logits, labels):
    """As reference.softmax_xent_forward (probs: (B, C) out; returns the mean loss as
    a float), in one pass per row: NumPy's nine small operations took 20 us at B = 1."""
    return float(_softmax_xent(probs, logits, labels)) / logits.shape[0]


@njit(cache=True)
def softmax_xent_backward(dlogits, probs, labels):
    """dlogits: (B, C) out = (probs - onehot(labels)) / B, the reference's operations in order."""
    B = probs.shape[0]
    for b in range(B):
        for c in range(probs.shape[1]):
            dlogits[b, c] = probs[b, c]
        dlogits[b, labels[b]] -= 1
        for c in range(probs.shape[1]):
            dlogits[b, c] /= B


def softmax_xent(dlogits, loss, logits, labels):
    """As reference.softmax_xent: the two kernels above, dlogits first holding the probabilities."""
    loss[0] = softmax_xent_forward(dlogits, logits, labels)
    softmax_xent_backward(dlogits, dlogits, labels)


# ---------------------------------------------------------------- sparse backward
def dense_backward(dx, dW, dy, x, W, db=None):
    """As reference.dense_backward. With B = 1, dW is an outer product: NumPy's
    matmul with an inner size of 1 does not call BLAS and is 5x slower."""
    if db is not None:
        bias_grad(db, dy)
    np.matmul(dy, W, out=dx)
    if dy.shape[0] == 1:
        np.multiply(dy.T, x, out=dW)
    else:
        np.matmul(dy.T, x, out=dW)


@njit(cache=True, fastmath={"contract"})
def _combo(out, A, rows, coef, lo, hi):
    """out: (n,) = sum over q in [lo, hi) of coef[q] * A[rows[q]]; A: (m, n).

    Four rows of A per pass, so out is loaded and stored once per four terms; the
    first pass assigns, so out needs no zeroing. `contract` lets LLVM fuse each
    multiply-add (one rounding instead of two: within float tolerance).
    """
    n = out.shape[0]
    m = hi - lo
    q = lo
    if m >= 4:
        a0, a1, a2, a3 = A[rows[q]], A[rows[q + 1]], A[rows[q + 2]], A[rows[q + 3]]
        c0, c1, c2, c3 = coef[q], coef[q + 1], coef[q + 2], coef[q + 3]
        for i in range(n):
            out[i] = c0 * a0[i] + c1 * a1[i] + c2 * a2[i] + c3 * a3[i]
        q += 4
    elif m == 3:
        a0, a1, a2 = A[rows[q]], A[rows[q + 1]], A[rows[q + 2]]
        c0, c1, c2 = coef[q], coef[q + 1], coef[q + 2]
        for i in range(n):
            out[i] = c0 * a0[i] + c1 * a1[i] + c2 * a2[i]
        return
    elif m == 2:
        a0, a1, c0, c1 = A[rows[q]], A[rows[q + 1]], coef[q], coef[q + 1]
        for i in range(n):
            out[i] = c0 * a0[i] + c1 * a1[i]
        return
    elif m == 1:
        a0, c0 = A[rows[q]], coef[q]
        for i in range(n):
            out[i] = c0 * a0[i]
        return
    else:
        for i in range(n):
            out[i] = 0.0
        return
    while q + 4 <= hi:
        a0, a1, a2, a3 = A[rows[q]], A[rows[q + 1]], A[rows[q + 2]], A[rows[q + 3]]
        c0, c1, c2, c3 = coef[q], coef[q + 1], coef[q + 2], coef[q + 3]
        for i in range(n):
            out[i] += c0 * a0[i] + c1 * a1[i] + c2 * a2[i] + c3 * a3[i]
        q += 4
    while q < hi:
        a0, c0 = A[rows[q]], coef[q]
        for i in range(n):
            out[i] += c0 * a0[i]
        q += 1


@njit(cache=True, fastmath={"contract"})
def _combo2(out0, out1, A, rows, coef0, coef1):
    """out0 = sum_q coef0[q] A[rows[q]] and out1 likewise with coef1, in one sweep:
    each row of A loaded once for both (the unified products share their rows)."""
    n, k = out0.shape[0], rows.shape[0]
    q = 0
    while q + 4 <= k:
        a0, a1, a2, a3 = A[rows[q]], A[rows[q + 1]], A[rows[q + 2]], A[rows[q + 3]]
        c0, c1, c2, c3 = coef0[q], coef0[q + 1], coef0[q + 2], coef0[q + 3]
        d0, d1, d2, d3 = coef1[q], coef1[q + 1], coef1[q + 2], coef1[q + 3]
        if q == 0:
            for i in range(n):
                x0, x1, x2, x3 = a0[i], a1[i], a2[i], a3[i]
                out0[i] = c0 * x0 + c1 * x1 + c2 * x2 + c3 * x3
                out1[i] = d0 * x0 + d1 * x1 + d2 * x2 + d3 * x3
        else:
            for i in range(n):
                x0, x1, x2, x3 = a0[i], a1[i], a2[i], a3[i]
                out0[i] += c0 * x0 + c1 * x1 + c2 * x2 + c3 * x3
                out1[i] += d0 * x0 + d1 * x1 + d2 * x2 + d3 * x3
        q += 4
    if q == 0:
        for i in range(n):
            out0[i] = 0.0
            out1[i] = 0.0
    while q < k:
        a0, c0, d0 = A[rows[q]], coef0[q], coef1[q]
        for i in range(n):
            out0[i] += c0 * a0[i]
            out1[i] += d0 * a0[i]
        q += 1


@njit(cache=True)
def _dx_rows(dx, dy, W, idx, lo, hi):
    """dx[b] = sum_j dy[b, idx[b, j]] W[idx[b, j]] for b in [lo, hi); idx: (B, k)."""
    k = idx.shape[1]
    coef = np.empty(k, dy.dtype)
    for b in range(lo, hi):
        for j in range(k):
            coef[j] = dy[b, idx[b, j]]
        _combo(dx[b], W, idx[b], coef, 0, k)


@njit(cache=True)
def _dW_rows(dW, x, start, ex, cf, lo, hi):
    """dW[r] = sum over the entries p of row r of cf[p] x[ex[p]], for the rows in [lo, hi)
    that have entries (start[r] < start[r + 1]); the others are not touched.

    In the reference's terms: dW[r] = sum over the examples b that kept unit r of
    dy[b, r] x[b]. `_combo(out, A, rows, coef, ...)` sums coef[q] A[rows[q]]; here A
    is x, so its "rows" are examples: ex[p] names the example and cf[p] = dy[b, r]."""
    for r in range(lo, hi):
        if start[r + 1] > start[r]:
            _combo(dW[r], x, ex, cf, start[r], start[r + 1])


@njit(cache=True)
def _by_row(dy, idx, n_out):
    """The kept entries grouped by row (a counting sort): row r's entries are
    p in [start[r], start[r + 1]), from example ex[p] with value cf[p].

    idx lists, per example, the units it kept; dW needs the transpose: per unit r,
    the examples that kept it. start: (n_out + 1,) int32 offsets; ex: (B k,) int32
    example numbers; cf: (B k,) the values dy[ex[p], r]. Rows nobody kept have
    start[r] == start[r + 1] (no entries)."""
    B, k = idx.shape
    start = np.zeros(n_out + 1, np.int32)
    for b in range(B):
        for j in range(k):
            start[idx[b, j] + 1] += 1
    for r in range(n_out):
        start[r + 1] += start[r]
    fill = start[:-1].copy()
    ex, cf = np.empty(B * k, np.int32), np.empty(B * k, dy.dtype)
    for b in range(B):                 # ascending b: each row sums its examples in order
        for j in range(k):
            r = idx[b, j]
            ex[fill[r]], cf[fill[r]] = b, dy[b, r]
            fill[r] += 1
    return start, ex, cf


def topk_backward(dx, dW, dy, x, W, idx):
    """Per-example meProp backward; see reference.topk_backward.

    dx: (B, n_in) out; dW: (n_out, n_in) out (union rows only); dy: (B, n_out);
    x: (B, n_in); W: (n_out, n_in); idx: (B, k) int32.
    dx: each example combines its k rows of W. dW: the B k kept entries are grouped
    by row first, so each selected row of dW is written once, from the examples
    that kept it. Threads take disjoint examples of dx and rows of dW, the rows
    split where the entries are, so both halves get the same work.
    """
    B, k = idx.shape
    if B >= BLAS_MIN_BATCH:
        rows = union_rows(idx, W.shape[0])
        if len(rows) <= BLAS_MAX_UNION_PER_K * k:
            _topk_blas(dx, dW, dy, x, W, idx, rows)
            return
    _topk_backward(dx, dW, dy, x, W, idx, _threads(2 * B * k * x.shape[1], B))


@njit(cache=True, parallel=PRANGE_ONLY)
def _topk_backward(dx, dW, dy, x, W, idx, nt):
    B, k = idx.shape
    n_out = W.shape[0]
    start, ex, cf = _by_row(dy, idx, n_out)
    if nt == 1:
        _dx_rows(dx, dy, W, idx, 0, B)
        _dW_rows(dW, x, start, ex, cf, 0, n_out)
    else:
        for t in prange(nt):
            _dx_rows(dx, dy, W, idx, t * B // nt, (t + 1) * B // nt)
            lo = 0 if t == 0 else np.searchsorted(start, t * B * k // nt)
            hi = n_out if t == nt - 1 else np.searchsorted(start, (t + 1) * B * k // nt)
            _dW_rows(dW, x, start, ex, cf, lo, hi)


@njit(cache=True)
def _unified_part(dx, dW, x, W, idx, dyk, dykT, ex, b_lo, b_hi, j_lo, j_hi):
    """dx[b] for b in [b_lo, b_hi) and dW[idx[j]] for j in [j_lo, j_hi), two at a time."""
    k = idx.shape[0]
    for b in range(b_lo, b_hi - 1, 2):
        _combo2(dx[b], dx[b + 1], W, idx, dyk[b], dyk[b + 1])
    if (b_hi - b_lo) % 2:
        _combo(dx[b_hi - 1], W, idx, dyk[b_hi - 1], 0, k)
    for j in range(j_lo, j_hi - 1, 2):
        _combo2(dW[idx[j]], dW[idx[j + 1]], x, ex, dykT[j], dykT[j + 1])
    if (j_hi - j_lo) % 2:
        _combo(dW[idx[j_hi - 1]], x, ex, dykT[j_hi - 1], 0, ex.shape[0])


def unified_backward(dx, dW, dy, x, W, idx):
    """Unified meProp backward; see reference.unified_backward.

    dx: (B, n_in) out; dW: (n_out, n_in) out (rows idx only); dy: (B, n_out);
    x: (B, n_in); W: (n_out, n_in); idx: (k,) int32.
    The k kept columns of dy are gathered once, both ways round (dyk: (B, k),
    dykT: (k, B)), so both small products read their coefficients contiguously.
    """
    B, k = dy.shape[0], idx.shape[0]
    if B >= BLAS_MIN_BATCH and B * k >= BLAS_MIN_BLOCK:
        _unified_blas(dx, dW, dy, x, W, idx)
        return
    _unified_backward(dx, dW, dy, x, W, idx, _threads(2 * B * k * x.shape[1], max(B, k)))


@njit(cache=True)
def _gather_columns(dy, idx):
    """dy[:, idx] both ways round, (B, k) and (k, B), and the example numbers 0..B-1.

    Why `ex = 0..B-1`: dW[idx[j]] = sum over b of dy[b, idx[j]] x[b], every example
    takes part. That is `_combo` over x with every row b (x[ex[b]] = x[b]) and
    coefficients dykT[j]; ex exists only so the per-example kernel's `_combo` (which
    takes a list of rows) serves here too."""
    B, k = dy.shape[0], idx.shape[0]
    dyk, dykT = np.empty((B, k), dy.dtype), np.empty((k, B), dy.dtype)
    for b in range(B):
        for j in range(k):
            dyk[b, j] = dykT[j, b] = dy[b, idx[j]]
    return dyk, dykT, np.arange(B).astype(np.int32)


@njit(cache=True, parallel=PRANGE_ONLY)
def _unified_backward(dx, dW, dy, x, W, idx, nt):
    B, k = dy.shape[0], idx.shape[0]
    dyk, dykT, ex = _gather_columns(dy, idx)
    if nt == 1:
        _unified_part(dx, dW, x, W, idx, dyk, dykT, ex, 0, B, 0, k)
    else:
        for t in prange(nt):
            _unified_part(dx, dW, x, W, idx, dyk, dykT, ex, t * B // nt, (t + 1) * B // nt,
                          t * k // nt, (t + 1) * k // nt)


# ---------------------------------------------------------------- dense gathered products: BLAS
# When the kept entries fill a dense block, the two products are GEMMs of the
# gathered rows, and BLAS runs them faster per multiply-add than the hand loops
# above once the block is big enough to pay for the gathers and the calls. The
# rule, measured on this machine, one thread each (benchmarks/README.md, "Kernels:
# BLAS or hand loops"):
# - unified, B >= BLAS_MIN_BATCH and B k >= BLAS_MIN_BLOCK (the gathered (B, k) block
#   of dy): BLAS ((B, k) x (k, n_in) and (k, B) x (B, n_in)), 1.2-1.4x faster than the
#   hand loops at B = 128, k = 50, 3x at 256 x 4000, k = 50; at B k of a few hundred
#   to about 2000 the two are within 20% either way, and below B = 32 the hand loops
#   are 1.2-2.3x faster (BLAS's fixed costs: two calls, the gathered rows of W, a
#   temporary for dW's rows and its scatter). At B = 32, k = 50 (B k = 1600) BLAS
#   was as fast or faster at n = 500, 2000 and 4000 on the idle machine (0.95-1.2x
#   against the hand loops' 0.89-0.96x of the reference at n = 4000), hence 1600.
# - per-example, B >= BLAS_MIN_BATCH: BLAS on the union of the selections (r rows,
#   zeros where an example did not keep a row) only when r <= BLAS_MAX_UNION_PER_K * k:
#   the hand loops do B k n_in multiply-adds, BLAS B r n_in, and BLAS was at most
#   about 1.5x faster per multiply-add (even at r = 2k the hand loops were as fast).
BLAS_MIN_BATCH = 32
BLAS_MIN_BLOCK = 1600
BLAS_MAX_UNION_PER_K = 1.5


def _unified_blas(dx, dW, dy, x, W, idx):
    """unified_backward by BLAS: dx = dy[:, idx] W[idx], dW[idx] = dy[:, idx]^T x."""
    dyk = dy[:, idx]                       # (B, k), gathered once
    np.matmul(dyk, W[idx], out=dx)
    dW[idx] = dyk.T @ x


@njit(cache=True)
def _kept_columns(dy, idx, rows):
    """(B, r) of dy's dtype: dy[b, rows[j]] where example b kept rows[j], else 0.
    rows: (r,) int32 ascending, the union of idx (B, k)."""
    pos = np.empty(dy.shape[1], np.int32)
    for j in range(rows.shape[0]):
        pos[rows[j]] = j
    M = np.zeros((dy.shape[0], rows.shape[0]), dy.dtype)
    for b in range(idx.shape[0]):
        for j in range(idx.shape[1]):
            M[b, pos[idx[b, j]]] = dy[b, idx[b, j]]
    return M


def _topk_blas(dx, dW, dy, x, W, idx, rows):
    """topk_backward by BLAS over the union: M = the kept entries of dy[:, rows]
    (zeros elsewhere), dx = M W[rows], dW[rows] = M^T x."""
    M = _kept_columns(dy, idx, rows)
    np.matmul(M, W[rows], out=dx)
    dW[rows] = M.T @ x


# ---------------------------------------------------------------- optimizers
# sgd_rows, adagrad_rows and their _step: kernels/cpu_optim.py (one thread: memory-bound)
def adam_rows(W, M, V, T, G, rows, lr, beta1, beta2, eps, clip):
    """W, M, V, G: (n_rows, n_cols); T: (n_rows,) int64 per-row step counts; rows: (r,).

    One fused pass per row updates M, V and W (kernels/cpu_optim.py).
    """
    n = len(rows)
    adam_rows_split(W, M, V, T, G, rows, lr, beta1, beta2, eps, clip, 0,
                    _threads(4 * n * W.shape[1], n))


def adam_step(Ws, Ms, Vs, Ts, Gs, rows, lr, beta1, beta2, eps, clip, global_t):
    """adam_rows on every parameter in one call (tuples, one entry per parameter;
    global_t: see reference.adam_step); each parameter takes threads by its size."""
    adam_step_split(Ws, Ms, Vs, Ts, Gs, rows, lr, beta1, beta2, eps, clip, global_t,
                    PARALLEL_MIN_WORK, get_num_threads())


# ---------------------------------------------------------------- embedding
@njit(cache=True)
def embedding_forward(y, W, ids):
    """y: (N, dim) out = W[ids]; W: (vocab, dim); ids: (N,) int32."""
    for i in range(ids.shape[0]):
        y[i] = W[ids[i]]


@njit(cache=True)
def embedding_backward(dW, dy, ids):
    """dW[r] = sum of dy[i] with ids[i] == r, rows in ids only. dW: (vocab, dim) out;
    dy: (N, dim); ids: (N,) int32. Two passes over ids: zero the rows, then add,
    so no row outside ids is touched and no temporary of dW's size is made."""
    for i in range(ids.shape[0]):
        dW[ids[i]] = 0
    for i in range(ids.shape[0]):
        dW[ids[i]] += dy[i]



# ---------------------------------------------------------------- LSTM recurrence
# kernels/cpu_lstm.py builds on the helpers above (_select, _combo), so it is
# imported last, once they exist.
from .cpu_lstm import lstm_backward, lstm_forward  # noqa: E402,F401

prepare_dy = _composed_prepare_dy(sys.modules[__name__])     # this file's kernels, one after another

"""The selections of the CUDA backend: a block-wide radix select, column sums, the union.

`kernels/cuda.py` launches these; this file holds the parts that need block-wide
cooperation.

| kernel | serves (reference.py) | the idea that makes it fast |
| --- | --- | --- |
| `topk_rows_kernel` | `topk_rows` | one block per row, `select_row`: the radix select below |
| `topk_unified_kernel` | `topk_unified` (and `bias_grad`, `prepare_dy`) | column sums by many blocks; the last block to finish (a counter) selects over the sums |
| `bias_grad_kernel` | `bias_grad`, `prepare_dy` | `col_sums`: COLS columns per block, the batch split over lanes, reduced in shared memory |
| `union_kernel` | `union_rows` | one block: mark, then compact the marks with `block_scan` | Everything goes through shared memory and `syncthreads` (no warp
shuffles or ballots), so Numba's CUDA simulator runs exactly this code.

Top-k of one row by radix select (one block per row)
----------------------------------------------------
For a float, the bit pattern with the sign bit cleared is a non-negative integer
that orders exactly as |v| does (IEEE 754 is sign-magnitude), so the select
works on integer keys and compares no floats. The k-th largest key t is found
one digit of RADIX_BITS bits at a time, most significant first: a shared-memory
histogram of the current digit over the keys that still match the digits found
so far (shared-memory atomics; each thread adds a run of equal digits at once),
suffix sums of the histogram (a block scan), and
the digit where the running count crosses k. A float32 row needs at most 4 passes
of 8 bits (a float64 row at most 8), and the search stops early as soon as the
chosen bin is taken whole. Then one pass writes the indices: each thread owns a
contiguous chunk of the row, counts its keys above t and equal to t, and one
block scan of those counts gives every thread its output offset and its share of
the ties, lowest indices first. The output is ascending without any sort, and
the tie rule (lower index wins) holds by construction.

Why this and not a sort: a bitonic sort of a 4096-row costs ~78 compare-exchange
steps over the whole row, each followed by a barrier; the radix select reads the
row about 5 times from L1/L2, keeps nothing but a 256-bin histogram in shared
memory, and its cost does not depend on k.
"""
import numpy as np
from numba import cuda

from .cuda_launch import SIM, gpu_kernel

# The simulator runs every thread as a Python thread: smaller blocks, same code.
RADIX_BITS = 3 if SIM else 8
THREADS = 1 << RADIX_BITS        # threads per block; one histogram bin per thread
COLS = 4 if SIM else 16          # column sums: COLS columns x (THREADS // COLS) batch lanes
LANES = THREADS // COLS
STAGE = 64 if SIM else 4096      # unified select: keys staged in shared memory up to this n (32 KB)
NO_ACT, RELU, TANH = 0, 1, 2     # the activation whose derivative col_sums applies (ACT_CODES)
ACT_CODES = {None: NO_ACT, "relu": RELU, "tanh": TANH}


@cuda.jit(device=True)
def block_scan(buf, tid, val):
    """Inclusive prefix sum of val over the block's threads (Hillis-Steele).

    buf: (2, THREADS) int64 shared scratch. Returns (sum of val over threads
    0..tid, sum over all threads). 1 + log2(THREADS) barriers; every thread of
    the block must call it, and pass a barrier before buf is written again.
    """
    buf[0, tid] = val
    cuda.syncthreads()
    src = 0
    d = 1
    while d < THREADS:
        v = buf[src, tid]
        if tid >= d:
            v += buf[src, tid - d]
        buf[1 - src, tid] = v
        src = 1 - src
        cuda.syncthreads()
        d *= 2
    return buf[src, tid], buf[src, THREADS - 1]


@cuda.jit(device=True)
def select_row(out, keys, n, k, mask, key_bits, hist, buf, pick):
    """out[:k] = ascending indices of the k largest keys[:n] & mask.

    out: (>= k,) int32; keys: (>= n,) int32/int64, float bit patterns, in global
    or shared memory (one row of a 2-D array is fine); mask clears the sign bit.
    hist: (THREADS,) int32, buf: (2, THREADS) int64, pick: (3,) int64, all shared.
    Tie rule: among equal keys the lower index is taken.
    """
    tid = cuda.threadIdx.x
    kk = k                        # how many are still to take among the candidates
    prefix = 0                    # the digits of t found so far ...
    pmask = 0                     # ... and the bits they cover
    shift = ((key_bits - 2) // RADIX_BITS) * RADIX_BITS
    hist[tid] = 0
    cuda.syncthreads()
    while True:                                   # 3 + log2(THREADS) barriers a pass
        run_bin = -1                              # a run of keys with one digit is counted here
        run = 0                                   # and added once: where most keys share a digit
        for i in range(tid, n, THREADS):          # (the exponent's), one address would otherwise
            u = keys[i] & mask                    # take every thread's atomic in turn
            if (u & pmask) == prefix:
                d = (u >> shift) & (THREADS - 1)
                if d != run_bin:
                    if run > 0:
                        cuda.atomic.add(hist, run_bin, run)
                    run_bin = d
                    run = 0
                run += 1
        if run > 0:
            cuda.atomic.add(hist, run_bin, run)
        cuda.syncthreads()
        d = THREADS - 1 - tid                     # reversed, so the scan gives suffix sums
        h = hist[d]
        at_or_above, _ = block_scan(buf, tid, h)  # candidates with digit >= d
        hist[tid] = 0                             # every hist[d] was read before the scan
        if at_or_above >= kk and at_or_above - h < kk:
            pick[0] = d
            pick[1] = at_or_above - h
            pick[2] = h
        cuda.syncthreads()
        kk -= pick[1]                             # pick is rewritten only after 2 barriers
        prefix |= pick[0] << shift
        pmask |= ((mask >> shift) & (THREADS - 1)) << shift   # never past the sign bit
        if pick[2] == kk or shift == 0:           # the whole bin is taken, or t is exact
            break
        shift -= RADIX_BITS
    # write: chunk per thread, offsets from one scan of (above t, equal to t) counts
    chunk = (n + THREADS - 1) // THREADS
    lo = tid * chunk
    hi = min(n, lo + chunk)
    gt = 0
    eq = 0
    for i in range(lo, hi):
        v = keys[i] & pmask
        if v > prefix:
            gt += 1
        elif v == prefix:
            eq += 1
    mine = (gt << 32) | eq
    incl, _ = block_scan(buf, tid, mine)
    before = incl - mine
    eq_before = before & 0xFFFFFFFF
    ties = min(max(kk - eq_before, 0), eq)        # ties this thread takes
    pos = (before >> 32) + min(eq_before, kk)
    for i in range(lo, hi):
        v = keys[i] & pmask
        if v > prefix or (v == prefix and ties > 0):
            if v == prefix:
                ties -= 1
            out[pos] = i
            pos += 1


@gpu_kernel
def topk_rows_kernel(idx, keys, k, mask, key_bits):
    """One block per row. idx: (B, k) int32 out; keys: (B, n) bit patterns of dy."""
    hist = cuda.shared.array(THREADS, np.int32)
    buf = cuda.shared.array((2, THREADS), np.int64)
    pick = cuda.shared.array(3, np.int64)
    row = cuda.blockIdx.x
    select_row(idx[row], keys[row], keys.shape[1], k, mask, key_bits, hist, buf, pick)


@cuda.jit(device=True)
def _through(g, dy, y, act, b, j):
    """dy[b, j] through the activation's derivative (act: NO_ACT, RELU or TANH, y the
    activation's output), stored in g[b, j] when there is one; in dy's type."""
    v = dy[b, j]
    if act == RELU:
        if not y[b, j] > 0:
            v -= v                                # a zero of v's type
        g[b, j] = v
    elif act == TANH:
        t = y[b, j]
        v -= v * t * t                            # dy (1 - y^2), in dy's type
        g[b, j] = v
    return v


@cuda.jit(device=True)
def col_sums(s_abs, s, g, dy, y, act, want_abs, want, red):
    """This block's COLS columns j of g = dy * act'(y): (B, n): s_abs[j] = sum_b |g[b, j]|
    (if want_abs) and s[j] = sum_b g[b, j] (if want), both added in float64; g is
    written as it is read (act NO_ACT: g is dy, nothing written, y unused).

    Thread (c, l) sums rows l, l + LANES, ... of column c (COLS threads read one
    row's COLS neighbours: coalesced); the LANES partial sums are then added in
    a fixed order, so the result is the same on every run. red: (2, LANES, COLS)
    float64 shared. Both sums cost one read of dy: the bias gradient comes free
    with the unified selection's sums, and so does the activation's backward.
    """
    tid = cuda.threadIdx.x
    c, lane = tid % COLS, tid // COLS
    j = cuda.blockIdx.x * COLS + c
    acc_abs = 0.0
    acc = 0.0
    if j < dy.shape[1]:
        B = dy.shape[0]
        b = lane
        while b + 3 * LANES < B:                  # four loads in flight, then the adds in order
            v0, v1 = _through(g, dy, y, act, b, j), _through(g, dy, y, act, b + LANES, j)
            v2, v3 = _through(g, dy, y, act, b + 2 * LANES, j), _through(g, dy, y, act, b + 3 * LANES, j)
            acc_abs += abs(v0)
            acc_abs += abs(v1)
            acc_abs += abs(v2)
            acc_abs += abs(v3)
            acc += v0
            acc += v1
            acc += v2
            acc += v3
            b += 4 * LANES
        while b < B:
            v = _through(g, dy, y, act, b, j)
            acc_abs += abs(v)
            acc += v
            b += LANES
    red[0, lane, c] = acc_abs
    red[1, lane, c] = acc
    cuda.syncthreads()
    if lane == 0 and j < dy.shape[1]:
        acc_abs = 0.0
        acc = 0.0
        for m in range(LANES):
            acc_abs += red[0, m, c]
            acc += red[1, m, c]
        if want_abs:
            s_abs[j] = acc_abs
        if want:
            s[j] = acc


@gpu_kernel
def bias_grad_kernel(db, g, dy, y, act):
    """db: (n,) out = column sums of g = dy * act'(y): (B, n), g written (col_sums)."""
    red = cuda.shared.array((2, LANES, COLS), np.float64)
    col_sums(db, db, g, dy, y, act, False, True, red)


@gpu_kernel
def topk_unified_kernel(idx, s, s_keys, counter, db, g, dy, y, act, k, mask, want_db):
    """Column sums of |g| (and of g: the bias gradient) and the select, in one launch,
    g = dy * act'(y) written as it is read (col_sums).

    idx: (k,) int32 out; s: (n,) float64 scratch and s_keys the same memory as
    int64; counter: (1,) int32, zero on entry and on exit; db: (n,) out when
    want_db (else any 1-entry array); g, dy, y: (B, n) (act NO_ACT: g and y unused).
    Every block writes its columns' sums; the last block to finish (a fence and
    an atomic ticket tell it) selects from all of them, then resets the counter.
    It first copies the n keys to shared memory when they fit (n <= STAGE): the
    select reads them once per radix pass, and one block cannot hide L2's latency
    behind other blocks. (On an H100 this kernel, bias sums included, took 16.5 us
    against 15.0 + 3.6 us for the select and bias kernels before; the staging's own
    share was not measured apart: benchmarks/README.md.)
    """
    red = cuda.shared.array((2, LANES, COLS), np.float64)
    hist = cuda.shared.array(THREADS, np.int32)
    buf = cuda.shared.array((2, THREADS), np.int64)
    pick = cuda.shared.array(3, np.int64)
    last = cuda.shared.array(1, np.int32)
    staged = cuda.shared.array(STAGE, np.int64)
    reg = cuda.local.array(8, np.int64)
    col_sums(s, db, g, dy, y, act, True, want_db, red)
    cuda.threadfence()                            # my sums are visible to every block
    cuda.syncthreads()
    tid = cuda.threadIdx.x
    if tid == 0:
        last[0] = 1 if cuda.atomic.add(counter, 0, 1) == cuda.gridDim.x - 1 else 0
    cuda.syncthreads()
    if last[0]:                                   # the same for every thread of the block
        n = s.shape[0]
        if n <= STAGE:
            i = tid
            while i < n:                          # 8 loads in flight, then their 8 stores
                for u in range(8):
                    if i + u * THREADS < n:
                        reg[u] = s_keys[i + u * THREADS]
                for u in range(8):
                    if i + u * THREADS < n:
                        staged[i + u * THREADS] = reg[u]
                i += 8 * THREADS
            cuda.syncthreads()
            select_row(idx, staged, n, k, mask, 64, hist, buf, pick)
        else:
            select_row(idx, s_keys, n, k, mask, 64, hist, buf, pick)
        if tid == 0:
            counter[0] = 0


@gpu_kernel
def union_kernel(rows, count, mark, idx):
    """One block. rows: (n_out,) int32 out, its first count[0] entries the ascending
    union of idx: (B, k); mark: (n_out,) int32 scratch, any content on entry."""
    buf = cuda.shared.array((2, THREADS), np.int64)
    tid = cuda.threadIdx.x
    n_out, k = mark.shape[0], idx.shape[1]
    for r in range(tid, n_out, THREADS):
        mark[r] = 0
    cuda.syncthreads()
    for e in range(tid, idx.shape[0] * k, THREADS):
        mark[idx[e // k, e % k]] = 1
    cuda.syncthreads()
    chunk = (n_out + THREADS - 1) // THREADS
    lo = tid * chunk
    hi = min(n_out, lo + chunk)
    mine = 0
    for r in range(lo, hi):
        mine += mark[r]
    incl, total = block_scan(buf, tid, mine)
    pos = incl - mine
    for r in range(lo, hi):
        if mark[r]:
            rows[pos] = r
            pos += 1
    if tid == 0:
        count[0] = total

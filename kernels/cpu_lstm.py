"""Numba CPU kernels of the LSTM's recurrence: `lstm_forward` and `lstm_backward`,
the same names and arguments as in `kernels/reference.py` (read those first).

Each is one jitted call over all T steps of the batch: a Python loop over steps
would pay the interpreter and a dispatch per step and per kernel (at one sentence
of 25 words, more than the arithmetic). Inside:
- the recurrent product z += h W_hh^T is written out (no BLAS inside Numba without
  SciPy): 4 rows of W_hh times 4 sequences per pass (16 running sums; `reassoc`
  lets LLVM keep them in vector registers), as fast as OpenBLAS's sgemm here at 32
  sentences; one sequence is a matrix-vector product, bound by reading W_hh. It
  skips the sequences that have ended;
- the gates' nonlinearities use a vectorizing float32 tanh (below);
- meProp's selection at each step is `_select`, the kernel `topk_rows` runs on each
  row (the same tie rule, the same result);
- dh_prev = dz_kept W_hh combines the k kept rows of W_hh (`_combo`); dense, all 4H
  rows, two sequences per pass (`_combo2`);
- dW_hh, meProp: each kept entry adds dz h_prev to its row (k H per sequence and
  step), the union of rows zeroed first; dense: one BLAS product after the loop.
"""
import numpy as np
from numba import njit, types
from numba.extending import overload

from .cpu import _col_abs_sums, _combo, _combo2, _select

_MODES = {"dense": 0, "topk": 1, "unified": 2, "random": 3}
_FAST = {"reassoc", "contract"}    # sums of products in any order: within float tolerance


@njit(cache=True, fastmath=_FAST)
def _dot4x4(z, W, h, r, b0, b1, b2, b3, zero):
    """z[b, r:r+4] += W[r:r+4] h[b] for the 4 sequences b0..b3: 16 running sums, so
    each loaded number of W serves 4 sequences and each of h 4 rows. zero: a 0 of
    W's dtype (a literal 0.0 would make float32 sums float64: 2x slower)."""
    w0, w1, w2, w3 = W[r], W[r + 1], W[r + 2], W[r + 3]
    x0, x1, x2, x3 = h[b0], h[b1], h[b2], h[b3]
    s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = zero
    s20 = s21 = s22 = s23 = s30 = s31 = s32 = s33 = zero
    for i in range(W.shape[1]):
        a, b, c, d = w0[i], w1[i], w2[i], w3[i]
        e = x0[i]
        s00, s01, s02, s03 = s00 + a * e, s01 + b * e, s02 + c * e, s03 + d * e
        e = x1[i]
        s10, s11, s12, s13 = s10 + a * e, s11 + b * e, s12 + c * e, s13 + d * e
        e = x2[i]
        s20, s21, s22, s23 = s20 + a * e, s21 + b * e, s22 + c * e, s23 + d * e
        e = x3[i]
        s30, s31, s32, s33 = s30 + a * e, s31 + b * e, s32 + c * e, s33 + d * e
    _add4(z[b0], r, s00, s01, s02, s03)
    _add4(z[b1], r, s10, s11, s12, s13)
    _add4(z[b2], r, s20, s21, s22, s23)
    _add4(z[b3], r, s30, s31, s32, s33)


@njit(cache=True, fastmath=_FAST)
def _dot4x1(z, W, h, r, b, zero):
    """z[b, r:r+4] += W[r:r+4] h[b]: one sequence (a matrix-vector product, bound by
    reading W: 4 MB a step at H = 500)."""
    w0, w1, w2, w3, x = W[r], W[r + 1], W[r + 2], W[r + 3], h[b]
    s0 = s1 = s2 = s3 = zero
    for i in range(W.shape[1]):
        e = x[i]
        s0, s1, s2, s3 = s0 + w0[i] * e, s1 + w1[i] * e, s2 + w2[i] * e, s3 + w3[i] * e
    _add4(z[b], r, s0, s1, s2, s3)


@njit(cache=True, inline="always")
def _add4(zb, r, s0, s1, s2, s3):
    zb[r] += s0
    zb[r + 1] += s1
    zb[r + 2] += s2
    zb[r + 3] += s3


@njit(cache=True)
def _add_recurrent(z, h, W, live, n):
    """z[b] += W h[b] for the n sequences b in live[:n]. z: (B, 4H); h: (B, H); W: (4H, H)."""
    zero = np.zeros(1, W.dtype)[0]
    for r in range(0, W.shape[0], 4):                # 4H: always a multiple of 4
        for q in range(0, n - 3, 4):
            _dot4x4(z, W, h, r, live[q], live[q + 1], live[q + 2], live[q + 3], zero)
        for q in range(n - n % 4, n):
            _dot4x1(z, W, h, r, live[q], zero)


@njit(cache=True)
def _live_list(live, lengths, t):
    """live[:n] = the sequences with t < lengths[b], ascending; returns n."""
    n = 0
    for b in range(lengths.shape[0]):
        if t < lengths[b]:
            live[n] = b
            n += 1
    return n


# tanh in float32: a rational function x P(u) / Q(u), u = (x / 9)^2, on x clamped to
# [-9, 9] (beyond, tanh is 1 in float32), and the result to [-1, 1]. Unlike libm's tanh (a call per number,
# about 20 ns) it vectorizes: the gates' five tanh per unit cost more than the
# recurrent product at 32 sentences before. Fitted by benchmarks/fit_tanh.py; max
# error 4e-7 (float32 arithmetic; np.tanh's own is 6e-8); tests/test_lstm_kernels.py
# checks it. float64 (gradient checks) keeps np.tanh.
_TANH_P = tuple(np.float32(a) for a in (
    0.99999999, 10.60575339, 20.4348035, 5.98689091, -0.88995708, 0.19152319, -0.02552168))
_TANH_Q = tuple(np.float32(a) for a in (1.0, 37.60574815, 160.99056955, 136.13513017))
_P0, _P1, _P2, _P3, _P4, _P5, _P6 = _TANH_P
_Q0, _Q1, _Q2, _Q3 = _TANH_Q
_CLAMP, _INV_C2 = np.float32(9.0), np.float32(1.0 / 81.0)


def tanh(x):
    """np.tanh(x); under Numba, for a float32 x, the rational approximation above."""
    return np.tanh(x)


@overload(tanh, inline="always")
def _tanh_typed(x):
    if isinstance(x, types.Float) and x.bitwidth == 32:
        def tanh32(x):
            x = min(max(x, -_CLAMP), _CLAMP)
            u = x * x * _INV_C2
            p = _P0 + u * (_P1 + u * (_P2 + u * (_P3 + u * (_P4 + u * (_P5 + u * _P6)))))
            r = x * p / (_Q0 + u * (_Q1 + u * (_Q2 + u * _Q3)))
            return min(max(r, -_ONE), _ONE)           # |tanh| <= 1 also after rounding
        return tanh32
    return lambda x: np.tanh(x)


_HALF, _ONE = np.float32(0.5), np.float32(1.0)   # float32 constants keep float32 math float32


@njit(cache=True, inline="always")
def _sigmoid(z):
    """1 / (1 + exp(-z)) through tanh, in z's dtype (float32 halves keep it float32)."""
    return _HALF + _HALF * tanh(_HALF * z)


# error_model="numpy": a float division by zero gives inf, as in NumPy, instead of
# raising; without it Numba checks every division and no loop with one vectorizes
# (the tanh above: 8x slower).
@njit(cache=True, error_model="numpy", fastmath={"contract"})
def _cell(G, c_new, h_new, z, c_prev):
    """One sequence, one step: G (4H,) out = the gates; c_new, h_new (H,) out; z (4H,)
    the pre-activations; c_prev (H,). A function of its own over 1-D rows, not inlined:
    so LLVM sees five separate arrays and vectorizes (inlined: 8x slower)."""
    H = c_prev.shape[0]
    for u in range(H):
        i, f = _sigmoid(z[u]), _sigmoid(z[H + u])
        g, o = tanh(z[2 * H + u]), _sigmoid(z[3 * H + u])
        c = f * c_prev[u] + i * g
        c_new[u] = c
        h_new[u] = o * tanh(c)
        G[u], G[H + u], G[2 * H + u], G[3 * H + u] = i, f, g, o


@njit(cache=True)
def lstm_forward(Hs, Cs, Gs, Zx, W_hh, lengths):
    """As reference.lstm_forward. Hs, Cs: (T+1, B, H) in/out; Gs: (T, B, 4H) out;
    Zx: (T, B, 4H); W_hh: (4H, H); lengths: (B,) int32 in [1, T]."""
    T, B, H4 = Zx.shape
    z = np.empty((B, H4), Zx.dtype)
    live = np.empty(B, np.int64)
    for t in range(T):
        n = _live_list(live, lengths, t)
        for q in range(n):
            z[live[q]] = Zx[t, live[q]]
        _add_recurrent(z, Hs[t], W_hh, live, n)
        for b in range(B):
            if t >= lengths[b]:                      # padded: the state stays
                Hs[t + 1, b] = Hs[t, b]
                Cs[t + 1, b] = Cs[t, b]
                Gs[t, b] = 0
                continue
            _cell(Gs[t, b], Cs[t + 1, b], Hs[t + 1, b], z[b], Cs[t, b])


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def _gate_grads(dz, dh, dc, G, c_prev, c):
    """One sequence, one step: dz (4H,) out; dc (H,) in/out: + dh o (1 - tanh(c)^2)."""
    H = dh.shape[0]
    for u in range(H):
        i, f, g, o = G[u], G[H + u], G[2 * H + u], G[3 * H + u]
        tc = tanh(c[u])
        d = dc[u] + dh[u] * o * (_ONE - tc * tc)
        dc[u] = d
        dz[u] = d * g * i * (_ONE - i)
        dz[H + u] = d * c_prev[u] * f * (_ONE - f)
        dz[2 * H + u] = d * i * (_ONE - g * g)
        dz[3 * H + u] = dh[u] * tc * o * (_ONE - o)


@njit(cache=True)
def _select_parts(out, a, k, parts, key, cand, vals):
    """out: (parts k,) the top-k of each of `parts` equal blocks of a, as unit indices
    of a (block q's k indices + q n / parts); parts is 1 or 4 (per gate)."""
    n = a.shape[0] // parts
    for q in range(parts):
        o = out[q * k:(q + 1) * k]
        _select(o, a[q * n:(q + 1) * n], k, key, cand, vals)
        for j in range(k):
            o[j] += q * n


@njit(cache=True)
def _lstm_backward(dZ, dW_hh, sel, dHs, Hs, Cs, Gs, W_hh, lengths, mode, parts):
    """The loop of lstm_backward; mode as _MODES. sel: (T, B, kk) or (T, 1, kk) unified."""
    T, B, H4 = dZ.shape
    H = H4 // 4
    kk = sel.shape[2]
    k = kk // parts
    dh, dc, nxt = np.zeros((B, H), dZ.dtype), np.zeros((B, H), dZ.dtype), np.zeros((B, H), dZ.dtype)
    live = np.empty(B, np.int64)
    key, cand, vals = np.empty(H4, dZ.dtype), np.empty(H4, np.int32), np.empty(H4, dZ.dtype)
    colsum, ckey, cvals = np.empty(H4, np.float64), np.empty(H4, np.float64), np.empty(H4, np.float64)
    coef = np.empty(kk, dZ.dtype)
    every = np.arange(H4).astype(np.int32)
    for t in range(T - 1, -1, -1):
        n = _live_list(live, lengths, t)
        for b in range(B):
            if t >= lengths[b]:
                dZ[t, b] = 0
                if mode != 2 and mode != 0:
                    sel[t, b] = -1
                continue
            for u in range(H):
                dh[b, u] += dHs[t, b, u]
            _gate_grads(dZ[t, b], dh[b], dc[b], Gs[t, b], Cs[t, b], Cs[t + 1, b])
        if mode == 1:
            for q in range(n):
                _select_parts(sel[t, live[q]], dZ[t, live[q]], k, parts, key, cand, vals)
        elif mode == 2:
            if n == 0:
                sel[t, 0] = -1
            else:
                _col_abs_sums(colsum, dZ[t][live[:n]], 0, H4)
                _select_parts(sel[t, 0], colsum, k, parts, ckey, cand, cvals)
        if mode == 0:                                 # dense: all 4H rows, two sequences a pass
            for q in range(0, n - 1, 2):
                _combo2(nxt[live[q]], nxt[live[q + 1]], W_hh, every, dZ[t, live[q]], dZ[t, live[q + 1]])
            if n % 2:
                _combo(nxt[live[n - 1]], W_hh, every, dZ[t, live[n - 1]], 0, H4)
        else:                                         # meProp: the kept rows of W_hh only
            for q in range(n):
                b = live[q]
                s = sel[t, 0] if mode == 2 else sel[t, b]
                for j in range(kk):
                    coef[j] = dZ[t, b, s[j]]
                _combo(nxt[b], W_hh, s, coef, 0, kk)
        for b in range(B):
            if t >= lengths[b]:
                continue                               # dh, dc stay 0 before a sequence's end
            for u in range(H):
                dh[b, u] = nxt[b, u]
                dc[b, u] *= Gs[t, b, H + u]
    if mode != 0:
        _sparse_dW(dW_hh, sel, dZ, Hs, lengths, mode == 2)


@njit(cache=True, fastmath={"contract"})
def _sparse_dW(dW, sel, dZ, Hs, lengths, unified):
    """dW[r] = sum over the (t, b) that kept unit r of dZ[t, b, r] Hs[t, b]; the union
    of the kept rows is zeroed first, no other row is touched."""
    T, B, _ = dZ.shape
    for t in range(T):
        for b in range(B):
            if t < lengths[b]:
                for r in sel[t, 0] if unified else sel[t, b]:
                    dW[r] = 0
    for t in range(T):
        for b in range(B):
            if t < lengths[b]:
                for r in sel[t, 0] if unified else sel[t, b]:
                    v, x, w = dZ[t, b, r], Hs[t, b], dW[r]
                    for i in range(w.shape[0]):
                        w[i] += v * x[i]


def lstm_backward(dZ, dW_hh, sel, dHs, Hs, Cs, Gs, W_hh, lengths, mode, per_gate):
    """As reference.lstm_backward (same arguments); one jitted call for all steps,
    then, dense, dW_hh = dZ^T h_prev over all steps as one BLAS product."""
    T, B, H4 = dZ.shape
    code = _MODES[mode]
    if code == 0:
        sel = np.empty((T, B, 1), np.int32)            # unused
    elif code == 2:
        sel = sel.reshape(T, 1, -1)                    # (T, kk): one row for the batch
    _lstm_backward(dZ, dW_hh, sel, dHs, Hs, Cs, Gs, W_hh, lengths, code, 4 if per_gate else 1)
    if code == 0:
        np.matmul(dZ.reshape(T * B, H4).T, Hs[:-1].reshape(T * B, -1), out=dW_hh)

"""The LSTM recurrence kernels of every CPU backend against kernels/reference.py, on
fresh random inputs of many shapes: B = 1, T = 1, odd sizes, k = 1 and k = 4H,
lengths of 1 and of T."""
import numpy as np
import pytest

import sparsebp as sb
from sparsebp import kernels
from conftest import assert_close

R = kernels.get("numpy")

# (B, T, H, lengths or None for all T)
SHAPES = [(1, 1, 1, None), (1, 5, 3, None), (2, 1, 4, None), (3, 4, 5, [4, 1, 2]),
          (5, 7, 9, [1, 7, 3, 7, 2]), (4, 6, 2, [1, 1, 1, 1])]


def inputs(B, T, H, lengths, dtype, seed):
    rng = np.random.default_rng(seed)
    Zx = rng.standard_normal((T, B, 4 * H)).astype(dtype)
    W = (rng.standard_normal((4 * H, H)) / np.sqrt(H)).astype(dtype)
    h0 = rng.standard_normal((B, H)).astype(dtype)             # a nonzero initial state
    ln = np.full(B, T, np.int32) if lengths is None else np.array(lengths, np.int32)
    return Zx, W, h0, ln


def forward(K, Zx, W, h0, ln):
    T, B, H4 = Zx.shape
    Hs, Cs = np.zeros((T + 1, B, H4 // 4), Zx.dtype), np.zeros((T + 1, B, H4 // 4), Zx.dtype)
    Hs[0], Cs[0] = h0, h0 / 2
    Gs = np.full((T, B, H4), np.nan, Zx.dtype)
    K.lstm_forward(Hs, Cs, Gs, Zx, W, ln)
    return Hs, Cs, Gs


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("B,T,H,lengths", SHAPES)
def test_lstm_forward_matches_reference(host_backend, B, T, H, lengths, dtype):
    Zx, W, h0, ln = inputs(B, T, H, lengths, dtype, B * 7 + T)
    tol = dict(atol=1e-5, rtol=1e-5) if dtype == np.float32 else dict(atol=1e-12, rtol=1e-12)
    for got, want in zip(forward(sb.backend.K(), Zx, W, h0, ln), forward(R, Zx, W, h0, ln)):
        assert_close(got, want, **tol)


MODES = [("dense", None, False), ("topk", 1, False), ("topk", 3, False), ("topk", "all", False),
         ("unified", 1, False), ("unified", 2, False), ("unified", "all", False),
         ("random", 2, False), ("topk", 1, True), ("unified", 1, True), ("random", 1, True)]


@pytest.mark.parametrize("mode,k,per_gate", MODES)
@pytest.mark.parametrize("B,T,H,lengths", SHAPES)
def test_lstm_backward_matches_reference(host_backend, B, T, H, lengths, mode, k, per_gate):
    dtype = np.float64                 # exact selections: no near-ties between backends
    Zx, W, h0, ln = inputs(B, T, H, lengths, dtype, B * 11 + T)
    Hs, Cs, Gs = forward(R, Zx, W, h0, ln)
    rng = np.random.default_rng(3)
    dHs = rng.standard_normal((T, B, H))
    kk = 4 * H if k == "all" else (None if k is None else (4 * k if per_gate else k))
    if mode == "dense":
        sel0 = np.empty((0, 0, 0), np.int32)
    elif mode == "unified":
        sel0 = np.full((T, kk), 99, np.int32)
    else:
        sel0 = np.full((T, B, kk), -1, np.int32)
        if mode == "random":                             # drawn before: the kernel reads it
            for t in range(T):
                for b in range(B):
                    if t < ln[b]:
                        parts = 4 if per_gate else 1
                        n = 4 * H // parts
                        sel0[t, b] = np.concatenate(
                            [np.sort(rng.choice(n, kk // parts, replace=False)) + q * n
                             for q in range(parts)])
    out = {}
    for name, K in [("ref", R), ("got", sb.backend.K())]:
        dZ = np.full((T, B, 4 * H), np.nan)
        dW = np.full((4 * H, H), 7.0)
        sel = sel0.copy()
        K.lstm_backward(dZ, dW, sel, dHs, Hs, Cs, Gs, W, ln, mode, per_gate)
        out[name] = dZ, dW, sel
    (dZ, dW, sel), (dZr, dWr, selr) = out["got"], out["ref"]
    assert np.array_equal(sel, selr)
    assert_close(dZ, dZr, 1e-12, 1e-10)
    assert_close(dW, dWr, 1e-12, 1e-10)                 # untouched rows stay 7 in both
    live = np.arange(T)[:, None] < ln[None, :]
    assert (dZ[~live] == 0).all()
    if mode != "dense":
        untouched = np.setdiff1d(np.arange(4 * H), sel[sel >= 0])
        assert (dW[untouched] == 7.0).all()
        if mode != "unified":
            assert (sel[~live] == -1).all() and (sel[live] >= 0).all()


def test_lstm_backward_float32_matches_reference(host_backend):
    Zx, W, h0, ln = inputs(6, 9, 20, [9, 3, 1, 9, 5, 8], np.float32, 1)
    Hs, Cs, Gs = forward(R, Zx, W, h0, ln)
    dHs = np.random.default_rng(4).standard_normal((9, 6, 20)).astype(np.float32)
    for mode in ("dense", "topk"):
        res = []
        for K in (R, sb.backend.K()):
            dZ, dW = np.zeros((9, 6, 80), np.float32), np.zeros((80, 20), np.float32)
            sel = np.empty((0, 0, 0) if mode == "dense" else (9, 6, 5), np.int32)
            K.lstm_backward(dZ, dW, sel, dHs, Hs, Cs, Gs, W, ln, mode, False)
            res.append((dZ, dW, sel))
        assert np.array_equal(res[0][2], res[1][2])
        assert_close(res[1][0], res[0][0], 1e-5, 1e-4)
        assert_close(res[1][1], res[0][1], 1e-5, 1e-4)


def test_cpu_float32_tanh_is_within_4e7_of_tanh():
    """kernels/cpu_lstm.py's float32 tanh (a fitted rational function: it vectorizes)."""
    import sys
    from numba import njit
    kernels.get("cpu")
    tanh = sys.modules["sparsebp.kernels.cpu_lstm"].tanh

    @njit(error_model="numpy")
    def apply(out, x):
        for i in range(x.shape[0]):
            out[i] = tanh(x[i])
    x = np.concatenate([np.linspace(-12, 12, 200001), [0.0, 1e-30, -1e-20, 9.0, 1e4, -1e30]])
    x = x.astype(np.float32)
    out = np.empty_like(x)
    apply(out, x)
    assert_close(out, np.tanh(x.astype(np.float64)), 4e-7, 0)
    assert np.abs(out).max() <= 1.0 and out[-6:-3].tolist() == [0.0, np.float32(1e-30), np.float32(-1e-20)]
    out64 = np.empty(x.shape, np.float64)
    apply(out64, x.astype(np.float64))                 # float64: libm's tanh
    assert_close(out64, np.tanh(x.astype(np.float64)), 1e-15, 1e-15)

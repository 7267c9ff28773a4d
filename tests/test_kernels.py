"""Every kernel of every backend against the NumPy reference or an independent oracle.

Each test takes the `backend` fixture (conftest.py): numpy (the reference, checked
against the oracles too), cpu (Numba) and cuda (Numba's simulator in CI). Inputs go
in through `kern.to_device`, results come out through `host`; cases marked `big`
are left out on cuda. What only the CPU or the CUDA kernels have (threads, the JIT
switched off; scratch buffers, launches, the GEMM) is tested at the end of this file
and in test_cuda.py.
"""
import inspect

import numpy as np
import pytest

from sparsebp import kernels
from conftest import assert_close, host

R = kernels.get("numpy")
C = kernels.get("cpu")
BIG = pytest.mark.big

# (B, n, k): batch 1, k = 1, k = n, odd sizes, rows longer than a simulator block, the MNIST shape
SHAPES = [(1, 1, 1), (1, 7, 1), (1, 7, 7), (3, 13, 4), (7, 13, 13), (2, 40, 9),
          pytest.param(5, 64, 1, marks=BIG), pytest.param(50, 500, 20, marks=BIG),
          pytest.param(4, 33, 32, marks=BIG), pytest.param(2, 1000, 80, marks=BIG)]


def _dy(rng, B, n, dtype=np.float32):
    return rng.standard_normal((B, n)).astype(dtype)


def _topk_by_sort(a, k):
    """An independent oracle: stable sort on -|a| keeps lower indices first among ties."""
    return np.sort(np.argsort(-np.abs(a), kind="stable")[:k])


def _selections(kern, dy, k):
    """(per-example (B, k), unified (k,)) selections of dy by kern, as host arrays."""
    idx, u = kern.empty((dy.shape[0], k), np.int32), kern.empty((k,), np.int32)
    kern.topk_rows(idx, kern.to_device(dy), k)
    kern.topk_unified(u, kern.to_device(dy), k)
    return host(idx), host(u)


# ---------------------------------------------------------------- arrays
def test_arrays_move_between_host_and_device(kern):
    a = np.arange(24, dtype=np.float32).reshape(4, 6)[:, ::2]        # (4, 3), strided
    d = kern.to_device(a)
    assert kern.to_device(d) is d                                    # already there: as is
    assert np.array_equal(host(kern.to_host(d)), a) and host(kern.to_host(d)).flags.c_contiguous
    z = kern.zeros((2, 3), np.int64)
    assert host(z).dtype == np.int64 and not host(z).any()
    assert kern.empty((5,), np.int32).shape == (5,) and kern.empty((2, 2)).dtype == np.float32


# ---------------------------------------------------------------- selection
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("B,n,k", SHAPES)
def test_topk_rows_and_unified_match_sort_oracle(kern, B, n, k, dtype):
    dy = _dy(np.random.default_rng(B * 1000 + n + k), B, n, dtype)
    buf = kern.to_device(np.full((B + 1, k), -1, np.int32))
    kern.topk_rows(buf[:B], kern.to_device(dy), k)            # the row after must stay untouched
    got = host(buf)
    for b in range(B):
        assert np.array_equal(got[b], _topk_by_sort(dy[b], k))
    assert (got[B] == -1).all()
    u = kern.empty((k,), np.int32)
    kern.topk_unified(u, kern.to_device(dy), k)
    assert np.array_equal(host(u), _topk_by_sort(np.abs(dy).sum(0, dtype=np.float64), k))


def test_topk_tie_rule_lower_index_wins(kern):
    idx = kern.empty((1, 2), np.int32)
    kern.topk_rows(idx, np.array([[1, 2, 3, -4]], np.float32), 2)   # the paper's top_2 example
    assert host(idx).tolist() == [[2, 3]]
    dy = np.array([[1, -1, 3, -3, 3, 2, 0, -0.0]], np.float32)
    for k, want in [(2, [2, 3]), (4, [2, 3, 4, 5]), (5, [0, 2, 3, 4, 5]), (7, [0, 1, 2, 3, 4, 5, 6])]:
        idx = kern.empty((1, k), np.int32)
        kern.topk_rows(idx, dy, k)
        assert host(idx)[0].tolist() == want
    idx = kern.empty((2, 3), np.int32)
    kern.topk_rows(idx, np.zeros((2, 9), np.float64), 3)
    assert host(idx).tolist() == [[0, 1, 2]] * 2
    u = kern.empty((2,), np.int32)
    kern.topk_unified(u, np.array([[1, 0, 2, 0], [1, 2, 0, 0]], np.float32), 2)
    assert host(u).tolist() == [0, 1]    # three columns sum to 2: the two lowest indices


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_topk_with_many_ties_and_special_values(kern, dtype):
    """Integers in [-3, 3] tie everywhere; +-0, +-inf and subnormals order as |value|."""
    rng = np.random.default_rng(11)
    tiny = np.finfo(dtype).smallest_subnormal
    for dy in [rng.integers(-3, 4, (3, 29)).astype(dtype),
               rng.choice(np.array([0.0, -0.0, np.inf, -np.inf, 1.5, -1.5, tiny, -2 * tiny], dtype),
                          (2, 31))]:
        for k in (1, 6, dy.shape[1]):
            want, wu = np.empty((len(dy), k), np.int32), np.empty(k, np.int32)
            R.topk_rows(want, dy, k)
            R.topk_unified(wu, dy.astype(np.float64), k)
            got, gu = _selections(kern, dy, k)
            assert np.array_equal(got, want) and np.array_equal(gu, wu)


def test_topk_on_noncontiguous_host_input(kern):
    dy = _dy(np.random.default_rng(3), 10, 40)[::2, 1::3]       # (5, 13), strided both ways
    got, gu = _selections(kern, dy, 4)
    for b in range(5):
        assert np.array_equal(got[b], _topk_by_sort(dy[b], 4))
    assert np.array_equal(gu, _topk_by_sort(np.abs(dy).sum(0, dtype=np.float64), 4))


@pytest.mark.parametrize("B,n,k", SHAPES)
def test_union_rows_and_zero_unselected(kern, B, n, k):
    rng = np.random.default_rng(n + k)
    idx = np.sort(np.argsort(rng.random((B, n)), axis=1)[:, :k], axis=1).astype(np.int32)
    rows = kern.union_rows(kern.to_device(idx), n)
    assert rows.dtype == np.int32 and np.array_equal(host(rows), np.unique(idx))
    g = _dy(rng, n, 3)
    got = kern.to_device(g.copy())
    kern.zero_unselected(got, rows)
    keep = np.unique(idx)
    assert np.array_equal(host(got)[keep], g[keep])
    assert (np.delete(host(got), keep, axis=0) == 0).all()


# ---------------------------------------------------------------- linear layer
def _backward_case(rng, B, n_out, n_in, dtype=np.float32):
    return (_dy(rng, B, n_out, dtype), rng.standard_normal((B, n_in)).astype(dtype),
            rng.standard_normal((n_out, n_in)).astype(dtype))


@pytest.mark.parametrize("dtype,tol", [(np.float32, 1e-5), (np.float64, 1e-12)])
@pytest.mark.parametrize("B,n_in,n_out", [(1, 1, 1), (3, 19, 10), (7, 13, 5), (13, 9, 17)])
def test_dense_products_and_bias(kern, B, n_in, n_out, dtype, tol):
    rng = np.random.default_rng(B + n_in + n_out)
    dy, x, W = _backward_case(rng, B, n_out, n_in, dtype)
    b = rng.standard_normal(n_out).astype(dtype)
    y, want = kern.empty((B, n_out), dtype), np.empty((B, n_out), dtype)
    R.linear_forward(want, x, W, b)
    kern.linear_forward(y, x, kern.to_device(W), kern.to_device(b))      # x from the host
    assert_close(host(y), want, tol, tol)
    dx, dW, db = kern.empty((B, n_in), dtype), kern.empty((n_out, n_in), dtype), kern.empty((n_out,), dtype)
    kern.dense_backward(dx, dW, kern.to_device(dy), kern.to_device(x), kern.to_device(W))
    kern.bias_grad(db, kern.to_device(dy))
    for got, ref in [(dx, dy @ W), (dW, dy.T @ x), (db, dy.sum(0))]:
        assert_close(host(got), ref, 4 * tol, 4 * tol)
    dx, dW, db = kern.empty((B, n_in), dtype), kern.empty((n_out, n_in), dtype), kern.empty((n_out,), dtype)
    kern.dense_backward(dx, dW, kern.to_device(dy), kern.to_device(x), kern.to_device(W), db)   # db with dW
    for got, ref in [(dx, dy @ W), (dW, dy.T @ x), (db, dy.sum(0))]:
        assert_close(host(got), ref, 4 * tol, 4 * tol)


@pytest.mark.parametrize("act", ["relu", "tanh"])
@pytest.mark.parametrize("B,n_in,n_out", [(1, 1, 1), (3, 19, 10), (7, 13, 5)])
def test_linear_forward_with_a_fused_activation(kern, B, n_in, n_out, act):
    """y = act(x W^T + b) in one call, against an independent oracle."""
    rng = np.random.default_rng(B * n_in + n_out)
    x, W, b = _dy(rng, B, n_in), _dy(rng, n_out, n_in), _dy(rng, 1, n_out)[0]
    y = kern.empty((B, n_out))
    kern.linear_forward(y, kern.to_device(x), kern.to_device(W), kern.to_device(b), act)
    z = x.astype(np.float64) @ W.T + b
    assert_close(host(y), np.maximum(z, 0) if act == "relu" else np.tanh(z), 1e-5, 1e-5)


@pytest.mark.parametrize("act", [None, "relu", "tanh"])
@pytest.mark.parametrize("want", ["bias", "unified", "both"])
@pytest.mark.parametrize("B,n,k", [(1, 1, 1), (3, 13, 4), (6, 21, 21), (2, 40, 9)])
def test_prepare_dy(kern, B, n, k, act, want):
    """The activation's derivative, the bias sums and the unified selection of one pass
    over dy, against the reference's kernels called one after another."""
    rng = np.random.default_rng(B + n + k)
    dy, z = _dy(rng, B, n), _dy(rng, B, n)
    y = np.maximum(z, 0) if act == "relu" else np.tanh(z)
    g_ref = dy.copy()
    if act is not None:
        getattr(R, f"{act}_backward")(g_ref, dy, y)
    g = kern.empty((B, n)) if act is not None else None
    db = kern.empty((n,)) if want != "unified" else None
    idx = kern.empty((k,), np.int32) if want != "bias" else None
    kern.prepare_dy(g, db, idx, kern.to_device(dy), kern.to_device(y) if act else None, act, k)
    if act is not None:
        assert_close(host(g), g_ref, 1e-6, 1e-6)
    if db is not None:
        assert_close(host(db), g_ref.astype(np.float64).sum(0), 1e-5, 1e-5)
    if idx is not None:
        u = np.empty(k, np.int32)
        R.topk_unified(u, g_ref.astype(np.float64), k)
        assert np.array_equal(host(idx), u)


def test_softmax_xent_is_the_forward_and_backward_pair(kern):
    """The loss and its gradient of one call equal the two kernels' (the reference's)."""
    rng = np.random.default_rng(9)
    logits, labels = _dy(rng, 5, 7), rng.integers(0, 7, 5)
    probs, d_ref = np.empty((5, 7), np.float32), np.empty((5, 7), np.float32)
    l_ref = R.softmax_xent_forward(probs, logits, labels)
    R.softmax_xent_backward(d_ref, probs, labels)
    d, loss = kern.empty((5, 7)), kern.zeros((1,), np.float64)
    kern.softmax_xent(d, loss, kern.to_device(logits), kern.to_device(labels))
    assert_close(host(d), d_ref, 1e-6, 1e-5)
    assert_close(host(loss)[0], l_ref, 0, 1e-6)


@pytest.mark.parametrize("N,d,B", [(1, 1, 1), (9, 5, 4), (6, 13, 6)])
def test_gather_rows(kern, N, d, B):
    """A minibatch of a data set kept in the backend's memory: x = X[ids], y = Y[ids]."""
    rng = np.random.default_rng(N + d + B)
    X, Y, ids = _dy(rng, N, d), rng.integers(0, 10, N).astype(np.int64), rng.integers(0, N, B)
    x, y = kern.empty((B, d)), kern.empty((B,), np.int64)
    kern.gather_rows(x, y, kern.to_device(X), kern.to_device(Y), kern.to_device(ids))
    assert np.array_equal(host(x), X[ids]) and np.array_equal(host(y), Y[ids])


def test_linear_forward_on_noncontiguous_host_input(kern):
    rng = np.random.default_rng(5)
    x = _dy(rng, 6, 22)[::2, ::2]                                  # (3, 11), strided
    W, b = _dy(rng, 5, 11), _dy(rng, 1, 5)[0]
    y = kern.empty((3, 5))
    kern.linear_forward(y, x, kern.to_device(W), kern.to_device(b))
    assert_close(host(y), x @ W.T + b)


def _masked(dy, idx):
    m = np.zeros_like(dy)
    if idx.ndim == 1:
        m[:, idx] = dy[:, idx]
    else:
        np.put_along_axis(m, idx, np.take_along_axis(dy, idx, 1), 1)
    return m


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("B,n_out,k", SHAPES)
def test_sparse_backward_matches_the_masked_dense_backward(kern, B, n_out, k, dtype):
    """The definition: a dense backward of dy with only the kept entries; dW's other
    rows are not written (they keep the sentinel 7), dx is written whole (from NaN)."""
    rng = np.random.default_rng(B + n_out + k)
    n_in = 1 + (n_out * 3) % 17
    dy, x, W = _backward_case(rng, B, n_out, n_in, dtype)
    idx, u = np.empty((B, k), np.int32), np.empty(k, np.int32)
    R.topk_rows(idx, dy, k)
    R.topk_unified(u, dy, k)
    tol = dict(atol=1e-4, rtol=1e-4) if dtype == np.float32 else dict(atol=1e-10, rtol=1e-10)
    for fn, sel in [("topk_backward", idx), ("unified_backward", u)]:
        rows, masked = np.unique(sel), _masked(dy, sel)
        dx = kern.to_device(np.full((B, n_in), np.nan, dtype))
        dW = kern.to_device(np.full((n_out, n_in), 7.0, dtype))
        getattr(kern, fn)(dx, dW, kern.to_device(dy), kern.to_device(x), kern.to_device(W),
                          kern.to_device(sel))
        assert_close(host(dx), masked @ W, **tol)
        assert_close(host(dW)[rows], (masked.T @ x)[rows], **tol)
        assert (np.delete(host(dW), rows, axis=0) == 7.0).all(), fn


def test_backward_with_k_equal_n_is_dense(kern):
    rng = np.random.default_rng(11)
    dy, x, W = _backward_case(rng, 6, 9, 5, np.float64)
    d = [kern.to_device(a) for a in (dy, x, W)]
    everything = np.arange(9, dtype=np.int32)
    for fn, sel in [("topk_backward", np.tile(everything, (6, 1))), ("unified_backward", everything)]:
        dx, dW = kern.empty((6, 5), np.float64), kern.empty((9, 5), np.float64)
        getattr(kern, fn)(dx, dW, *d, kern.to_device(sel))
        assert_close(host(dx), dy @ W, 1e-12, 1e-12)
        assert_close(host(dW), dy.T @ x, 1e-12, 1e-12)


# ---------------------------------------------------------------- optimizers
def _opt_case(rng, dtype, n_rows=11, n_cols=6):
    W = rng.standard_normal((n_rows, n_cols)).astype(dtype)
    G = (3 * rng.standard_normal((n_rows, n_cols))).astype(dtype)
    rows = np.sort(rng.choice(n_rows, 4, replace=False)).astype(np.int32)
    return W, G, rows


@pytest.mark.parametrize("clip,dtype", [(0.0, np.float32), (1.0, np.float32), (0.5, np.float64)])
def test_optimizer_kernels_match_reference(kern, clip, dtype):
    rng = np.random.default_rng(5)
    W0, G, rows = _opt_case(rng, dtype)
    hst = dict(W=W0.copy(), M=np.zeros_like(W0), V=np.zeros_like(W0), T=np.zeros(11, np.int64),
               H=np.full_like(W0, 0.5))
    dev = {n: kern.to_device(a.copy()) for n, a in hst.items()}
    g = kern.to_device(G)
    for step in range(3):
        sel = rows if step != 1 else rows[:2]              # a row skipped once: its own count
        R.adam_rows(hst["W"], hst["M"], hst["V"], hst["T"], G, sel, 1e-2, 0.9, 0.999, 1e-8, clip)
        kern.adam_rows(dev["W"], dev["M"], dev["V"], dev["T"], g, kern.to_device(sel), 1e-2, 0.9,
                       0.999, 1e-8, clip)
    R.adagrad_rows(hst["W"], hst["H"], G, rows, 0.1, 1e-6, clip)
    kern.adagrad_rows(dev["W"], dev["H"], g, kern.to_device(rows), 0.1, 1e-6, clip)
    R.sgd_rows(hst["W"], G, rows, 0.1, clip)
    kern.sgd_rows(dev["W"], g, kern.to_device(rows), 0.1, clip)
    for n, a in hst.items():
        assert_close(host(dev[n]), a, 1e-6, 1e-5)
    others = np.setdiff1d(np.arange(11), rows)
    assert np.array_equal(host(dev["W"])[others], W0[others])           # bit-identical
    assert not host(dev["M"])[others].any() and not host(dev["T"])[others].any()


def test_optimizer_kernels_leave_other_rows_bit_identical(kern):
    rng = np.random.default_rng(9)
    W, G, rows = _opt_case(rng, np.float32)
    others = np.setdiff1d(np.arange(W.shape[0]), rows)
    before = [W, rng.random(W.shape, np.float32), rng.random(W.shape, np.float32), np.ones_like(W),
              np.arange(W.shape[0], dtype=np.int64)]
    w, m, v, h, t = (kern.to_device(a.copy()) for a in before)
    g, r = kern.to_device(G), kern.to_device(rows)
    kern.adam_rows(w, m, v, t, g, r, 1e-3, 0.9, 0.999, 1e-8, 5.0)
    kern.adagrad_rows(w, h, g, r, 0.1, 1e-6, 0.0)
    kern.sgd_rows(w, g, r, 0.1, 0.0)
    for a, b in zip((w, m, v, h, t), before):
        assert np.array_equal(host(a)[others], b[others])
        assert not np.array_equal(host(a)[rows], b[rows])


def test_clip_bounds_each_entry(kern):
    w = kern.to_device(np.zeros((2, 3), np.float32))
    G = np.array([[10, -10, 0.5], [1, 2, 3]], np.float32)
    kern.sgd_rows(w, kern.to_device(G), kern.to_device(np.array([0], np.int32)), 1.0, 5.0)
    assert host(w).tolist() == [[-5, 5, -0.5], [0, 0, 0]]


def test_adam_per_row_bias_correction(kern):
    # row 1 first updated after 100 updates of row 0 moves by about lr, as a first Adam step does
    w, m, v = (kern.to_device(np.zeros((2, 1), np.float32)) for _ in range(3))
    t, g = kern.to_device(np.zeros(2, np.int64)), kern.to_device(np.ones((2, 1), np.float32))
    r0, r1 = kern.to_device(np.array([0], np.int32)), kern.to_device(np.array([1], np.int32))
    for _ in range(100):
        kern.adam_rows(w, m, v, t, g, r0, 1e-3, 0.9, 0.999, 1e-8, 0)
    kern.adam_rows(w, m, v, t, g, r1, 1e-3, 0.9, 0.999, 1e-8, 0)
    assert host(t).tolist() == [100, 1]
    assert_close(host(w)[1], [-1e-3], 1e-9, 1e-4)      # the global step would give 1e-4


# The step kernels: every parameter of a model in one call. Parameter shapes: a
# weight, a bias (n, 1), one row, one column, rows longer than a simulator block
# (8) and narrower than it (several rows to a block), odd sizes.
STEP_SHAPES = [[(1, 1)], [(5, 3)],
               [(7, 5), (7, 1), (4, 7), (4, 1), (1, 9), (3, 2)],
               [(13, 11), (13, 1), (2, 13), (17, 1)]]


def _step_rows(rng, shapes, step):
    """Each parameter's selected rows at a step: none, one, all, or a random subset,
    different per parameter and step (sorted int32, as a backward leaves them)."""
    out = []
    for i, (n, _) in enumerate(shapes):
        how = (i + step) % 4
        r = ([] if how == 0 else [rng.integers(n)] if how == 1 else range(n) if how == 2
             else rng.choice(n, rng.integers(1, n + 1), replace=False))
        out.append(np.sort(np.asarray(r, np.int32)))
    return out


def _step_state(rng, shapes, dtype, t0):
    """W, G, and the optimizers' state (H, M, V random, T counts from t0) per parameter."""
    arrs = {n: [rng.standard_normal(s).astype(dtype) for s in shapes] for n in "WG"}
    arrs["G"] = [3 * g for g in arrs["G"]]                   # some entries beyond the clip
    for n in "HMV":
        arrs[n] = [rng.random(s).astype(dtype) for s in shapes]
    arrs["T"] = [np.full(s[0], t0, np.int64) + rng.integers(0, 3, s[0]) for s in shapes]
    return arrs


@pytest.mark.parametrize("shapes", STEP_SHAPES)
@pytest.mark.parametrize("opt,clip,dtype,global_t,t0", [
    ("sgd", 0.0, np.float32, 0, 0), ("sgd", 1.0, np.float64, 0, 0),
    ("adagrad", 0.0, np.float32, 0, 0), ("adagrad", 1.0, np.float64, 0, 0),
    ("adam", 0.0, np.float32, 0, 0), ("adam", 1.0, np.float32, 0, 0), ("adam", 0.5, np.float64, 0, 0),
    ("adam", 1.0, np.float32, 6, 0),                         # bias_correction="global"
    ("adam", 0.0, np.float32, 0, 2 ** 40)])                  # bias_correction="none"
def test_step_kernels_match_reference(kern, shapes, opt, clip, dtype, global_t, t0):
    rng = np.random.default_rng(len(shapes) + global_t)
    hst = _step_state(rng, shapes, dtype, t0)
    dev = {n: tuple(kern.to_device(a.copy()) for a in arrs) for n, arrs in hst.items()}
    for step in range(3):
        rows = _step_rows(rng, shapes, step)
        drows = tuple(kern.to_device(r) for r in rows)
        before = {n: [host(a).copy() for a in arrs] for n, arrs in dev.items()}
        if opt == "sgd":
            R.sgd_step(hst["W"], hst["G"], rows, 0.1, clip)
            kern.sgd_step(dev["W"], dev["G"], drows, 0.1, clip)
        elif opt == "adagrad":
            R.adagrad_step(hst["W"], hst["H"], hst["G"], rows, 0.1, 1e-6, clip)
            kern.adagrad_step(dev["W"], dev["H"], dev["G"], drows, 0.1, 1e-6, clip)
        else:
            t = global_t + step if global_t else 0
            R.adam_step(*(hst[n] for n in "WMVTG"), rows, 1e-2, 0.9, 0.999, 1e-8, clip, t)
            kern.adam_step(*(dev[n] for n in "WMVTG"), drows, 1e-2, 0.9, 0.999, 1e-8, clip, t)
        for n, arrs in hst.items():
            for i, (got, want, old) in enumerate(zip(dev[n], arrs, before[n])):
                got = host(got)
                others = np.setdiff1d(np.arange(want.shape[0]), rows[i])
                assert np.array_equal(got[others], old[others]), (n, i)       # bit-identical
                if n == "T":
                    assert np.array_equal(got, want), (n, i)
                else:
                    assert_close(got, want, 1e-6, 1e-5)


def test_step_kernels_change_the_selected_rows(kern):
    # against a reference that did nothing, the test above would pass on a kernel
    # that did nothing too: the selected rows must move
    rng = np.random.default_rng(3)
    shapes = STEP_SHAPES[2]
    arrs = _step_state(rng, shapes, np.float32, 0)
    rows = [np.arange(n, dtype=np.int32) for n, _ in shapes]
    dev = {n: tuple(kern.to_device(a.copy()) for a in a_) for n, a_ in arrs.items()}
    drows = tuple(kern.to_device(r) for r in rows)
    kern.adam_step(*(dev[n] for n in "WMVTG"), drows, 1e-2, 0.9, 0.999, 1e-8, 0.0, 0)
    kern.adagrad_step(dev["W"], dev["H"], dev["G"], drows, 0.1, 1e-6, 0.0)
    kern.sgd_step(dev["W"], dev["G"], drows, 0.1, 0.0)
    for n in "WMVTH":
        for got, old in zip(dev[n], arrs[n]):
            assert (host(got) != old).all(), n


# ---------------------------------------------------------------- element-wise, loss
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_elementwise_and_loss_kernels_match_reference(kern, dtype):
    rng = np.random.default_rng(6)
    x, m = _dy(rng, 7, 13, dtype), (rng.random((7, 13)) > 0.5).astype(dtype) * 2
    x[0, 0] = 0.0
    for fwd, bwd in [("relu_forward", "relu_backward"), ("tanh_forward", "tanh_backward"),
                     ("cube_forward", "cube_backward")]:
        want_y, got_y = np.empty_like(x), kern.empty(x.shape, dtype)
        getattr(R, fwd)(want_y, x)
        getattr(kern, fwd)(got_y, kern.to_device(x))
        assert_close(host(got_y), want_y, 1e-6, 1e-6)
        saved = (x, kern.to_device(x)) if fwd == "cube_forward" else (want_y, got_y)  # cube keeps its input
        want_dx, got_dx = np.empty_like(x), kern.empty(x.shape, dtype)
        getattr(R, bwd)(want_dx, m, saved[0])
        getattr(kern, bwd)(got_dx, kern.to_device(m), saved[1])
        assert_close(host(got_dx), want_dx, 1e-6, 1e-6)
    want = np.empty_like(x)                     # the reference against the formulas themselves
    R.cube_forward(want, x)
    assert_close(want, x.astype(np.float64) ** 3, 1e-6, 1e-5)
    R.cube_backward(want, m, x)
    assert_close(want, 3 * x.astype(np.float64) ** 2 * m, 1e-6, 1e-5)
    got = kern.empty(x.shape, dtype)
    kern.mul(got, kern.to_device(x), kern.to_device(m))
    assert np.array_equal(host(got), x * m)
    logits, labels = 30 * _dy(rng, 6, 10, dtype), np.array([2, 0, 9, 4, 4, 7])
    pw, pg = np.empty_like(logits), kern.empty(logits.shape, dtype)
    lw = R.softmax_xent_forward(pw, logits, labels)
    lg = kern.softmax_xent_forward(pg, kern.to_device(logits), kern.to_device(labels))
    assert isinstance(lg, float)
    assert_close(lg, lw, 0, 1e-5 if dtype == np.float32 else 1e-12)
    assert_close(host(pg), pw, 1e-6, 1e-6)
    dw, dg = np.empty_like(logits), kern.empty(logits.shape, dtype)
    R.softmax_xent_backward(dw, pw, labels)
    kern.softmax_xent_backward(dg, pg, labels)                          # labels from the host
    assert_close(host(dg), dw, 1e-6, 1e-6)


def test_cpu_elementwise_kernels_keep_the_references_bits():
    """The Numba kernels do the reference's operations in its order: equal bits, NaN,
    infinities and the sign of zero included (the GPU promises float tolerance)."""
    rng = np.random.default_rng(6)
    for dtype in (np.float32, np.float64):
        x, y = (rng.standard_normal((7, 13)).astype(dtype) for _ in range(2))
        x[0, :3] = [-0.0, np.nan, np.inf]
        for kern, args in [("relu_forward", (x,)), ("relu_backward", (x, y))]:
            a, b = np.empty_like(x), np.empty_like(x)
            with np.errstate(invalid="ignore"):
                getattr(R, kern)(a, *args)
            getattr(C, kern)(b, *args)
            assert np.array_equal(a, b, equal_nan=True) and (np.signbit(a) == np.signbit(b)).all()
        a, b = np.empty(13, dtype), np.empty(13, dtype)
        R.bias_grad(a, y)
        C.bias_grad(b, y)
        assert np.array_equal(a, b)                   # the same additions in the same order
        p = np.empty((7, 13), dtype)
        R.softmax_xent_forward(p, y, np.arange(7))
        da, db = np.empty_like(p), np.empty_like(p)
        R.softmax_xent_backward(da, p, np.arange(7))
        C.softmax_xent_backward(db, p, np.arange(7))
        assert np.array_equal(da, db)


# ---------------------------------------------------------------- interface
def test_every_backend_exports_every_reference_kernel_with_its_arguments(backend, kern):
    assert kern.name == backend
    for n, fn in vars(R).items():
        if n.startswith("_") or not inspect.isfunction(fn):
            continue
        assert hasattr(kern, n), f"kernels.{kern.__name__} lacks {n}"
        mine = getattr(kern, n)
        want = list(inspect.signature(fn).parameters)
        assert list(inspect.signature(getattr(mine, "py_func", mine)).parameters) == want, n


# ---------------------------------------------------------------- the CPU kernels' own
def test_cpu_kernels_run_as_plain_python_without_jit():
    # NUMBA_DISABLE_JIT=1 turns every @njit into plain Python (for pdb and coverage);
    # it must be set before numba is imported, so this runs in a fresh interpreter.
    import os
    import subprocess
    import sys
    code = """
import json, numpy as np, kernels
R, C = kernels.get("numpy"), kernels.get("cpu")
assert not hasattr(C.union_rows, "py_func"), "the JIT is still on"
rng = np.random.default_rng(0)
dy, x, W = rng.standard_normal((3, 9)), rng.standard_normal((3, 5)), rng.standard_normal((9, 5))
for impl in (R, C):
    idx = np.empty((3, 4), np.int32); impl.topk_rows(idx, dy, 4)
    u = np.empty(4, np.int32); impl.topk_unified(u, dy, 4)
    dx, dW = np.empty((3, 5)), np.zeros((9, 5))
    impl.topk_backward(dx, dW, dy, x, W, idx)
    dx2, dW2 = np.empty((3, 5)), np.zeros((9, 5))
    impl.unified_backward(dx2, dW2, dy, x, W, u)
    w, m, v, t = W.copy(), np.zeros_like(W), np.zeros_like(W), np.zeros(9, np.int64)
    rows = impl.union_rows(idx, 9)
    impl.adam_rows(w, m, v, t, dW, rows, 1e-3, 0.9, 0.999, 1e-8, 5.0)
    impl.adagrad_rows(w, m, dW, rows, 0.1, 1e-6, 0.0)
    impl.sgd_rows(w, dW, rows, 0.1, 0.0)
    print(json.dumps([idx.tolist(), u.tolist(), rows.tolist(), dx.tolist(), dx2.tolist(), w.tolist()]))
"""
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1"}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=root, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    import json
    ref, cpu = (json.loads(line) for line in out.stdout.strip().splitlines())
    assert ref[:3] == cpu[:3]                              # the selections, exactly
    for a, b in zip(ref[3:], cpu[3:]):
        assert_close(np.array(b), np.array(a), 1e-12, 1e-12)


@pytest.mark.parametrize("B,n_out,k", [(1, 9, 3), (9, 37, 5), (50, 500, 20)])
def test_threaded_cpu_kernels_match_reference(monkeypatch, B, n_out, k):
    # PARALLEL_MIN_WORK = 0: every kernel splits its work across Numba's threads
    monkeypatch.setattr(C, "PARALLEL_MIN_WORK", 0)
    rng = np.random.default_rng(B + n_out)
    n_in = 23
    dy, x, W = _backward_case(rng, B, n_out, n_in)
    buf, want = np.full((B + 1, k), -7, np.int32), np.empty((B, k), np.int32)
    idx = buf[:B]                            # a sentinel row after the output
    C.topk_rows(idx, dy, k)
    R.topk_rows(want, dy, k)
    assert np.array_equal(idx, want) and (buf[B] == -7).all()
    u, uw = np.empty(k, np.int32), np.empty(k, np.int32)
    C.topk_unified(u, dy, k)
    R.topk_unified(uw, dy, k)
    assert np.array_equal(u, uw)
    for sel, kern in [(idx, "topk_backward"), (u, "unified_backward")]:
        rows = np.unique(sel)
        rdx, rdW = np.empty((B, n_in), np.float32), np.zeros((n_out, n_in), np.float32)
        getattr(R, kern)(rdx, rdW, dy, x, W, sel)
        dx, dW = np.full_like(rdx, np.nan), np.full_like(rdW, 7.0)
        getattr(C, kern)(dx, dW, dy, x, W, sel)
        assert_close(dx, rdx, 1e-4, 1e-4)
        assert_close(dW[rows], rdW[rows], 1e-4, 1e-4)
        assert (np.delete(dW, rows, axis=0) == 7.0).all()
    G, outs = rng.standard_normal(W.shape).astype(np.float32), []
    for impl in (R, C):
        w, m, v, t = W.copy(), np.zeros_like(W), np.zeros_like(W), np.zeros(n_out, np.int64)
        impl.adam_rows(w, m, v, t, G, C.union_rows(idx, n_out), 1e-3, 0.9, 0.999, 1e-8, 0.0)
        outs.append((w, m, v, t))
    for a, b in zip(*outs):
        assert_close(b, a, 1e-6, 1e-5)


def test_threaded_cpu_step_kernel_matches_reference(monkeypatch):
    # PARALLEL_MIN_WORK = 0: adam_step splits each parameter's rows across the threads
    monkeypatch.setattr(C, "PARALLEL_MIN_WORK", 0)
    rng = np.random.default_rng(4)
    shapes = STEP_SHAPES[3]
    hst = _step_state(rng, shapes, np.float32, 0)
    dev = {n: tuple(a.copy() for a in arrs) for n, arrs in hst.items()}
    rows = _step_rows(rng, shapes, 1)
    R.adam_step(*(hst[n] for n in "WMVTG"), rows, 1e-2, 0.9, 0.999, 1e-8, 1.0, 0)
    C.adam_step(*(dev[n] for n in "WMVTG"), tuple(rows), 1e-2, 0.9, 0.999, 1e-8, 1.0, 0)
    for n in "WMVT":
        for got, want in zip(dev[n], hst[n]):
            assert_close(got, want, 1e-6, 1e-5)

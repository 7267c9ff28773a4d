"""Every Numba CPU kernel against the NumPy reference, on fresh random shapes."""
import numpy as np
import pytest

from sparsebp import kernels
from conftest import assert_close

R = kernels.get("numpy")
C = kernels.get("cpu")

# (B, n, k): batch 1, k = 1, k = n, odd sizes, and the MNIST hidden shape
SHAPES = [(1, 1, 1), (1, 7, 1), (1, 7, 7), (3, 13, 4), (7, 13, 13), (5, 64, 1),
          (50, 500, 20), (4, 33, 32), (2, 1000, 80)]


def _dy(rng, B, n, dtype=np.float32):
    return rng.standard_normal((B, n)).astype(dtype)


def _topk_by_sort(a, k):
    """An independent oracle: stable sort on -|a| keeps lower indices first among ties."""
    return np.sort(np.argsort(-np.abs(a), kind="stable")[:k])


@pytest.mark.parametrize("B,n,k", SHAPES)
@pytest.mark.parametrize("impl", [R, C], ids=["numpy", "cpu"])
def test_topk_rows_matches_sort_oracle(impl, B, n, k):
    rng = np.random.default_rng(B * 1000 + n + k)
    dy = _dy(rng, B, n)
    buf = np.full((B + 1, k), -1, np.int32)
    idx = buf[:B]                            # the row after must stay untouched
    impl.topk_rows(idx, dy, k)
    for b in range(B):
        assert np.array_equal(idx[b], _topk_by_sort(dy[b], k))
    assert (buf[B] == -1).all()


@pytest.mark.parametrize("B,n,k", SHAPES)
@pytest.mark.parametrize("impl", [R, C], ids=["numpy", "cpu"])
def test_topk_unified_matches_sort_oracle(impl, B, n, k):
    rng = np.random.default_rng(B + n * 7 + k)
    dy = _dy(rng, B, n)
    idx = np.full(k, -1, np.int32)
    impl.topk_unified(idx, dy, k)
    assert np.array_equal(idx, _topk_by_sort(np.abs(dy).sum(0, dtype=np.float64), k))


@pytest.mark.parametrize("impl", [R, C], ids=["numpy", "cpu"])
def test_topk_tie_rule_lower_index_wins(impl):
    # the paper's example, then a row of ties: |values| 1,1,3,3,3,2 with k = 2 and k = 4
    idx = np.empty((1, 2), np.int32)
    impl.topk_rows(idx, np.array([[1, 2, 3, -4]], np.float32), 2)
    assert idx.tolist() == [[2, 3]]
    dy = np.array([[1, -1, 3, -3, 3, 2]], np.float32)
    for k, want in [(2, [2, 3]), (4, [2, 3, 4, 5]), (5, [0, 2, 3, 4, 5])]:
        idx = np.empty((1, k), np.int32)
        impl.topk_rows(idx, dy, k)
        assert idx[0].tolist() == want
    zeros = np.zeros((2, 9), np.float32)
    idx = np.empty((2, 3), np.int32)
    impl.topk_rows(idx, zeros, 3)
    assert idx.tolist() == [[0, 1, 2]] * 2
    u = np.empty(2, np.int32)
    impl.topk_unified(u, np.array([[1, 0, 2, 0], [1, 2, 0, 0]], np.float32), 2)
    assert u.tolist() == [0, 1]   # three columns sum to 2: the two lowest indices


@pytest.mark.parametrize("impl", [R, C], ids=["numpy", "cpu"])
def test_topk_on_noncontiguous_input(impl):
    rng = np.random.default_rng(3)
    big = _dy(rng, 10, 40)
    dy = big[::2, 1::3]                      # (5, 13), strided both ways
    idx = np.empty((5, 4), np.int32)
    impl.topk_rows(idx, dy, 4)
    for b in range(5):
        assert np.array_equal(idx[b], _topk_by_sort(dy[b], 4))


@pytest.mark.parametrize("B,n,k", SHAPES)
def test_union_rows(B, n, k):
    rng = np.random.default_rng(n + k)
    idx = np.empty((B, k), np.int32)
    R.topk_rows(idx, _dy(rng, B, n), k)
    want = np.unique(idx)
    for impl in (R, C):
        got = impl.union_rows(idx, n)
        assert got.dtype == np.int32 and np.array_equal(got, want)


def _backward_case(rng, B, n_out, n_in, k, dtype):
    dy = _dy(rng, B, n_out, dtype)
    x = rng.standard_normal((B, n_in)).astype(dtype)
    W = rng.standard_normal((n_out, n_in)).astype(dtype)
    return dy, x, W


@pytest.mark.parametrize("B,n_out,k", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_topk_backward_matches_reference_and_masked_dense(B, n_out, k, dtype):
    rng = np.random.default_rng(B + n_out + k)
    n_in = 1 + (n_out * 3) % 17
    dy, x, W = _backward_case(rng, B, n_out, n_in, k, dtype)
    idx = np.empty((B, k), np.int32)
    R.topk_rows(idx, dy, k)
    rows = np.unique(idx)
    # the definition: a dense backward of the masked dy
    masked = np.zeros_like(dy)
    np.put_along_axis(masked, idx, np.take_along_axis(dy, idx, 1), 1)
    tol = dict(atol=1e-4, rtol=1e-4) if dtype == np.float32 else dict(atol=1e-10, rtol=1e-10)
    for impl in (R, C):
        dx = np.full((B, n_in), np.nan, dtype)
        dW = np.full((n_out, n_in), 7.0, dtype)    # sentinel: untouched rows stay 7
        impl.topk_backward(dx, dW, dy, x, W, idx)
        assert_close(dx, masked @ W, **tol)
        assert_close(dW[rows], (masked.T @ x)[rows], **tol)
        others = np.setdiff1d(np.arange(n_out), rows)
        assert (dW[others] == 7.0).all()


@pytest.mark.parametrize("B,n_out,k", SHAPES)
def test_unified_backward_matches_masked_dense(B, n_out, k):
    rng = np.random.default_rng(B * 3 + n_out + k)
    n_in = 2 + (n_out * 5) % 19
    dy, x, W = _backward_case(rng, B, n_out, n_in, k, np.float32)
    idx = np.empty(k, np.int32)
    R.topk_unified(idx, dy, k)
    masked = np.zeros_like(dy)
    masked[:, idx] = dy[:, idx]
    for impl in (R, C):
        dx = np.full((B, n_in), np.nan, np.float32)
        dW = np.full((n_out, n_in), 7.0, np.float32)
        impl.unified_backward(dx, dW, dy, x, W, idx)
        assert_close(dx, masked @ W, atol=1e-4, rtol=1e-4)
        assert_close(dW[idx], (masked.T @ x)[idx], atol=1e-4, rtol=1e-4)
        assert (np.delete(dW, idx, axis=0) == 7.0).all()


def test_backward_with_k_equal_n_is_dense():
    rng = np.random.default_rng(11)
    dy, x, W = _backward_case(rng, 6, 9, 5, 9, np.float64)
    dx_d, dW_d = np.empty((6, 5)), np.empty((9, 5))
    R.dense_backward(dx_d, dW_d, dy, x, W)
    all_rows = np.tile(np.arange(9, dtype=np.int32), (6, 1))
    for impl in (R, C):
        dx, dW = np.empty((6, 5)), np.empty((9, 5))
        impl.topk_backward(dx, dW, dy, x, W, all_rows)
        assert_close(dx, dx_d, 1e-12, 1e-12)
        assert_close(dW, dW_d, 1e-12, 1e-12)
        impl.unified_backward(dx, dW, dy, x, W, np.arange(9, dtype=np.int32))
        assert_close(dx, dx_d, 1e-12, 1e-12)
        assert_close(dW, dW_d, 1e-12, 1e-12)


def _opt_case(rng, n_rows=11, n_cols=6):
    W = rng.standard_normal((n_rows, n_cols)).astype(np.float32)
    G = (3 * rng.standard_normal((n_rows, n_cols))).astype(np.float32)
    rows = np.sort(rng.choice(n_rows, 4, replace=False)).astype(np.int32)
    return W, G, rows


@pytest.mark.parametrize("clip", [0.0, 1.0])
def test_optimizer_kernels_match_reference(clip):
    rng = np.random.default_rng(5)
    for _ in range(3):
        W, G, rows = _opt_case(rng)
        pairs = []
        for impl in (R, C):
            w = W.copy()
            impl.sgd_rows(w, G, rows, 0.1, clip)
            pairs.append(w)
        assert_close(*pairs, 1e-6, 1e-6)
        outs = []
        for impl in (R, C):
            w, h = W.copy(), np.full_like(W, 0.5)
            for _ in range(3):
                impl.adagrad_rows(w, h, G, rows, 0.1, 1e-6, clip)
            outs.append((w, h))
        for a, b in zip(*outs):
            assert_close(a, b, 1e-6, 1e-5)
        outs = []
        for impl in (R, C):
            w, m, v = W.copy(), np.zeros_like(W), np.zeros_like(W)
            t = np.zeros(W.shape[0], np.int64)
            for step in range(4):
                impl.adam_rows(w, m, v, t, G, rows[step % 2:], 1e-2, 0.9, 0.999, 1e-8, clip)
            outs.append((w, m, v, t))
        for a, b in zip(*outs):
            assert_close(a, b, 1e-6, 1e-5)


def test_optimizer_kernels_leave_other_rows_bit_identical():
    rng = np.random.default_rng(9)
    W, G, rows = _opt_case(rng)
    others = np.setdiff1d(np.arange(W.shape[0]), rows)
    for impl in (R, C):
        w, m, v, h = W.copy(), rng.random(W.shape, np.float32), rng.random(W.shape, np.float32), np.ones_like(W)
        t = np.arange(W.shape[0], dtype=np.int64)
        before = [a.copy() for a in (w, m, v, h, t)]
        impl.adam_rows(w, m, v, t, G, rows, 1e-3, 0.9, 0.999, 1e-8, 5.0)
        impl.adagrad_rows(w, h, G, rows, 0.1, 1e-6, 0.0)
        impl.sgd_rows(w, G, rows, 0.1, 0.0)
        for a, b in zip((w, m, v, h, t), before):
            assert np.array_equal(a[others], b[others])
            assert not np.array_equal(a[rows], b[rows])


def test_clip_bounds_each_entry():
    W = np.zeros((2, 3), np.float32)
    G = np.array([[10, -10, 0.5], [1, 2, 3]], np.float32)
    for impl in (R, C):
        w = W.copy()
        impl.sgd_rows(w, G, np.array([0], np.int32), 1.0, 5.0)
        assert w.tolist() == [[-5, 5, -0.5], [0, 0, 0]]


def test_adam_per_row_bias_correction():
    # row 1 first updated after 1000 updates of row 0 moves by about lr, as a first Adam step does
    G = np.ones((2, 1), np.float32)
    for impl in (R, C):
        w, m, v = np.zeros((2, 1), np.float32), np.zeros((2, 1), np.float32), np.zeros((2, 1), np.float32)
        t = np.zeros(2, np.int64)
        for _ in range(1000):
            impl.adam_rows(w, m, v, t, G, np.array([0], np.int32), 1e-3, 0.9, 0.999, 1e-8, 0)
        impl.adam_rows(w, m, v, t, G, np.array([1], np.int32), 1e-3, 0.9, 0.999, 1e-8, 0)
        assert t.tolist() == [1000, 1]
        assert_close(w[1], [-1e-3], 1e-9, 1e-4)


def test_zero_unselected():
    rng = np.random.default_rng(2)
    G = rng.random((6, 3)).astype(np.float32)
    rows = np.array([1, 4], np.int32)
    for impl in (R, C):
        g = G.copy()
        impl.zero_unselected(g, rows)
        assert np.array_equal(g[rows], G[rows])
        assert (np.delete(g, rows, axis=0) == 0).all()


def test_cpu_exports_every_reference_name():
    public = {n for n in dir(R) if not n.startswith("_") and callable(getattr(R, n))} - {"np"}
    missing = sorted(n for n in public if not hasattr(C, n))
    assert not missing, f"kernels.cpu lacks {missing}"


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
def test_threaded_kernels_match_reference(monkeypatch, B, n_out, k):
    # PARALLEL_MIN_WORK = 0: every kernel splits its work across Numba's threads
    monkeypatch.setattr(C, "PARALLEL_MIN_WORK", 0)
    rng = np.random.default_rng(B + n_out)
    n_in = 23
    dy, x, W = _backward_case(rng, B, n_out, n_in, k, np.float32)
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


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_elementwise_and_loss_kernels_match_reference(dtype):
    rng = np.random.default_rng(6)
    x, y = (rng.standard_normal((7, 13)).astype(dtype) for _ in range(2))
    x[0, :3] = [-0.0, np.nan, np.inf]
    for kern in ("relu_forward", "relu_backward"):
        a, b = np.empty_like(x), np.empty_like(x)
        args = (x,) if kern == "relu_forward" else (x, y)
        with np.errstate(invalid="ignore"):
            getattr(R, kern)(a, *args)
        getattr(C, kern)(b, *args)
        assert np.array_equal(a, b, equal_nan=True) and (np.signbit(a) == np.signbit(b)).all()
    a, b = np.empty(13, dtype), np.empty(13, dtype)
    R.bias_grad(a, y)
    C.bias_grad(b, y)
    assert np.array_equal(a, b)                       # the same additions in the same order
    logits, labels = (3 * rng.standard_normal((6, 10))).astype(dtype), rng.integers(0, 10, 6)
    pa, pb = np.empty_like(logits), np.empty_like(logits)
    la, lb = R.softmax_xent_forward(pa, logits, labels), C.softmax_xent_forward(pb, logits, labels)
    assert isinstance(lb, float)
    assert_close(lb, la, 1e-6, 1e-6)
    assert_close(pb, pa, 1e-6, 1e-6)
    da, db = np.empty_like(pa), np.empty_like(pa)
    R.softmax_xent_backward(da, pa, labels)
    C.softmax_xent_backward(db, pa, labels)
    assert np.array_equal(da, db)

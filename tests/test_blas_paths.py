"""The BLAS paths of the Numba backend's sparse backward (kernels/cpu.py): each path
against the reference on many shapes, and the rule that picks them, both branches."""
import numpy as np
import pytest

from sparsebp import kernels
from conftest import assert_close

R = kernels.get("numpy")
C = kernels.get("cpu")

# (B, n_out, n_in, k): batch 1, k = 1, k = n_out, odd sizes, a layer the rule sends to BLAS
SHAPES = [(1, 1, 1, 1), (1, 7, 5, 1), (1, 7, 3, 7), (3, 13, 11, 4), (7, 13, 2, 13),
          (5, 64, 9, 1), (33, 65, 17, 3), (32, 40, 31, 40), (50, 500, 784, 20)]


def _case(rng, B, n_out, n_in, dtype):
    return (rng.standard_normal(s).astype(dtype) for s in [(B, n_out), (B, n_in), (n_out, n_in)])


def _run(fn, dy, x, W, idx, dtype):
    dx = np.full(x.shape, np.nan, dtype)
    dW = np.full(W.shape, 7.0, dtype)          # sentinel: rows not selected stay 7
    fn(dx, dW, dy, x, W, idx)
    return dx, dW


@pytest.fixture(params=["blas", "hand"])
def path(request, monkeypatch):
    """Force one branch of the rule: every shape to BLAS, or none."""
    if request.param == "blas":
        monkeypatch.setattr(C, "BLAS_MIN_BATCH", 1)
        monkeypatch.setattr(C, "BLAS_MIN_BLOCK", 1)
        monkeypatch.setattr(C, "BLAS_MAX_UNION_PER_K", np.inf)
    else:
        monkeypatch.setattr(C, "BLAS_MIN_BATCH", 10**9)
    return request.param


@pytest.mark.parametrize("B,n_out,n_in,k", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_unified_paths_match_reference(path, B, n_out, n_in, k, dtype):
    rng = np.random.default_rng(B * 7 + n_out + 3 * k)
    dy, x, W = _case(rng, B, n_out, n_in, dtype)
    idx = np.empty(k, np.int32)
    R.topk_unified(idx, dy, k)
    rx, rW = _run(R.unified_backward, dy, x, W, idx, dtype)
    cx, cW = _run(C.unified_backward, dy, x, W, idx, dtype)
    tol = dict(atol=1e-4, rtol=1e-4) if dtype == np.float32 else dict(atol=1e-10, rtol=1e-10)
    assert_close(cx, rx, **tol)
    assert_close(cW[idx], rW[idx], **tol)
    assert (np.delete(cW, idx, axis=0) == 7.0).all()


@pytest.mark.parametrize("B,n_out,n_in,k", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_topk_paths_match_reference(path, B, n_out, n_in, k, dtype):
    rng = np.random.default_rng(B * 5 + n_out + 7 * k)
    dy, x, W = _case(rng, B, n_out, n_in, dtype)
    idx = np.empty((B, k), np.int32)
    R.topk_rows(idx, dy, k)
    rows = np.unique(idx)
    rx, rW = _run(R.topk_backward, dy, x, W, idx, dtype)
    cx, cW = _run(C.topk_backward, dy, x, W, idx, dtype)
    tol = dict(atol=1e-4, rtol=1e-4) if dtype == np.float32 else dict(atol=1e-10, rtol=1e-10)
    assert_close(cx, rx, **tol)
    assert_close(cW[rows], rW[rows], **tol)
    assert (np.delete(cW, rows, axis=0) == 7.0).all()


def test_kept_columns_is_the_masked_dy_on_the_union():
    rng = np.random.default_rng(3)
    dy = rng.standard_normal((6, 11)).astype(np.float32)
    idx = np.empty((6, 3), np.int32)
    R.topk_rows(idx, dy, 3)
    rows = C.union_rows(idx, 11)
    masked = np.zeros_like(dy)
    np.put_along_axis(masked, idx, np.take_along_axis(dy, idx, 1), 1)
    assert np.array_equal(C._kept_columns(dy, idx, rows), masked[:, rows])


def _which(monkeypatch, fn_name, dy, x, W, idx):
    """'blas' or 'hand': the branch the default rule takes for this call."""
    taken = []
    real = getattr(C, fn_name)
    monkeypatch.setattr(C, fn_name, lambda *a: (taken.append(1), real(*a)))
    dx, dW = np.empty_like(x), np.empty_like(W)
    (C.unified_backward if fn_name == "_unified_blas" else C.topk_backward)(dx, dW, dy, x, W, idx)
    return "blas" if taken else "hand"


def test_rule_unified_blas_from_min_batch_and_block(monkeypatch):
    rng = np.random.default_rng(4)
    B0, k0 = C.BLAS_MIN_BATCH, -(-C.BLAS_MIN_BLOCK // C.BLAS_MIN_BATCH)      # B0 k0 >= the block
    cases = [(B0 - 1, C.BLAS_MIN_BLOCK, "hand"), (B0, k0, "blas"), (B0, k0 - 1, "hand"),
             (4 * B0, -(-k0 // 4), "blas"), (1, 5, "hand")]
    for B, k, want in cases:
        dy, x, W = _case(rng, B, max(k, 40), 12, np.float32)
        idx = np.empty(k, np.int32)
        C.topk_unified(idx, dy, k)
        assert _which(monkeypatch, "_unified_blas", dy, x, W, idx) == want
        monkeypatch.undo()


def test_rule_topk_blas_only_for_a_small_union(monkeypatch):
    rng = np.random.default_rng(5)
    B, n, k = C.BLAS_MIN_BATCH, 200, 10
    x, W = rng.standard_normal((B, 16)).astype(np.float32), rng.standard_normal((n, 16)).astype(np.float32)
    # every example's largest entries in the same k columns: the union is k rows
    dy = 0.01 * rng.standard_normal((B, n)).astype(np.float32)
    dy[:, 50:50 + k] += 10
    idx = np.empty((B, k), np.int32)
    C.topk_rows(idx, dy, k)
    assert len(C.union_rows(idx, n)) == k
    assert _which(monkeypatch, "_topk_blas", dy, x, W, idx) == "blas"
    monkeypatch.undo()
    # independent examples: the union is most of the rows, the hand loops win
    dy = rng.standard_normal((B, n)).astype(np.float32)
    C.topk_rows(idx, dy, k)
    assert len(C.union_rows(idx, n)) > C.BLAS_MAX_UNION_PER_K * k
    assert _which(monkeypatch, "_topk_blas", dy, x, W, idx) == "hand"
    monkeypatch.undo()
    # a small batch stays on the hand loops whatever the union
    dy = dy[:C.BLAS_MIN_BATCH - 1]
    assert _which(monkeypatch, "_topk_blas", dy, x[:len(dy)], W, idx[:len(dy)]) == "hand"

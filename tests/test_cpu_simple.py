"""kernels/cpu_simple.py (the first, plain rung of the CPU kernels) against the reference."""
import numpy as np
import pytest

from sparsebp import kernels
from sparsebp.kernels import cpu_simple as S
from conftest import assert_close

R = kernels.get("numpy")

# (B, n, k): batch 1, k = 1, k = n, odd sizes, the MNIST hidden shape
SHAPES = [(1, 1, 1), (1, 7, 1), (1, 7, 7), (3, 13, 4), (7, 13, 13), (5, 64, 1), (50, 500, 20)]


@pytest.mark.parametrize("B,n,k", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_selections_match_reference(B, n, k, dtype):
    dy = np.random.default_rng(B * 7 + n + k).standard_normal((B, n)).astype(dtype)
    got, want = np.empty((B, k), np.int32), np.empty((B, k), np.int32)
    S.topk_rows(got, dy, k)
    R.topk_rows(want, dy, k)
    assert np.array_equal(got, want)
    got, want = np.empty(k, np.int32), np.empty(k, np.int32)
    S.topk_unified(got, dy, k)
    R.topk_unified(want, dy.astype(np.float64), k)
    assert np.array_equal(got, want)


def test_tie_rule_and_strided_input():
    dy = np.array([[1, -1, 3, -3, 3, 2], [0, 0, 0, 0, 0, 0]], np.float32)
    for k, want in [(2, [2, 3]), (4, [2, 3, 4, 5]), (5, [0, 2, 3, 4, 5])]:
        idx = np.empty((2, k), np.int32)
        S.topk_rows(idx, dy, k)
        assert idx[0].tolist() == want and idx[1].tolist() == list(range(k))
    big = np.random.default_rng(3).standard_normal((10, 40)).astype(np.float32)
    dy = big[::2, 1::3]
    got, want = np.empty((5, 4), np.int32), np.empty((5, 4), np.int32)
    S.topk_rows(got, dy, 4)
    R.topk_rows(want, dy, 4)
    assert np.array_equal(got, want)


@pytest.mark.parametrize("B,n_out,k", SHAPES)
def test_backward_products_match_reference(B, n_out, k):
    rng = np.random.default_rng(B + n_out * 3 + k)
    n_in = 1 + (n_out * 5) % 19
    dy, x = rng.standard_normal((B, n_out)), rng.standard_normal((B, n_in))
    W = rng.standard_normal((n_out, n_in))
    idx, u = np.empty((B, k), np.int32), np.empty(k, np.int32)
    R.topk_rows(idx, dy, k)
    R.topk_unified(u, dy, k)
    for kern, sel in [("topk_backward", idx), ("unified_backward", u)]:
        rows = np.unique(sel)
        rdx, rdW = np.empty((B, n_in)), np.full((n_out, n_in), 7.0)
        getattr(R, kern)(rdx, rdW, dy, x, W, sel)
        dx, dW = np.full((B, n_in), np.nan), np.full((n_out, n_in), 7.0)
        getattr(S, kern)(dx, dW, dy, x, W, sel)
        assert_close(dx, rdx, 1e-12, 1e-12)
        assert_close(dW[rows], rdW[rows], 1e-12, 1e-12)
        assert (np.delete(dW, rows, axis=0) == 7.0).all()       # other rows untouched

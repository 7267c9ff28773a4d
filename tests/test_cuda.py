"""Every CUDA kernel against kernels/reference.py, and the engine on the cuda backend.

CI has no GPU: conftest.py turns on Numba's CUDA simulator, which runs each GPU
thread as a Python thread, so the shapes here stay small (the simulator also
uses smaller blocks and tiles; the kernels' code is the same). On a machine with
a GPU, SPARSEBP_REAL_GPU=1 runs these tests on it.
"""
import inspect
import sys

import numpy as np
import pytest

pytest.importorskip("numba.cuda", reason="numba-cuda is not installed")

from sparsebp import kernels  # noqa: E402
import sparsebp as sb  # noqa: E402
from conftest import assert_close  # noqa: E402

R = kernels.get("numpy")
G = kernels.get("cuda")
S_STAGE = G.S.STAGE            # 64 in the simulator, 4096 on a GPU

# (B, n, k): batch 1, k = 1, k = n, odd sizes, rows longer than a block
SHAPES = [(1, 1, 1), (1, 7, 1), (1, 7, 7), (3, 13, 4), (7, 13, 13), (2, 40, 9)]


@pytest.fixture(autouse=True, scope="module")
def short_gil_switch():
    """The simulator's block manager polls its threads under the GIL; a short switch
    interval lets them reach each barrier sooner (about 10x faster here)."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)
    yield
    sys.setswitchinterval(old)


@pytest.fixture(autouse=True)
def poisoned_empty(monkeypatch):
    """G.empty hands out NaN (float) or -1 (int) arrays here, not whatever memory was
    freed last: the simulator's numpy allocator often returns the buffer of the test
    before, right answer included, and a kernel that never wrote would pass."""
    def empty(shape, dtype=np.float32):
        fill = np.nan if np.dtype(dtype).kind == "f" else -1
        return G.cuda.to_device(np.full(shape, fill, dtype))
    monkeypatch.setattr(G, "empty", empty)


def _rand(rng, shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


# ---------------------------------------------------------------- arrays
def test_arrays_move_between_host_and_device():
    a = np.arange(24, dtype=np.float32).reshape(4, 6)[:, ::2]        # (4, 3), strided
    d = G.to_device(a)
    assert G.to_device(d) is d                                       # already there: as is
    assert np.array_equal(G.to_host(d), a) and G.to_host(d).flags.c_contiguous
    z = G.zeros((2, 3), np.int64)
    assert G.to_host(z).dtype == np.int64 and not G.to_host(z).any()
    assert G.empty((5,), np.int32).shape == (5,) and G.empty((2, 2)).dtype == np.float32


# ---------------------------------------------------------------- selection
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("B,n,k", SHAPES)
def test_topk_rows_and_unified(B, n, k, dtype):
    dy = _rand(np.random.default_rng(B * 100 + n + k), (B, n), dtype)
    want, got = np.empty((B, k), np.int32), G.empty((B, k), np.int32)
    R.topk_rows(want, dy, k)
    G.topk_rows(got, G.to_device(dy), k)
    assert np.array_equal(G.to_host(got), want)
    want, got = np.empty(k, np.int32), G.empty((k,), np.int32)
    R.topk_unified(want, dy.astype(np.float64), k)       # the GPU sums in float64
    G.topk_unified(got, G.to_device(dy), k)
    assert np.array_equal(G.to_host(got), want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("B,n,k", [(1, 1, 1), (3, 13, 4), (2, S_STAGE, 9), (5, S_STAGE + 1, 9), (2, 150, 150)])
def test_topk_unified_with_the_bias_gradient(B, n, k, dtype):
    """The unified kernel can also sum dy (the bias gradient) in its pass over dy; it
    stages the sums in shared memory up to STAGE columns and reads them from global
    memory above: both sides of that edge, and k = n."""
    dy = _rand(np.random.default_rng(B + n + k), (B, n), dtype)
    want, rb = np.empty(k, np.int32), np.empty(n, dtype)
    R.topk_unified(want, dy.astype(np.float64), k)
    R.bias_grad(rb, dy)
    got, db = G.empty((k,), np.int32), G.empty((n,), dtype)
    G.topk_unified_and_bias(got, db, G.to_device(dy), k)
    assert np.array_equal(G.to_host(got), want)
    assert_close(G.to_host(db), rb, 1e-6 if dtype == np.float32 else 1e-12, 1e-6 if dtype == np.float32 else 1e-12)


def test_topk_tie_rule_lower_index_wins():
    dy = np.array([[1, -1, 3, -3, 3, 2, 0, -0.0]], np.float32)
    for k, want in [(2, [2, 3]), (4, [2, 3, 4, 5]), (5, [0, 2, 3, 4, 5]), (7, [0, 1, 2, 3, 4, 5, 6])]:
        got = G.empty((1, k), np.int32)
        G.topk_rows(got, dy, k)
        assert G.to_host(got)[0].tolist() == want
    got = G.empty((2, 3), np.int32)
    G.topk_rows(got, np.zeros((2, 9), np.float64), 3)
    assert G.to_host(got).tolist() == [[0, 1, 2]] * 2
    u = G.empty((2,), np.int32)
    G.topk_unified(u, np.array([[1, 0, 2, 0], [1, 2, 0, 0]], np.float32), 2)
    assert G.to_host(u).tolist() == [0, 1]    # three columns sum to 2: the two lowest indices


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_topk_with_many_ties_and_special_values(dtype):
    """Integers in [-3, 3] tie everywhere; +-0, +-inf and subnormals order by their bits."""
    rng = np.random.default_rng(11)
    tiny = np.finfo(dtype).smallest_subnormal
    for dy in [rng.integers(-3, 4, (3, 29)).astype(dtype),
               rng.choice(np.array([0.0, -0.0, np.inf, -np.inf, 1.5, -1.5, tiny, -2 * tiny], dtype), (2, 31))]:
        for k in (1, 6, dy.shape[1]):
            want, got = np.empty((len(dy), k), np.int32), G.empty((len(dy), k), np.int32)
            R.topk_rows(want, dy, k)
            G.topk_rows(got, dy, k)
            assert np.array_equal(G.to_host(got), want)
            want, got = np.empty(k, np.int32), G.empty((k,), np.int32)
            R.topk_unified(want, dy.astype(np.float64), k)
            G.topk_unified(got, dy, k)
            assert np.array_equal(G.to_host(got), want)


def test_topk_on_noncontiguous_host_input():
    dy = _rand(np.random.default_rng(3), (10, 40))[::2, 1::3]     # (5, 13), strided
    want, got = np.empty((5, 4), np.int32), G.empty((5, 4), np.int32)
    R.topk_rows(want, dy, 4)
    G.topk_rows(got, dy, 4)
    assert np.array_equal(G.to_host(got), want)
    want, got = np.empty(4, np.int32), G.empty((4,), np.int32)
    R.topk_unified(want, dy.astype(np.float64), 4)
    G.topk_unified(got, dy, 4)
    assert np.array_equal(G.to_host(got), want)


@pytest.mark.parametrize("B,n,k", SHAPES)
def test_union_rows_and_zero_unselected(B, n, k):
    rng = np.random.default_rng(n + k)
    idx = np.sort(np.argsort(rng.random((B, n)), axis=1)[:, :k], axis=1).astype(np.int32)
    rows = G.union_rows(G.to_device(idx), n)
    assert rows.dtype == np.int32 and np.array_equal(G.to_host(rows), R.union_rows(idx, n))
    g = _rand(rng, (n, 3))
    want, got = g.copy(), G.to_device(g)
    R.zero_unselected(want, G.to_host(rows))
    G.zero_unselected(got, rows)
    assert np.array_equal(G.to_host(got), want)


def test_scratch_reuse_keeps_results_apart():
    """The selections reuse scratch buffers between calls: a union already returned
    stays intact, and the unified select's block counter is back at zero."""
    a = np.array([[0, 2], [2, 5]], np.int32)
    first = G.union_rows(a, 6)
    G.union_rows(np.array([[1, 3]], np.int32), 6)
    assert G.to_host(first).tolist() == [0, 2, 5]
    for dy in (np.array([[3, 0, 1, 2]], np.float32), np.array([[0, 3, 2, 1]], np.float32)):
        u = G.empty((2,), np.int32)
        G.topk_unified(u, dy, 2)
        assert G.to_host(u).tolist() == sorted(np.argsort(-dy[0], kind="stable")[:2].tolist())


# ---------------------------------------------------------------- launching
@pytest.mark.skipif(G.cuda_launch.SIM, reason="the short launch path needs a GPU (the simulator runs Numba's)")
def test_short_launch_path_matches_numbas():
    """kernels/cuda_launch.py hands the driver the arguments Numba would: every
    kernel of a unified and a top-k backward gives the same bits launched either
    way: at a kind's first call (through Numba), at its second (flattened anew), on
    the very same arrays (the previous call's arguments reused) and on another dy."""
    rng = np.random.default_rng(8)
    B, n_in, n_out, k = 5, 300, 70, 9
    dy, dy2, x = (G.to_device(_rand(rng, s)) for s in [(B, n_out), (B, n_out), (B, n_in)])
    W = G.to_device(_rand(rng, (n_out, n_in)))
    u, idx = G.empty((k,), np.int32), G.empty((B, k), np.int32)
    dx, dW, db, dx2 = G.empty((B, n_in)), G.empty((n_out, n_in)), G.empty((n_out,)), G.empty((B, n_in))

    def run(d):
        for a in (dx, dW, db, dx2):
            a.copy_to_device(np.zeros(a.shape, np.float32))
        G.topk_unified_and_bias(u, db, d, k)
        G.unified_backward(dx, dW, d, x, W, u)
        G.topk_rows(idx, d, k)
        G.topk_backward(dx2, dW, d, x, W, idx)
        return [G.to_host(a) for a in (u, idx, dx, dW, db, dx2)]
    try:
        G.set_launch("numba")
        want, want2 = run(dy), run(dy2)
        G.set_launch("fast")
        got = [run(dy), run(dy), run(dy2), run(dy)]
    finally:
        G.set_launch("fast")
    for g, w in zip(got, [want, want, want2, want]):
        for a, b in zip(g, w):
            assert np.array_equal(a, b)
    assert any(c.last is not None for c in G.S.topk_unified_kernel._configs.values())


def test_launch_memo_reuses_arguments_only_for_the_same_arrays_and_scalars():
    """The short path reuses the previous call's flattened arguments only when every
    array is the very same object (still alive) and every scalar equal and of the
    same type; its memo holds the arrays weakly. (Pure Python: runs in CI.)"""
    from sparsebp.kernels.cuda_launch import _memo, _same

    class Arr:                                   # stands for a device array
        def copy_to_host(self):
            pass
    a, b = Arr(), Arr()
    memo = _memo((a, b, 3, 0.5, True))
    assert _same((a, b, 3, 0.5, True), memo)
    assert not _same((b, a, 3, 0.5, True), memo)                 # other arrays
    assert not _same((a, b, 4, 0.5, True), memo)                 # another scalar
    assert not _same((a, b, 3.0, 0.5, True), memo)               # equal, of another type
    assert not _same((a, b, 3, 0.5, 1), memo)
    assert not _same((a, b, 3, 0.5), memo)                       # fewer arguments
    assert not _same((a, b, np.int64(3), 0.5, True), memo)
    del b                                                        # not kept alive by the memo
    assert memo[1]() is None and not _same((a, Arr(), 3, 0.5, True), memo)


# ---------------------------------------------------------------- linear layer
@pytest.mark.parametrize("dtype,tol", [(np.float32, 1e-5), (np.float64, 1e-12)])
@pytest.mark.parametrize("B,n_in,n_out", [(1, 1, 1), (3, 19, 10), (7, 13, 5)])
def test_dense_products_and_bias(B, n_in, n_out, dtype, tol):
    rng = np.random.default_rng(B + n_in + n_out)
    x, W, b, dy = (_rand(rng, s, dtype) for s in [(B, n_in), (n_out, n_in), (n_out,), (B, n_out)])
    d = {n: G.to_device(a) for n, a in dict(W=W, b=b, dy=dy).items()}
    y, want = G.empty((B, n_out), dtype), np.empty((B, n_out), dtype)
    R.linear_forward(want, x, W, b)
    G.linear_forward(y, x, d["W"], d["b"])                 # x from the host
    assert_close(G.to_host(y), want, tol, tol)
    dx, dW, db = G.empty((B, n_in), dtype), G.empty((n_out, n_in), dtype), G.empty((n_out,), dtype)
    rx, rW, rb = np.empty((B, n_in), dtype), np.empty((n_out, n_in), dtype), np.empty(n_out, dtype)
    R.dense_backward(rx, rW, dy, x, W)
    G.dense_backward(dx, dW, d["dy"], G.to_device(x), d["W"])
    R.bias_grad(rb, dy)
    G.bias_grad(db, d["dy"])
    for got, ref in [(dx, rx), (dW, rW), (db, rb)]:
        assert_close(G.to_host(got), ref, tol, tol)


def test_linear_forward_on_noncontiguous_host_input():
    rng = np.random.default_rng(5)
    x = _rand(rng, (6, 22))[::2, ::2]                      # (3, 11), strided
    W, b = _rand(rng, (5, 11)), _rand(rng, (5,))
    y, want = G.empty((3, 5)), np.empty((3, 5), np.float32)
    R.linear_forward(want, x, W, b)
    G.linear_forward(y, x, G.to_device(W), G.to_device(b))
    assert_close(G.to_host(y), want)


@pytest.mark.parametrize("B,n_out,k", SHAPES)
def test_sparse_backward_products(B, n_out, k):
    rng = np.random.default_rng(n_out * 3 + k)
    n_in = 6
    dy, x, W = _rand(rng, (B, n_out)), _rand(rng, (B, n_in)), _rand(rng, (n_out, n_in))
    idx, u = np.empty((B, k), np.int32), np.empty(k, np.int32)
    R.topk_rows(idx, dy, k)
    R.topk_unified(u, dy, k)
    for fn, sel in [("topk_backward", idx), ("unified_backward", u)]:
        rx, rW = np.empty((B, n_in), np.float32), np.full((n_out, n_in), 7, np.float32)
        getattr(R, fn)(rx, rW, dy, x, W, sel)
        gx, gW = G.empty((B, n_in)), G.to_device(np.full((n_out, n_in), 7, np.float32))
        getattr(G, fn)(gx, gW, G.to_device(dy), G.to_device(x), G.to_device(W), G.to_device(sel))
        assert_close(G.to_host(gx), rx)
        assert_close(G.to_host(gW), rW)                    # unselected rows stay 7 in both
    if k == n_out:                                         # keeping everything is dense
        dx, dW = G.empty((B, n_in)), G.empty((n_out, n_in))
        G.dense_backward(dx, dW, G.to_device(dy), G.to_device(x), G.to_device(W))
        assert_close(G.to_host(gx), G.to_host(dx))
        assert_close(G.to_host(gW), G.to_host(dW))


@pytest.mark.parametrize("B,k", [(9, 3), (3, 9), (5, 5)])
@pytest.mark.parametrize("longest_first", [True, False])
def test_gemm_pair_in_either_order(B, k, longest_first):
    """The unified pair launched with dW's blocks first (B > k, longest_first), with
    dx's first (B < k, or longest_first=False), or as given (equal K): same products."""
    from sparsebp.kernels import cuda_gemm as CG
    rng = np.random.default_rng(B * 10 + k)
    n_out, n_in = 11, 10
    dy, x, W = _rand(rng, (B, n_out)), _rand(rng, (B, n_in)), _rand(rng, (n_out, n_in))
    u = np.sort(rng.choice(n_out, k, replace=False)).astype(np.int32)
    rx, rW = np.empty((B, n_in), np.float32), np.full((n_out, n_in), 7, np.float32)
    R.unified_backward(rx, rW, dy, x, W, u)
    gx, gW = G.empty((B, n_in)), G.to_device(np.full((n_out, n_in), 7, np.float32))
    d_dy, d_x, d_W = G.to_device(dy), G.to_device(x), G.to_device(W)
    CG.gemm(*G.unified_products(gx, gW, d_dy, d_x, d_W, k), idx=G.to_device(u),
            longest_first=longest_first)
    assert_close(G.to_host(gx), rx)
    assert_close(G.to_host(gW), rW)


# ---------------------------------------------------------------- element-wise, loss
def test_elementwise_and_softmax_xent():
    rng = np.random.default_rng(1)
    a, m = _rand(rng, (3, 7)), (rng.random((3, 7)) > 0.5).astype(np.float32) * 2
    a[0, 0] = 0.0
    for fwd, bwd in [("relu_forward", "relu_backward"), ("tanh_forward", "tanh_backward")]:
        want_y, got_y = np.empty_like(a), G.empty(a.shape)
        getattr(R, fwd)(want_y, a)
        getattr(G, fwd)(got_y, G.to_device(a))
        assert_close(G.to_host(got_y), want_y, 1e-6, 1e-6)
        want_dx, got_dx = np.empty_like(a), G.empty(a.shape)
        getattr(R, bwd)(want_dx, m, want_y)
        getattr(G, bwd)(got_dx, G.to_device(m), got_y)
        assert_close(G.to_host(got_dx), want_dx, 1e-6, 1e-6)
    want, got = np.empty_like(a), G.empty(a.shape)
    R.mul(want, a, m)
    G.mul(got, G.to_device(a), G.to_device(m))
    assert np.array_equal(G.to_host(got), want)
    logits, labels = (_rand(rng, (4, 5), np.float64) * 30), np.array([2, 0, 4, 4])
    pw, pg = np.empty_like(logits), G.empty(logits.shape, np.float64)
    lw = R.softmax_xent_forward(pw, logits, labels)
    lg = G.softmax_xent_forward(pg, G.to_device(logits), G.to_device(labels))
    assert isinstance(lg, float) and lg == pytest.approx(lw, rel=1e-12)
    assert_close(G.to_host(pg), pw, 1e-12, 1e-12)
    dw_, dg = np.empty_like(logits), G.empty(logits.shape, np.float64)
    R.softmax_xent_backward(dw_, pw, labels)
    G.softmax_xent_backward(dg, pg, labels)                # labels from the host
    assert_close(G.to_host(dg), dw_, 1e-12, 1e-12)


# ---------------------------------------------------------------- optimizers
@pytest.mark.parametrize("clip,dtype", [(0.0, np.float32), (0.5, np.float32), (0.5, np.float64)])
def test_row_sparse_optimizers(clip, dtype):
    rng = np.random.default_rng(4)
    W0, Gr = _rand(rng, (9, 4), dtype), _rand(rng, (9, 4), dtype)
    rows = np.array([0, 3, 8], np.int32)
    host = dict(W=W0.copy(), M=np.zeros_like(W0), V=np.zeros_like(W0), T=np.zeros(9, np.int64),
                H=np.ones_like(W0))
    dev = {n: G.to_device(a) for n, a in host.items()}
    g, r = G.to_device(Gr), G.to_device(rows)
    for step in range(3):
        sel = rows if step != 1 else rows[:2]              # a row skipped once: its own count
        R.adam_rows(host["W"], host["M"], host["V"], host["T"], Gr, sel, 1e-2, 0.9, 0.999, 1e-8, clip)
        G.adam_rows(dev["W"], dev["M"], dev["V"], dev["T"], g, G.to_device(sel), 1e-2, 0.9, 0.999,
                    1e-8, clip)
    R.adagrad_rows(host["W"], host["H"], Gr, rows, 0.1, 1e-6, clip)
    G.adagrad_rows(dev["W"], dev["H"], g, r, 0.1, 1e-6, clip)
    R.sgd_rows(host["W"], Gr, rows, 0.1, clip)
    G.sgd_rows(dev["W"], g, r, 0.1, clip)
    for n, a in host.items():
        assert_close(G.to_host(dev[n]), a, 1e-6, 1e-5)
    others = np.setdiff1d(np.arange(9), rows)
    assert np.array_equal(G.to_host(dev["W"])[others], W0[others])   # bit-identical
    assert not G.to_host(dev["M"])[others].any() and not G.to_host(dev["T"])[others].any()


# ---------------------------------------------------------------- interface
def test_cuda_exports_every_reference_kernel_with_its_arguments():
    for n, fn in vars(R).items():
        if n.startswith("_") or not inspect.isfunction(fn):
            continue
        assert hasattr(G, n), f"kernels.cuda lacks {n}"
        want = list(inspect.signature(fn).parameters)
        assert list(inspect.signature(getattr(G, n)).parameters) == want, n
    assert G.name == "cuda"


def test_no_device_is_a_clear_error(monkeypatch):
    from numba import cuda

    from sparsebp import gpu
    monkeypatch.setattr(cuda, "is_available", lambda: False)
    with pytest.raises(gpu.NoCudaDevice, match="no CUDA device found; use --backend cpu"):
        gpu.require_device()
    with pytest.raises(gpu.NoCudaDevice):
        sb.set_backend("cuda")
    assert sb.backend_name() == "cpu"


def test_gemm_knobs_reject_bad_values():
    """SPARSEBP_CUDA_TILE / _LOADS / _MINBLOCKS are read at import: a bad value stops the
    import with a message naming the variable (a fresh interpreter imports the module
    once with each bad value)."""
    import os
    import subprocess
    code = """
import importlib, os, sys
for var, bad in [("SPARSEBP_CUDA_TILE", "48"), ("SPARSEBP_CUDA_LOADS", "3"), ("SPARSEBP_CUDA_MINBLOCKS", "9")]:
    os.environ[var] = bad
    try:
        importlib.import_module("sparsebp.kernels.cuda_gemm")
        print("accepted", var)
    except ValueError as e:
        print(e)
    del os.environ[var]
    sys.modules.pop("sparsebp.kernels.cuda_gemm", None)
"""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=root, capture_output=True,
                         text=True, timeout=120).stdout.splitlines()
    assert out == ["SPARSEBP_CUDA_TILE=48: choose 32 or 64", "SPARSEBP_CUDA_LOADS=3: choose 4, 8 or 16",
                   "SPARSEBP_CUDA_MINBLOCKS=9: choose 1, 2, 3 or 4"]


def test_gpu_kernel_takes_cuda_jit_options():
    from sparsebp.kernels.cuda_launch import gpu_kernel

    @gpu_kernel(fastmath=False)
    def twice(out, a):
        for i in range(a.size):             # one thread (a closure's `cuda` is not the simulator's)
            out[i] = 2 * a[i]
    a = np.arange(5, dtype=np.float32)
    out = G.empty((5,))
    twice[1, 1](out, G.to_device(a))
    assert np.array_equal(G.to_host(out), 2 * a)


def test_gemm_switch():
    from sparsebp.kernels import cuda_gemm
    with pytest.raises(ValueError, match="unknown GEMM"):
        G.set_gemm("magma")
    if not cuda_gemm.cublas_available():
        with pytest.raises(RuntimeError, match="CuPy"):
            G.set_gemm("cublas")
    G.set_gemm("numba")
    assert G.gemm_name() == "numba"


# ---------------------------------------------------------------- the engine, end to end
def _train(backend, mode, steps):
    """A seeded 20-16-16-5 MLP; the weights (host copies) after each step."""
    with sb.using(backend):
        sb.seed(3)
        act, drop = (sb.Tanh, 0.25) if mode == "random" else (sb.ReLU, 0.0)
        model = sb.Sequential(sb.Linear(20, 16, k=4, mode=mode), act(), sb.Dropout(drop),
                              sb.Linear(16, 16, k=4, mode=mode), act(), sb.Linear(16, 5))
        opt = sb.Adam(model.parameters(), lr=1e-2, clip=1.0, lazy=mode != "random")
        loss_fn = sb.SoftmaxCrossEntropy()
        rng = np.random.default_rng(0)
        history = []
        for _ in range(steps):
            x, y = _rand(rng, (5, 20)), rng.integers(0, 5, 5)
            loss = loss_fn.forward(model.forward(x), y)
            model.backward(loss_fn.backward())
            opt.step()
            history.append(dict(loss=loss, rows=opt.rows_updated(),
                                weights=[sb.backend.K().to_host(p.data).copy() for p in model.parameters()],
                                grads=[p.dense_grad() for p in model.parameters()]))
        return history


@pytest.mark.parametrize("mode", ["topk", "unified", "random"])
def test_training_steps_match_the_cpu_backend(mode):
    """The same seeded model and data on both backends: the same weights after one
    step and after three (random: random-k, dropout, tanh and the dense Adam)."""
    cpu, gpu = _train("cpu", mode, 3), _train("cuda", mode, 3)
    for step in (0, 2):
        assert gpu[step]["loss"] == pytest.approx(cpu[step]["loss"], rel=1e-5)
        assert gpu[step]["rows"] == cpu[step]["rows"]
        for a, b in zip(gpu[step]["grads"], cpu[step]["grads"]):
            assert_close(a, b, 1e-5, 1e-4)
        for a, b in zip(gpu[step]["weights"], cpu[step]["weights"]):
            assert_close(a, b, 1e-5, 1e-4)


def test_gpu_benchmark_smoke(tmp_path, monkeypatch):
    """benchmarks/gpu.py validates every kernel before timing it; here at tiny sizes."""
    import json
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1]))
    from benchmarks import gpu as bench
    out = tmp_path / "gpu.json"
    assert bench.main(["--smoke", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert {"topk", "layer_backward", "mlp_step"} <= set(res)
    assert all(r["launches"] > 0 for r in res["mlp_step"])


def test_embedding_kernels_match_reference():
    rng = np.random.default_rng(5)
    W = rng.normal(size=(9, 5)).astype(np.float32)
    ids = np.array([3, 0, 3, 8, 3], np.int32)
    dy = rng.normal(size=(5, 5)).astype(np.float32)
    y = G.empty((5, 5), np.float32)
    G.embedding_forward(y, G.to_device(W), G.to_device(ids))
    assert_close(G.to_host(y), W[ids], 0, 0)
    want = np.full((9, 5), 7.0, np.float32)
    got = G.to_device(want.copy())
    R.embedding_backward(want, dy, ids)
    G.embedding_backward(got, G.to_device(dy), G.to_device(ids))
    assert_close(G.to_host(got), want)

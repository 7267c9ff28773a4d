"""What only the CUDA backend has: the fused unified select and bias, scratch buffers,
the launch path, the GEMM's options, the no-GPU error; and training steps on cuda
against the same steps on cpu.

Every kernel the backends share is tested on cuda with the others (the `backend`
fixture in conftest.py: test_kernels.py, test_layers.py, test_optim.py, ...).
CI has no GPU: conftest.py turns on Numba's CUDA simulator, which runs each GPU
thread as a Python thread, so the shapes here stay small (the simulator also
uses smaller blocks and tiles; the kernels' code is the same). On a machine with
a GPU, SPARSEBP_REAL_GPU=1 runs these tests on it.
"""
import sys

import numpy as np
import pytest

pytest.importorskip("numba.cuda", reason="numba-cuda is not installed")

from sparsebp import kernels  # noqa: E402
import sparsebp as sb  # noqa: E402
from conftest import assert_close, poison_cuda_empty, short_switch_interval  # noqa: E402

R = kernels.get("numpy")
G = kernels.get("cuda")
S_STAGE = G.S.STAGE            # 64 in the simulator, 4096 on a GPU


@pytest.fixture(autouse=True)
def simulator_setup(monkeypatch):
    """Poisoned `empty` and a short GIL switch interval (conftest.py: why)."""
    poison_cuda_empty(monkeypatch)
    with short_switch_interval():
        yield


def _rand(rng, shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


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

    state = [G.to_device(np.zeros(s, t)) for s, t in [((n_out, n_in), np.float32)] * 2 +
             [((n_out,), np.int64), ((n_out, 1), np.float32), ((n_out, 1), np.float32),
              ((n_out,), np.int64)]]
    W0, b0 = _rand(rng, (n_out, n_in)), _rand(rng, (n_out, 1))
    Wc, bc = G.to_device(W0), G.to_device(b0)

    def run(d):
        for a in (dx, dW, db, dx2, *state):
            a.copy_to_device(np.zeros(a.shape, a.dtype))
        Wc.copy_to_device(W0)
        bc.copy_to_device(b0)
        G.topk_unified_and_bias(u, db, d, k)
        G.unified_backward(dx, dW, d, x, W, u)
        G.topk_rows(idx, d, k)
        G.topk_backward(dx2, dW, d, x, W, idx)
        # the optimizers' step: tuples of arrays, one per parameter (a weight and a bias)
        every = G.to_device(np.arange(n_out, dtype=np.int32))
        Ws, Gs, rows = (Wc, bc), (dW, db.reshape(n_out, 1)), (u, every)
        M, V, T = (state[0], state[3]), (state[1], state[4]), (state[2], state[5])
        G.adam_step(Ws, M, V, T, Gs, rows, 1e-3, 0.9, 0.999, 1e-8, 1.0, 0)
        G.sgd_step(Ws, Gs, rows, 0.1, 0.0)
        return [G.to_host(a) for a in (u, idx, dx, dW, db, dx2, Wc, bc, *state)]
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
    c, d = Arr(), Arr()                                          # tuples: member by member
    memo = _memo(((a, c), 2))
    assert _same(((a, c), 2), memo)
    assert not _same(((c, a), 2), memo) and not _same(((a,), 2), memo) and not _same((a, 2), memo)
    assert not _same(((a, d), 2), memo) and not _same([(a, c), 3], memo)


def test_tuple_arguments_flatten_member_by_member():
    """A tuple of device arrays goes to the driver as its members' fields in order, as
    Numba passes it (numba-cuda's _prepare_args); its kind names every member's kind;
    anything else in a tuple leaves the call to Numba. (Pure Python: runs in CI.)"""
    from sparsebp.kernels.cuda_launch import _packed

    class Arr:                                   # a device array whose fields are known
        def __init__(self, kind, flat):
            self._sparsebp_packed = (kind, flat)

        def copy_to_host(self):
            pass
    a, b = Arr("A", (0, 0, 6, 4, 99, 2, 3, 12, 4)), Arr("B", (0, 0, 3, 8, 77, 3, 8))
    t = (a, b, a)
    kind, flat = _packed(t)
    assert kind == ("tuple", "A", "B", "A")
    assert flat == a._sparsebp_packed[1] + b._sparsebp_packed[1] + a._sparsebp_packed[1]
    assert _packed(t) is _packed(t)              # the same tuple again: not flattened anew
    assert _packed((a, 5)) is None and _packed(()) is None


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
        assert_close(gpu[step]["loss"], cpu[step]["loss"], 0, 1e-5)
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
    assert {"topk", "layer_backward", "mlp_step", "whole_step"} <= set(res)
    assert all(r["launches"] > 0 for r in res["mlp_step"])


@pytest.mark.parametrize("with_torch", [True, False])
def test_whole_step_benchmark_smoke(tmp_path, monkeypatch, capsys, with_torch):
    """Section (e) of benchmarks/gpu.py at tiny sizes: our steps validated against
    PyTorch's (on its CPU here) or, without torch, against our CPU backend; the peer
    rows are left out with a line that says why."""
    import json
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1]))
    from benchmarks import gpu as bench, gpu_step
    if with_torch:
        pytest.importorskip("torch")
    else:
        monkeypatch.setattr(gpu_step, "torch_or_none", lambda: (None, "PyTorch is not installed: skipped"))
    out = tmp_path / "gpu.json"
    assert bench.main(["--smoke", "--only", "whole_step", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["whole_step"]
    impls = {r["impl"] for r in rows}
    assert {"sparsebp dense", "sparsebp unified"} <= impls
    assert ({"PyTorch dense", "PyTorch unified"} <= impls) == with_torch
    assert all(r["allocations"] == 0 and r["launches"] > 0 for r in rows if r["impl"].startswith("sparsebp"))
    if not with_torch:
        assert "PyTorch is not installed" in capsys.readouterr().out



def test_whole_step_benchmark_stops_when_the_gradients_differ(tmp_path, monkeypatch):
    """A peer whose gradients are 10% off fails the section instead of being timed."""
    import json
    from pathlib import Path

    pytest.importorskip("torch")
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1]))
    from benchmarks import gpu as bench, gpu_step
    grads = gpu_step._grads
    monkeypatch.setattr(gpu_step, "_grads", lambda m, t=None: [g * (1.1 if t is not None else 1) for g in grads(m, t)])
    out = tmp_path / "gpu.json"
    assert bench.main(["--smoke", "--only", "whole_step", "--out", str(out)]) == 1
    assert "relative error" in json.loads(out.read_text())["errors"]["whole_step"]

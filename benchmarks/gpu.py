"""GPU benchmarks of meProp: validate each CUDA kernel against kernels/reference.py, then time it.

    python -m benchmarks.gpu [--quick | --smoke] [--out benchmarks/results-gpu.json]

Every kernel is first checked against the NumPy reference on the very inputs it
is timed on; a mismatch stops the run. Times are medians of CUDA-event intervals
over many repetitions after warm-up, in microseconds, all on the default stream
of one process; JIT compile time (a first call minus a warm one) is reported
apart. Kernel launches are counted by kernels/cuda_launch.py (and each cuBLAS
call is counted by a wrapper). Sections:
(a) per-row and unified top-k, next to torch.topk (or CuPy) when importable;
(b) one Linear layer's backward (bias, dx, dW): dense (cuBLAS via CuPy when
    importable, else our GEMM; the row says which) vs meProp top-k vs unified,
    hidden 1024-8192, k in {16, 64, 256}, batch 32-512;
(c) the MNIST MLP training step (784-500-500-10, k = 20, Adam): forward,
    backward and update apart, and the kernel launches per step;
(d) where a small backward's time goes: the host cost of a launch through
    Numba, through our short path, and under both (cuda.core's launch alone);
    each backward at the target size timed with either path; the GPU time of
    its kernels one by one (PyTorch's profiler, when torch is importable);
(e) the whole training step at the paper's GPU sizes (784-h-h-10, h = 2048-8192,
    B = 128 and 1024, k = 8, 64, 512), unified and dense, beside PyTorch's dense
    and unified-meProp steps on the same GPU: forward / backward / update
    (benchmarks/gpu_step.py).
The results name the GPU, our GEMM's configuration and the launch path
(SPARSEBP_CUDA_TILE, SPARSEBP_CUDA_LOADS, SPARSEBP_CUDA_MINBLOCKS, SPARSEBP_CUDA_LAUNCH).

Targets on a real GPU (stated here; CI has no GPU to measure them):
- unified layer backward at hidden 4096, k = 64, batch 128: at least 5x faster
  than the dense cuBLAS backward (the paper: 21x at batch 1024, hidden 8192,
  k = 64, PyTorch on a GTX 1080);
- per-row top-k of a 128 x 4096 dy: within 2x of torch.topk;
- the whole step (e) at h = 8192, B = 1024, k = 64: ours unified >= 2x faster than
  PyTorch's dense step and faster than PyTorch's unified meProp step; at the MNIST
  size (c) within 1.5x of PyTorch's dense step (issue 17).

--smoke validates and times once at tiny sizes; it also runs under Numba's
simulator (tests/test_cuda.py does that), where the times mean nothing.
"""
import argparse
import contextlib
import json
import time

import numpy as np
from numba import cuda

from sparsebp import kernels
import sparsebp as sb
from benchmarks import gpu_step
from benchmarks.sections import train_step
from sparsebp.kernels import cuda_gemm
from sparsebp.kernels.cuda_launch import SIM, gpu_kernel
from sparsebp import train as T
from sparsebp.gpu import NoCudaDevice, require_device
from sparsebp.tasks.mnist import build_mlp

R = kernels.get("numpy")


# ---------------------------------------------------------------- measuring
def gpu_us(fn, reps):
    """Median microseconds of fn() between two CUDA events, after 3 warm-up calls
    (none for a single repetition: --smoke checks that the code runs). The
    simulator's events time nothing: one call, and nan."""
    if SIM:
        fn()
        return float("nan")
    for _ in range(3 if reps > 1 else 0):
        fn()
    cuda.synchronize()
    ts = []
    for _ in range(reps):
        e0, e1 = cuda.event(), cuda.event()
        e0.record()
        fn()
        e1.record()
        e1.synchronize()
        ts.append(e0.elapsed_time(e1) * 1e3)
    return float(np.median(ts))


def compile_s(fn):
    """Seconds the first call of fn takes beyond a warm call: the JIT compile.
    (The simulator compiles nothing: one call, and 0.)"""
    if SIM:
        fn()
        return 0.0
    t0 = time.perf_counter()
    fn()
    cuda.synchronize()
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    fn()
    cuda.synchronize()
    return max(0.0, first - (time.perf_counter() - t0))


@contextlib.contextmanager
def count_launches():
    """Counts the kernel launches (and cuBLAS calls) inside the block: n[0] after it."""
    G = kernels.get("cuda")
    n, start = [0], G.launches()

    def cublas(fn, calls):
        def wrapped(*a):
            n[0] += calls
            return fn(*a)
        return wrapped
    saved = G.cublas_linear_forward, G.cublas_dense_backward
    G.cublas_linear_forward = cublas(saved[0], 2)           # matmul, bias add
    G.cublas_dense_backward = cublas(saved[1], 2)           # two matmuls
    try:
        yield n
    finally:
        n[0] += G.launches() - start
        G.cublas_linear_forward, G.cublas_dense_backward = saved


def check(name, got, want, tol=1e-4):
    """Every |got - want| <= tol * (1 + max |want|), or the run stops here."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    scale = tol * (1 + np.abs(want).max(initial=0))
    if got.shape != want.shape or not np.all(np.abs(got - want) <= scale):
        err = np.abs(got - want).max() if got.shape == want.shape else "shape"
        raise AssertionError(f"{name}: does not match kernels/reference.py (max error {err})")


def check_norm(name, got, want, tol=1e-5):
    """||got - want|| / ||want|| <= tol: for results of long float32 sums (a batch of
    1000 summed into dW), whose order differs between BLAS and our GEMM."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    err = np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-30)
    if got.shape != want.shape or not err <= tol:
        raise AssertionError(f"{name}: does not match kernels/reference.py (relative error {err:.2e})")


def peer():
    """('torch' | 'cupy', module) when one is importable with a GPU, else (None, None)."""
    if SIM:
        return None, None
    try:
        import torch
        if torch.cuda.is_available():
            return "torch", torch
    except ImportError:
        pass
    try:
        import cupy
        return "cupy", cupy
    except ImportError:
        return None, None


# ---------------------------------------------------------------- (a) top-k
def bench_topk(G, shapes, ks, reps, comp):
    rows, (pname, pm) = [], peer()
    rng = np.random.default_rng(1)
    for B, n in shapes:
        dy = rng.standard_normal((B, n)).astype(np.float32)
        d_dy = G.to_device(dy)
        for k in ks:
            idx, u = G.empty((B, k), np.int32), G.empty((k,), np.int32)
            comp.setdefault("topk_rows", compile_s(lambda: G.topk_rows(idx, d_dy, k)))
            comp.setdefault("topk_unified", compile_s(lambda: G.topk_unified(u, d_dy, k)))
            want, uw = np.empty((B, k), np.int32), np.empty(k, np.int32)
            R.topk_rows(want, dy, k)
            R.topk_unified(uw, dy.astype(np.float64), k)        # the GPU sums in float64
            check("topk_rows", G.to_host(idx), want, 0)
            check("topk_unified", G.to_host(u), uw, 0)
            row = dict(B=B, n=n, k=k, topk_us=gpu_us(lambda: G.topk_rows(idx, d_dy, k), reps),
                       unified_us=gpu_us(lambda: G.topk_unified(u, d_dy, k), reps),
                       peer=pname or "-", peer_us=float("nan"))
            if pname == "torch":
                t = pm.as_tensor(d_dy, device="cuda")
                row["peer_us"] = gpu_us(lambda: pm.topk(t.abs(), k, dim=1, sorted=False), reps)
            elif pname == "cupy":
                t = pm.asarray(d_dy)
                row["peer"] = "cupy.argpartition"
                row["peer_us"] = gpu_us(lambda: pm.argpartition(-pm.abs(t), k - 1, axis=1)[:, :k], reps)
            row["topk_over_peer"] = row["topk_us"] / row["peer_us"]
            rows.append(row)
    return rows


# ---------------------------------------------------------------- (b) layer backward
def _layer_fns(G, bufs, d_dy, d_x, d_W, k):
    """The three backwards of one layer, each with its bias gradient, called as
    Linear.backward calls them."""
    dx, dW, db, idx, u = bufs

    def dense():                         # as Linear.backward: db summed with dW
        G.dense_backward(dx, dW, d_dy, d_x, d_W, db)

    def topk():
        G.bias_grad(db, d_dy)
        G.topk_rows(idx, d_dy, k)
        G.topk_backward(dx, dW, d_dy, d_x, d_W, idx)
        return G.union_rows(idx, d_W.shape[0])

    def unified():                       # as Linear.backward: db summed with the selection
        G.topk_unified_and_bias(u, db, d_dy, k)
        G.unified_backward(dx, dW, d_dy, d_x, d_W, u)
    return dense, topk, unified


def bench_layer(G, hs, Bs, ks, reps, comp):
    rows = []
    rng = np.random.default_rng(2)
    dense_gemm = "cublas" if cuda_gemm.cublas_available() else "numba"
    for h in hs:
        W = (rng.standard_normal((h, h)) / np.sqrt(h)).astype(np.float32)
        dW, d_W = G.empty((h, h)), G.to_device(W)
        for B in Bs:
            x, dy = (rng.standard_normal((B, h)).astype(np.float32) for _ in range(2))
            d_x, d_dy = G.to_device(x), G.to_device(dy)
            dx, db = G.empty((B, h)), G.empty((h,))
            rx, rW, rb = np.empty_like(x), np.empty_like(W), np.empty(h, np.float32)
            R.bias_grad(rb, dy)
            for k in ks:
                idx, u = G.empty((B, k), np.int32), G.empty((k,), np.int32)
                dense, topk, unified = _layer_fns(G, (dx, dW, db, idx, u), d_dy, d_x, d_W, k)
                if k == ks[0]:                                    # dense does not depend on k
                    comp.setdefault("dense backward (numba GEMM)", compile_s(dense))
                    R.dense_backward(rx, rW, dy, x, W)
                    dense()
                    for got, want, nm in [(dx, rx, "dx"), (dW, rW, "dW"), (db, rb, "db")]:
                        check(f"dense {nm}", G.to_host(got), want, 1e-3)
                    t_numba = gpu_us(dense, reps)
                    G.set_gemm(dense_gemm)
                    t_dense = gpu_us(dense, reps)
                    with count_launches() as n_dense:
                        dense()
                    G.set_gemm("numba")
                res = dict(h=h, B=B, k=k, dense_gemm=dense_gemm, dense_us=t_dense,
                           dense_numba_us=t_numba, dense_launches=n_dense[0])
                for f, ref in [(topk, R.topk_backward), (unified, R.unified_backward)]:
                    comp.setdefault(f"{f.__name__} backward", compile_s(f))
                    rows_got = f()
                    s = G.to_host(idx if f is topk else u)
                    ref(rx, rW, dy, x, W, s)
                    r = np.unique(s)
                    check(f"{f.__name__} dx", G.to_host(dx), rx)
                    check(f"{f.__name__} dW", G.to_host(dW)[r], rW[r])
                    check(f"{f.__name__} db", G.to_host(db), rb)
                    if f is topk:
                        check("union_rows", G.to_host(rows_got), r, 0)
                    with count_launches() as n:
                        f()
                    res[f"{f.__name__}_us"] = t = gpu_us(f, reps)
                    res[f"{f.__name__}_speedup"] = t_dense / t
                    res[f"{f.__name__}_launches"] = n[0]
                rows.append(res)
    return rows


# ---------------------------------------------------------------- (c) the MLP step
def _one_step(backend, dims, mode, k, x, y):
    """The seeded MLP dims[0]-dims[1]-...-dims[-1] (equal hidden sizes, meProp on the
    hidden layers) on a backend after one Adam step: (model, loss_fn, optimizer)."""
    cfg = T.Config(mode=mode, k=k, hidden=dims[1], layers=len(dims) - 2)
    with sb.using(backend):
        sb.seed(0)
        model = build_mlp(dims[0], dims[-1], cfg)
        lf, opt = sb.SoftmaxCrossEntropy(), sb.Adam(model.parameters(), clip=0.0)   # as measured before clip 5 became the default
        train_step(model, opt, lf)(x, y)
    return model, lf, opt


def bench_mlp(G, dims, Bs, k, reps, gemms, comp):
    rows = []
    rng = np.random.default_rng(3)
    for B in Bs:
        x = rng.random((B, dims[0]), dtype=np.float32)
        y = rng.integers(0, dims[-1], B)
        for gemm in gemms:
            G.set_gemm(gemm)
            for mode in ("dense", "topk", "unified"):
                ref = _one_step("cpu", dims, mode, k, x, y)[0]
                model, lf, opt = _one_step("cuda", dims, mode, k, x, y)
                # Gradients to float tolerance. The weights after one Adam step (a step is
                # lr * g / (|g| + eps): about lr * sign(g)) only where g is well above
                # rounding: a near-zero g whose sign depends on the summation order flips
                # its step from +lr to -lr. There, a row left out would still be off by lr.
                for p, q in zip(model.parameters(), ref.parameters()):
                    with sb.using("cuda"):
                        g = p.dense_grad()
                    gq = q.dense_grad()
                    what = f"MLP step {mode}, B={B}, {gemm} GEMM"
                    check_norm(f"{what}: gradient", g, gq, 1e-3)
                    clear = np.abs(gq) > 1e-3 * np.abs(gq).max(initial=0)
                    check(f"{what}: weights", G.to_host(p.data)[clear], q.data[clear], opt.lr / 4)
                with sb.using("cuda"):
                    def forward():
                        lf.forward(model.forward(x), y)

                    def backward():
                        model.backward(lf.backward())

                    def step():
                        forward()
                        backward()
                        opt.step()
                    comp.setdefault("MLP step", compile_s(step))
                    with count_launches() as n:
                        step()
                    rows.append(dict(B=B, gemm=gemm, mode=mode, forward_us=gpu_us(forward, reps),
                                     backward_us=gpu_us(backward, reps), update_us=gpu_us(opt.step, reps),
                                     step_us=gpu_us(step, reps), launches=n[0]))
        G.set_gemm("numba")
    return rows


# ---------------------------------------------------------------- (d) launch cost
@gpu_kernel
def _empty_kernel(a, b, c, d, e, f, g, h):
    pass


def _host_us(fn, reps):
    """Host microseconds per call of fn, back to back (the GPU catches up at the end)."""
    for _ in range(10):
        fn()
    cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    cuda.synchronize()
    return (time.perf_counter() - t0) / reps * 1e6


def _profile(fn, reps=20):
    """(GPU microseconds of fn's kernels per call, [(kernel, calls per fn, us each)]) from
    PyTorch's profiler (it records every kernel of the process, Numba's too)."""
    import torch
    from torch.profiler import ProfilerActivity, profile
    fn()
    cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(reps):
            fn()
        cuda.synchronize()
        torch.cuda.synchronize()
    per = []
    for e in prof.key_averages():
        t = getattr(e, "self_device_time_total", 0) or getattr(e, "self_cuda_time_total", 0)
        if t and e.count:
            per.append((e.key[:60], e.count / reps, t / e.count))
    return sum(c * t for _, c, t in per), sorted(per, key=lambda r: -r[1] * r[2])


def _gemm_order(G, reps, target, have_torch):
    """The unified backward's GEMM pair alone, the product with the longer K first
    (the default) and in the order given (dx first): cuda_gemm.gemm's longest_first."""
    h, B, k = target
    rng = np.random.default_rng(5)
    d_W, d_x, d_dy = (G.to_device(rng.standard_normal(s).astype(np.float32)) for s in [(h, h), (B, h), (B, h)])
    dx, dW, u = G.empty((B, h)), G.empty((h, h)), G.empty((k,), np.int32)
    G.topk_unified(u, d_dy, k)
    products = G.unified_products(dx, dW, d_dy, d_x, d_W, k)
    rows = []
    for longest in (True, False):
        first = "dW" if longest and B > k else "dx"
        pair = lambda: cuda_gemm.gemm(*products, idx=u, longest_first=longest)  # noqa: E731
        what = f"unified GEMM pair alone, h={h} B={B} k={k}, {first} first"
        rows.append(dict(what=f"CUDA-event time, {what}", us=gpu_us(pair, reps)))
        if have_torch:
            try:
                rows.append(dict(what=f"GPU time, {what}", us=_profile(pair)[0]))
            except Exception as e:                # noqa: BLE001 - a diagnostic only
                rows.append(dict(what=f"(no profile: {type(e).__name__}: {e})", us=float("nan")))
    return rows


def bench_launch(G, reps, target):
    """Where a small meProp backward's time goes. The host cost of one launch of an
    empty kernel with 8 arrays: through Numba, through our short path (kernels/
    cuda_launch.py), and the floor under both (cuda.core's launch with the arguments
    already flattened). Then, for the target layer backward (h, B, k): CUDA-event time
    with either launch path, and the GPU time of its kernels, one by one, from
    PyTorch's profiler when torch is importable."""
    if SIM:                                       # no launch path, no profiler: the order only
        return [dict(what="(simulator)", us=float("nan"))] + _gemm_order(G, reps, target, False)
    arrs = [G.empty((4,)) for _ in range(8)]
    empty = lambda: _empty_kernel[1, 32](*arrs)  # noqa: E731
    rows = []
    for path in ("numba", "fast"):
        G.set_launch(path)
        rows.append(dict(what=f"host cost of one launch, empty kernel, 8 arrays, {path} path",
                         us=_host_us(empty, reps)))
    G.set_launch("fast")
    try:                                          # the floor: cuda.core's launch alone
        from sparsebp.kernels import cuda_launch as CL
        conf = _empty_kernel[1, 32]
        (kern, _), = [v for v in _empty_kernel._compiled.values() if v != CL._NUMBA]
        flat = [v for a in arrs for v in CL._packed(a)[1]]         # as the short path flattens them
        floor = lambda: CL._launch(conf.stream, conf.config, kern, *flat)  # noqa: E731
        rows.append(dict(what="host cost of cuda.core's launch, arguments already flattened",
                         us=_host_us(floor, reps)))
    except Exception as e:                        # noqa: BLE001 - a diagnostic only
        rows.append(dict(what=f"(cuda.core floor not measured: {type(e).__name__}: {e})", us=float("nan")))
    h, B, k = target
    rng = np.random.default_rng(4)
    d_W, d_x, d_dy = (G.to_device(rng.standard_normal(s).astype(np.float32)) for s in [(h, h), (B, h), (B, h)])
    bufs = (G.empty((B, h)), G.empty((h, h)), G.empty((h,)), G.empty((B, k), np.int32), G.empty((k,), np.int32))
    fns = dict(zip(("dense", "topk", "unified"), _layer_fns(G, bufs, d_dy, d_x, d_W, k)))
    G.set_gemm("cublas" if cuda_gemm.cublas_available() else "numba")
    try:
        import torch  # noqa: F401
        have_torch = True
    except ImportError:
        have_torch = False
    for name, f in fns.items():
        what = f"{name} backward h={h} B={B} k={k}"
        for path in ("numba", "fast"):
            G.set_launch(path)
            rows.append(dict(what=f"CUDA-event time as in (b), {what}, {path} launch", us=gpu_us(f, reps)))
            rows.append(dict(what=f"host time per call, {what}, {path} launch", us=_host_us(f, reps)))
        G.set_launch("fast")
        if have_torch:
            try:
                total, per = _profile(f)
            except Exception as e:                # noqa: BLE001 - a diagnostic only
                rows.append(dict(what=f"(no profile: {type(e).__name__}: {e})", us=float("nan")))
                continue
            rows.append(dict(what=f"GPU time of the kernels, {what}", us=total))
            rows += [dict(what=f"  {calls:g} x {kname}", us=t) for kname, calls, t in per]
    rows += _gemm_order(G, reps, target, have_torch)
    G.set_gemm("numba")
    return rows


def table(rows, cols):
    head = "| " + " | ".join(cols) + " |\n|" + " --- |" * len(cols)
    fmt = lambda v: f"{v:.1f}" if isinstance(v, float) else str(v)  # noqa: E731
    return head + "\n" + "\n".join("| " + " | ".join(fmt(r[c]) for c in cols) + " |" for r in rows)


def device_name():
    if SIM:
        return "Numba CUDA simulator (times mean nothing)"
    name = cuda.get_current_device().name
    return name.decode() if isinstance(name, bytes) else str(name)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    size = ap.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="the target sizes only, fewer repetitions")
    size.add_argument("--smoke", action="store_true", help="tiny sizes, one repetition (runs in the simulator)")
    ap.add_argument("--out", default="benchmarks/results-gpu.json")
    ap.add_argument("--only", choices=["topk", "layer_backward", "mlp_step", "launch", "whole_step"],
                    action="append",
                    help="run only these sections (repeatable)")
    a = ap.parse_args(argv)
    try:
        require_device()
    except NoCudaDevice as e:
        print(f"benchmarks.gpu: {e}")
        return 1
    G = kernels.get("cuda")
    if a.smoke:
        reps, cfg = 1, dict(topk=([(3, 37)], [1, 5]), layer=([24], [5], [1, 4]),
                            mlp=([12, 8, 8, 3], [3], 2), step=((16, 5), [6], [3], [2, 4]))
    elif a.quick:
        reps, cfg = 30, dict(topk=([(128, 4096)], [64]), layer=([4096], [128], [64]),
                             mlp=([784, 500, 500, 10], [100], 20), step=((784, 10), [8192], [1024], [64]))
    else:
        reps, cfg = 100, dict(topk=([(32, 1024), (128, 4096), (512, 8192)], [16, 64, 256]),
                              layer=([1024, 4096, 8192], [32, 128, 512], [16, 64, 256]),
                              mlp=([784, 500, 500, 10], [10, 100, 1000], 20),
                              step=((784, 10), [2048, 4096, 8192], [128, 1024], [8, 64, 512]))
    gemms = ["numba"] + (["cublas"] if cuda_gemm.cublas_available() else [])
    res = {"device": device_name(), "gemm_tile": cuda_gemm.BM, "gemm_loads": cuda_gemm.LOADS,
           "gemm_minblocks": cuda_gemm.MINBLOCKS, "launch_path": G.launch_name(), "compile_s": {}, "errors": {}}
    print(f"device: {res['device']}; our GEMM: {cuda_gemm.BM} x {cuda_gemm.BM} tiles, {cuda_gemm.LOADS} loads "
          f"per operand and step, at least {cuda_gemm.MINBLOCKS} block(s) per SM; "
          f"{res['launch_path']} launch path\n")
    sections = [
        ("topk", "## (a) top-k selection of a (B, n) dy, microseconds",
         lambda: bench_topk(G, *cfg["topk"], reps, res["compile_s"]),
         ["B", "n", "k", "topk_us", "unified_us", "peer", "peer_us", "topk_over_peer"]),
        ("layer_backward", "## (b) one Linear layer's backward (h x h, bias + dx + dW), microseconds",
         lambda: bench_layer(G, *cfg["layer"], reps, res["compile_s"]),
         ["h", "B", "k", "dense_gemm", "dense_us", "dense_numba_us", "topk_us", "unified_us", "topk_speedup",
          "unified_speedup", "dense_launches", "topk_launches", "unified_launches"]),
        ("mlp_step", f"## (c) MLP {'-'.join(map(str, cfg['mlp'][0]))} training step (Adam, "
         f"k = {cfg['mlp'][2]}), microseconds",
         lambda: bench_mlp(G, *cfg["mlp"], reps, gemms, res["compile_s"]),
         ["B", "gemm", "mode", "forward_us", "backward_us", "update_us", "step_us", "launches"]),
        ("launch", "## (d) where a small backward's time goes, microseconds",
         lambda: bench_launch(G, reps, (4096, 128, 64) if not a.smoke else (24, 5, 4)),
         ["what", "us"]),
        ("whole_step", f"## (e) the whole step, MLP {cfg['step'][0][0]}-h-h-{cfg['step'][0][1]}, Adam, beside "
         "PyTorch (benchmarks/gpu_step.py), microseconds",
         lambda: gpu_step.with_ratios(gpu_step.bench_step(*cfg["step"], reps)), gpu_step.COLUMNS),
    ]
    failed = False
    for key, title, run, cols in sections:
        if a.only and key not in a.only:
            continue
        # A failing section (a kernel that does not match the reference) is
        # reported and the next one still runs: one GPU session measures all it can.
        try:
            res[key] = run()
        except Exception as e:                                  # noqa: BLE001
            res["errors"][key] = f"{type(e).__name__}: {e}"
            print(f"{title}\n\nFAILED: {res['errors'][key]}\n", flush=True)
            failed = True
        else:
            print(f"{title}\n\n{table(res[key], cols)}\n", flush=True)
        with open(a.out, "w") as f:                             # after every section
            json.dump(res, f, indent=1)
    print("JIT compile, seconds: " + ", ".join(f"{k} {v:.2f}" for k, v in res["compile_s"].items()))
    print(f"written {a.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

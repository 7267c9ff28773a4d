"""The benchmark sections: for each case, validate against kernels/reference.py, then time.

Each `validate_*` raises AssertionError on a mismatch and is what
tests/test_benchmarks.py runs at tiny sizes; each `bench_*` validates a case on its
own inputs before it hands the implementations to `timer` ({name: fn} -> {name:
median microseconds}), which times them side by side.
"""
import os

import numpy as np

from sparsebp import kernels
import sparsebp as sb

R = kernels.get("numpy")
C = kernels.get("cpu")
F32 = np.float32

FULL = {"topk": dict(Bs=(1, 50, 128), ns=(500, 1000, 2000, 4096), ks=(10, 20, 80)),
        "layer": dict(Bs=(1, 32, 50, 128), ns=(500, 2000, 4000), ks=(10, 20, 50)),   # issue 15's grid
        "mlp": dict(Bs=(1, 10, 50, 128))}
QUICK = {"topk": dict(Bs=(1, 50), ns=(500,), ks=(20,)),
         "layer": dict(Bs=(1, 50), ns=(500,), ks=(20,)),
         "mlp": dict(Bs=(1, 50))}


def cost_model(sizes=(784, 500, 500, 10), k=20):
    """Per-example multiply-adds and weights of the MLP, meProp on every hidden layer
    (the output layer dense), as derived in benchmarks/README.md. 2 flops per
    multiply-add; the input layer needs no dx."""
    layers = list(zip(sizes[:-1], sizes[1:]))
    meprop = [i < len(layers) - 1 for i in range(len(layers))]
    fwd = sum(i * o for i, o in layers)
    dense = fwd + sum(i * o for i, o in layers[1:])
    sel = [k if m else o for (i, o), m in zip(layers, meprop)]       # rows of W with a gradient
    mep = sum(s * i for s, (i, o) in zip(sel, layers)) + sum(s * i for s, (i, o) in zip(sel[1:], layers[1:]))
    hidden = [(i, o) for (i, o), m in zip(layers, meprop) if m]
    hid_dense = sum(i * o for i, o in hidden) + sum(i * o for i, o in hidden[1:])
    hid_mep = sum(k * i for i, o in hidden) + sum(k * i for i, o in hidden[1:])
    return dict(forward_mflop=2 * fwd / 1e6, dense_backward_mflop=2 * dense / 1e6,
                meprop_backward_mflop=2 * mep / 1e6, backward_ratio=dense / mep,
                hidden_backward_ratio=hid_dense / hid_mep,
                weights=sum(i * o + o for i, o in layers),
                unified_weights_selected_bias=sum(s * i + s for s, (i, o) in zip(sel, layers)),
                unified_weights_sparsebp=sum(s * i + o for s, (i, o) in zip(sel, layers)))


def first_calls():
    """Call every Numba kernel once with the float32 types training uses (compiles them)."""
    rng = np.random.default_rng(0)
    dy, x, W = (rng.standard_normal(s).astype(F32) for s in [(3, 8), (3, 5), (8, 5)])
    idx, u = np.empty((3, 2), np.int32), np.empty(2, np.int32)
    C.topk_rows(idx, dy, 2)
    C.topk_unified(u, dy, 2)
    rows = C.union_rows(idx, 8)
    dx, dW = np.empty_like(x), np.empty_like(W)
    C.topk_backward(dx, dW, dy, x, W, idx)
    C.unified_backward(dx, dW, dy, x, W, u)
    C.dense_backward(dx, dW, dy, x, W)
    M, V, T = np.zeros_like(W), np.zeros_like(W), np.zeros(8, np.int64)
    C.zero_unselected(dW, rows)
    C.adam_rows(W, M, V, T, dW, rows, 1e-3, 0.9, 0.999, 1e-8, 5.0)
    C.adagrad_rows(W, M, dW, rows, 0.1, 1e-6, 0.0)
    C.sgd_rows(W, dW, rows, 0.1, 0.0)
    C.bias_grad(W[:, 0].copy(), dy)
    C.relu_forward(dx, x)
    C.relu_backward(dx, dx, x)
    C.softmax_xent_backward(dy, dy.copy(), np.arange(3))
    C.softmax_xent_forward(dy.copy(), dy, np.arange(3))


INPUTS = 8      # timed calls cycle through this many inputs: with one input repeated,
                # the branch predictor learns a selection's branches and flatters it


def cycling(fn, inputs):
    """A function of no arguments calling fn(*inputs[i]) for i = 0, 1, 2, ... in turn."""
    state = [0]

    def call():
        state[0] = (state[0] + 1) % len(inputs)
        return fn(*inputs[state[0]])
    return call


def close(name, got, want, rtol=1e-4):
    """|got - want| <= rtol (|want| + max|want|): float32 sums in another order."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, f"{name}: shape {got.shape} != {want.shape}"
    scale = np.abs(want).max() if want.size else 0.0
    bad = np.abs(got - want) > rtol * (np.abs(want) + scale)
    assert not bad.any(), f"{name}: {int(bad.sum())} entries differ from kernels/reference.py"


# ---------------------------------------------------------------- (a) top-k
def validate_topk(dy, k):
    """Our selections equal the reference's exactly (the tie rule, ascending rows)."""
    B, n = dy.shape
    got, want = np.empty((B, k), np.int32), np.empty((B, k), np.int32)
    C.topk_rows(got, dy, k)
    R.topk_rows(want, dy, k)
    assert np.array_equal(got, want), f"topk_rows B={B} n={n} k={k} differs from the reference"
    got, want = np.empty(k, np.int32), np.empty(k, np.int32)
    C.topk_unified(got, dy, k)
    R.topk_unified(want, dy, k)
    assert np.array_equal(got, want), f"topk_unified B={B} n={n} k={k} differs from the reference"


def bench_topk(timer, Bs, ns, ks):
    rows, rng = [], np.random.default_rng(1)
    for B in Bs:
        for n in ns:
            dys = [(rng.standard_normal((B, n)).astype(F32),) for _ in range(INPUTS)]  # (B, n)
            for k in ks:
                for (dy,) in dys:
                    validate_topk(dy, k)
                idx, u = np.empty((B, k), np.int32), np.empty(k, np.int32)
                r = dict(B=B, n=n, k=k, **timer({
                    "rows_us": cycling(lambda dy: C.topk_rows(idx, dy, k), dys),
                    "argpartition_us": cycling(lambda dy: np.argpartition(np.abs(dy), n - k, axis=1), dys),
                    "unified_us": cycling(lambda dy: C.topk_unified(u, dy, k), dys),
                    "argpartition_unified_us": cycling(
                        lambda dy: np.argpartition(np.abs(dy).sum(0), n - k), dys)}))
                r["rows_speedup"] = r["argpartition_us"] / r["rows_us"]
                rows.append(r)
    return rows


# ---------------------------------------------------------------- (b) layer backward
def layer_case(rng, B, n):
    """dy, x: (B, n) float32; W: (n, n) float32."""
    return (rng.standard_normal((B, n)).astype(F32), rng.standard_normal((B, n)).astype(F32),
            rng.standard_normal((n, n)).astype(F32))


def validate_layer(dy, x, W, k):
    """Dense, per-example and unified backward against the reference, untouched rows too."""
    B, n_out = dy.shape
    rdx, rdW = np.empty_like(x), np.empty_like(W)
    R.dense_backward(rdx, rdW, dy, x, W)
    dx, dW = np.empty_like(x), np.empty_like(W)
    C.dense_backward(dx, dW, dy, x, W)
    close("dense dx", dx, rdx)
    close("dense dW", dW, rdW)
    for mode in ("topk", "unified"):
        shape = (B, k) if mode == "topk" else (k,)
        idx, ridx = np.empty(shape, np.int32), np.empty(shape, np.int32)
        getattr(C, "topk_rows" if mode == "topk" else "topk_unified")(idx, dy, k)
        getattr(R, "topk_rows" if mode == "topk" else "topk_unified")(ridx, dy, k)
        assert np.array_equal(idx, ridx), f"{mode} selection differs from the reference"
        rdx, rdW = np.empty_like(x), np.zeros_like(W)
        getattr(R, f"{mode}_backward")(rdx, rdW, dy, x, W, ridx)
        dx, dW = np.full_like(x, np.nan), np.full_like(W, np.nan)
        getattr(C, f"{mode}_backward")(dx, dW, dy, x, W, idx)
        rows = C.union_rows(idx, n_out) if mode == "topk" else idx
        assert np.array_equal(rows, R.union_rows(ridx, n_out)), f"{mode}: union differs"
        close(f"{mode} dx", dx, rdx)
        close(f"{mode} dW", dW[rows], rdW[rows])
        assert np.isnan(np.delete(dW, rows, axis=0)).all(), f"{mode} wrote unselected rows of dW"


def threaded(fn):
    """fn with every CPU kernel splitting its work across Numba's threads."""
    def run():
        saved, C.PARALLEL_MIN_WORK = C.PARALLEL_MIN_WORK, 0
        try:
            fn()
        finally:
            C.PARALLEL_MIN_WORK = saved
    return run


def bench_layer(timer, Bs, ns, ks):
    """One Linear layer's backward (bias, select, dx, dW), dense / top-k / unified and
    the sparse modes on the NumPy reference, one thread each: one call of
    `sparsebp bench layer`'s grid (sparsebp/bench_layer.py), which validates every
    mode against the reference before timing them side by side."""
    from sparsebp.bench_layer import layer_grid
    return layer_grid(ns, Bs, ks, ("dense", "topk", "unified"), reference=True, timer=timer, seed=2,
                      log=None)


def bench_breakdown(timer, B=50, n=500, k=20):
    """Where one layer's backward spends its time, kernel by kernel (one thread)."""
    dy, x, W = layer_case(np.random.default_rng(4), B, n)
    validate_layer(dy, x, W, k)
    dx, dW = np.empty_like(x), np.empty_like(W)
    idx, u = np.empty((B, k), np.int32), np.empty(k, np.int32)
    C.topk_rows(idx, dy, k)
    C.topk_unified(u, dy, k)
    start, ex, cf = C._by_row(dy, idx, n)
    dyk, dykT, ar = C._gather_columns(dy, u)
    t = timer({
        "dense: dx = dy W (BLAS)": lambda: np.matmul(dy, W, out=dx),
        "dense: dW = dy^T x (BLAS)": lambda: np.matmul(dy.T, x, out=dW),
        "top-k: select (topk_rows)": lambda: C.topk_rows(idx, dy, k),
        "top-k: group entries by row": lambda: C._by_row(dy, idx, n),
        "top-k: dx, B k rows of W": lambda: C._dx_rows(dx, dy, W, idx, 0, B),
        "top-k: dW, the union's rows": lambda: C._dW_rows(dW, x, start, ex, cf, 0, n),
        "top-k: union_rows": lambda: C.union_rows(idx, n),
        "unified: select (topk_unified)": lambda: C.topk_unified(u, dy, k),
        "unified: gather dy[:, idx]": lambda: C._gather_columns(dy, u),
        "unified: dx and dW, hand loops (the default here)": lambda: C._unified_part(dx, dW, x, W, u, dyk, dykT, ar, 0, B, 0, k),
        "unified: dx and dW, BLAS (when B >= 32, B k >= 1600)": lambda: C._unified_blas(dx, dW, dy, x, W, u)})
    union = len(C.union_rows(idx, n))
    return [dict(B=B, n=n, k=k, part=name, us=v, union_rows=union) for name, v in t.items()]


# ---------------------------------------------------------------- (c) the MLP step
def mnist_batch(B, i=0):
    """The i-th batch of B MNIST training images (784 float32 in [0, 1]) and labels;
    random if MNIST is absent."""
    try:
        from sparsebp.data import load_mnist
        d = load_mnist()
        sl = slice(i * B, (i + 1) * B)
        return np.ascontiguousarray(d.train_x[sl]), d.train_y[sl].astype(np.int64), "MNIST"
    except (OSError, ValueError):
        rng = np.random.default_rng(3 + i)
        return rng.random((B, 784), dtype=F32), rng.integers(0, 10, B), "random"


def build(mode, backend="cpu", k=20):
    """The paper's MLP: meProp on the two hidden layers, the output layer dense."""
    with sb.using(backend):
        sb.seed(0)
        kk = None if mode == "dense" else k
        model = sb.Sequential(sb.Linear(784, 500, k=kk, mode=mode), sb.ReLU(),
                              sb.Linear(500, 500, k=kk, mode=mode), sb.ReLU(), sb.Linear(500, 10))
        # clip=0: the unclipped Adam of the PyTorch peer (and of the numbers in the README)
        return model, sb.Adam(model.parameters(), lr=1e-3, clip=0.0), sb.SoftmaxCrossEntropy()


def train_step(model, opt, loss_fn):
    """step(x, y) -> loss: forward, loss, backward and update of one minibatch, on the
    current backend."""
    def step(x, y):
        loss = loss_fn.forward(model.forward(x), y)
        model.backward(loss_fn.backward())
        opt.step()
        return loss
    return step


def one_step(backend, model, opt, loss_fn, x, y):
    with sb.using(backend):
        return train_step(model, opt, loss_fn)(x, y)


def adam_from(params, init):
    """The reference Adam's first step from init, on each parameter's own gradient."""
    out = []
    for p, W in zip(params, init):
        W, G = W.reshape(W.shape[0], -1).copy(), np.asarray(p.grad).reshape(W.shape[0], -1)
        rows = np.arange(W.shape[0], dtype=np.int32) if p.rows is None else p.rows
        M, V, T = np.zeros_like(W), np.zeros_like(W), np.zeros(W.shape[0], np.int64)
        R.adam_rows(W, M, V, T, G, rows, 1e-3, 0.9, 0.999, 1e-8, 0.0)
        out.append(W.reshape(p.shape))
    return out


def validate_mlp(mode, x, y):
    """One step on the Numba backend against the same step on the reference: the loss,
    the selections and the gradients; then our update against the reference Adam
    applied to our gradients (Adam's first step is g / |g|: a gradient entry that is
    a float32 rounding error away from zero may take either sign, so the parameters
    of two steps are not compared directly)."""
    ref, ours = build(mode, "numpy"), build(mode, "cpu")
    init = [p.data.copy() for p in ours[0].parameters()]
    l_ref, l_ours = one_step("numpy", *ref, x, y), one_step("cpu", *ours, x, y)
    assert abs(l_ref - l_ours) <= 1e-5 * abs(l_ref), f"MLP {mode}: loss differs"
    for a, b in zip(ref[0].layers, ours[0].layers):
        if getattr(a, "selected", None) is not None:
            assert np.array_equal(a.selected, b.selected), f"MLP {mode}: selection differs"
    for i, (p, q) in enumerate(zip(ref[0].parameters(), ours[0].parameters())):
        close(f"MLP {mode} gradient {i}", q.dense_grad(), p.dense_grad())
    for i, (q, want) in enumerate(zip(ours[0].parameters(), adam_from(ours[0].parameters(), init))):
        close(f"MLP {mode} parameter {i} after Adam", q.data, want, 1e-6)


def weights_updated(model):
    """Weights (and biases) the last backward gave a gradient, i.e. the update touches."""
    return sum(p.data.size if p.rows is None else len(p.rows) * p.data.size // p.shape[0]
               for p in model.parameters())


def bench_mlp(timer, Bs):
    """Forward, backward, update and the whole step of each mode, all side by side,
    cycling through INPUTS minibatches of MNIST."""
    rows = []
    sb.set_backend("cpu")
    for B in Bs:
        batches = [mnist_batch(B, i)[:2] for i in range(INPUTS)]
        src = mnist_batch(B)[2]
        fns, models = {}, {}
        for mode in ("dense", "topk", "unified"):
            for x, y in batches[:2]:
                validate_mlp(mode, x, y)
            model, opt, loss_fn = build(mode)
            models[mode] = (model, opt, loss_fn)

            def forward(x, y, model=model, loss_fn=loss_fn):
                loss_fn.forward(model.forward(x), y)

            def backward(model=model, loss_fn=loss_fn):
                model.backward(loss_fn.backward())
            step = train_step(model, opt, loss_fn)
            step(*batches[0])
            fns.update({(mode, "forward_us"): cycling(forward, batches), (mode, "backward_us"): backward,
                        (mode, "update_us"): opt.step, (mode, "step_us"): cycling(step, batches)})
        t = timer(fns)
        for mode, (model, opt, loss_fn) in models.items():
            r = dict(B=B, mode=mode, data=src, **{key: v for (m, key), v in t.items() if m == mode})
            r["step_over_forward"] = r["step_us"] / r["forward_us"]
            r["step_speedup"] = t[("dense", "step_us")] / r["step_us"]
            touched = []
            for x, y in batches:
                one_step("cpu", model, opt, loss_fn, x, y)
                touched.append(weights_updated(model))
            r["weights_updated"] = int(round(np.mean(touched)))
            rows.append(r)
    return rows


# ---------------------------------------------------------------- (d) PyTorch peers
def validate_torch(mode, x, y):
    """One PyTorch step against one reference step from the same weights: gradients
    (unselected rows zero in both), then torch's Adam against the reference Adam on
    torch's gradients (a zero-gradient row does not move in a first step)."""
    from benchmarks import torch_peer
    model, opt, loss_fn = build(mode, "numpy")
    weights = [(model.layers[i].weight.data.copy(), model.layers[i].bias.data.copy()) for i in (0, 2, 4)]
    one_step("numpy", model, opt, loss_fn, x, y)
    _, step, tmodel = torch_peer.step_fns(mode, weights, [(x, y)])
    step()
    tparams = [torch_peer.Grad(p) for p in tmodel.parameters()]
    for i, (p, q) in enumerate(zip(model.parameters(), tparams)):
        close(f"torch {mode} gradient {i}", q.grad, p.dense_grad())
    init = [a for wb in weights for a in wb]
    for i, (q, want) in enumerate(zip(tparams, adam_from(tparams, init))):
        close(f"torch {mode} parameter {i} after Adam", q.data, want, 1e-6)


def time_torch(timer, Bs, ours=False):
    """{B: {key: us}} for PyTorch's dense and unified steps (validated first) and,
    with ours, our unified step in the same rounds."""
    from benchmarks import torch_peer
    out = {}
    for B in Bs:
        batches = [mnist_batch(B, i)[:2] for i in range(INPUTS)]
        fns = {}
        for mode in ("dense", "unified"):
            for x, y in batches[:2]:
                validate_torch(mode, x, y)
            model = build(mode, "numpy")[0]
            weights = [(model.layers[i].weight.data, model.layers[i].bias.data) for i in (0, 2, 4)]
            forward, step, _ = torch_peer.step_fns(mode, weights, batches)
            fns.update({f"{mode} forward_us": forward, f"{mode} step_us": step})
        if ours:
            model, opt, loss_fn = build("unified")

            def step(x, y):
                loss_fn.forward(model.forward(x), y)
                model.backward(loss_fn.backward())
                opt.step()
            fns["ours_us"] = cycling(step, batches)
        out[B] = timer(fns)
    return out


def torch_in_fresh_process(Bs, threads, quick):
    """time_torch in a fresh interpreter: there PyTorch's OpenMP runtime does not share
    the process with Numba's and OpenBLAS's thread pools (see bench_torch)."""
    import json
    import subprocess
    import sys
    code = ("import json, sys; from benchmarks import run, sections; run.set_threads(%d); "
            "t = run.Timer(budget_s=0.02, min_rounds=3) if %r else run.Timer(); "
            "print(json.dumps(sections.time_torch(t, %r)))" % (threads, quick, tuple(Bs)))
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    r = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=1800)
    if r.returncode != 0:
        raise RuntimeError(r.stderr)
    return {int(B): t for B, t in json.loads(r.stdout.splitlines()[-1]).items()}


def bench_torch(timer, Bs, threads, quick=False):
    """PyTorch's steps and ours side by side in this process, in rounds of long
    batches (0.2 s: switching between PyTorch's OpenMP runtime and our OpenBLAS
    threads costs a little at each switch, so it is amortized over ~100 steps);
    then PyTorch alone in a fresh process, a check that sharing the process does not
    slow it (it did, 2-3x, when torch was imported after Numba had started its
    OpenMP runtime: run.py imports torch first). The ratios use the faster of the two
    PyTorch times."""
    try:
        import torch
    except ImportError:
        return None
    from benchmarks.run import Timer
    long = Timer(budget_s=4 * timer.budget_s, batch_s=0.2, min_rounds=timer.min_rounds)
    here, fresh = time_torch(long, Bs, ours=True), torch_in_fresh_process(Bs, torch.get_num_threads(), quick)
    rows = []
    for B in Bs:
        for mode in ("dense", "unified"):
            r = dict(B=B, mode=mode, threads=torch.get_num_threads(), ours_unified_us=here[B]["ours_us"],
                     forward_us=min(here[B][f"{mode} forward_us"], fresh[B][f"{mode} forward_us"]),
                     step_here_us=here[B][f"{mode} step_us"], step_fresh_us=fresh[B][f"{mode} step_us"])
            r["step_us"] = min(r["step_here_us"], r["step_fresh_us"])
            r["unified_speedup"] = r["step_us"] / r["ours_unified_us"]
            rows.append(r)
    return rows


# ---------------------------------------------------------------- the issue's targets
def _find(rows, **kw):
    return next((r for r in rows or [] if all(r.get(a) == v for a, v in kw.items())), None)


ISSUE_GRID = dict(ns=(500, 2000, 4000), Bs=(1, 32, 128), ks=(10, 50))   # issue 15's user grid


def _verdict(ok, judged):
    return ("yes" if ok else "NO") if judged else f"not judged ({'yes' if ok else 'NO'})"


def _row(name, want, got, ok, judged):
    return dict(target=name, want=want, got=got, met=_verdict(ok, judged))


def _layer_targets(lay):
    """Issue 15's targets on one layer's backward (rows of `bench_layer`)."""
    out, g = [], ISSUE_GRID
    grid = [r for r in lay if r["n"] in g["ns"] and r["B"] in g["Bs"] and r["k"] in g["ks"]]
    if grid and all("unified_speedup" in r for r in grid):
        worst = min(grid, key=lambda r: r["unified_speedup"])
        out.append(_row(f"layer: unified vs dense, every cell of the {len(grid)}-cell grid", ">= 1x",
                        f"{worst['unified_speedup']:.1f}x at worst (n={worst['n']} B={worst['B']} k={worst['k']})",
                        worst["unified_speedup"] >= 1, all(r["judged"] for r in grid)))
    refd = [r for r in lay if "unified_vs_ref" in r]
    if refd:
        worst = min(refd, key=lambda r: r["unified_vs_ref"])
        out.append(_row("layer: unified (Numba backend) vs the NumPy reference, every cell", ">= 1x",
                        f"{worst['unified_vs_ref']:.2f}x at worst (n={worst['n']} B={worst['B']} k={worst['k']})",
                        worst["unified_vs_ref"] >= 1, all(r["judged"] for r in refd)))
    r = _find(lay, n=500, k=20, B=50)
    for m, want in (("unified", 8), ("topk", 3)):
        if r and f"{m}_speedup" in r:
            out.append(_row(f"layer n=500 k=20 B=50: {m} vs dense", f">= {want}x", f"{r[m + '_speedup']:.1f}x",
                            r[m + "_speedup"] >= want, r["judged"]))
    cells = [r for r in lay if r["n"] >= 2000 and r["k"] == 10 and r["B"] <= 32 and "unified_speedup" in r]
    if cells:
        worst = min(cells, key=lambda r: r["unified_speedup"] / (0.25 * r["n"] / r["k"]))
        out.append(_row("layer n>=2000 k=10 B<=32: unified vs dense", ">= 0.25 n/k",
                        f"{worst['unified_speedup']:.1f}x vs {0.25 * worst['n'] / worst['k']:.0f}x wanted at worst "
                        f"(n={worst['n']} B={worst['B']})",
                        all(c["unified_speedup"] >= 0.25 * c["n"] / c["k"] for c in cells),
                        all(c["judged"] for c in cells)))
    cells = [r for r in lay if r["k"] / r["n"] <= 0.02 and "topk_speedup" in r]
    if cells:
        worst = min(cells, key=lambda r: r["topk_speedup"])
        out.append(_row("layer, k/n <= 2%: topk vs dense, every cell", ">= 1x",
                        f"{worst['topk_speedup']:.1f}x at worst (n={worst['n']} B={worst['B']} k={worst['k']})",
                        worst["topk_speedup"] >= 1, all(c["judged"] for c in cells)))
    return out


def targets(res):
    """[{target, want, got, met}] for every target of issue 15 that this run measured.

    met: "yes", "NO", or "not judged (yes|NO)" when a cell it rests on was not
    judged (load above the cores or its rounds spread over 20%; see the rows' `why`)
    or, for the sections without per-row judgement, when the run's load or the
    section's round spread was too high (res["judged"], res["spread"])."""
    top, mlp, tor, spread = res.get("topk"), res.get("mlp"), res.get("torch"), res.get("spread", {})
    out = _layer_targets(res.get("layer") or [])

    def ok(section):
        return res.get("judged", True) and spread.get(section, 0.0) <= 0.2
    r = _find(top, B=50, n=500, k=20)
    if r:
        out.append(_row("per-example top-k of a 50x500 dy, k=20", "< 60 us", f"{r['rows_us']:.1f} us",
                        r["rows_us"] < 60, ok("topk")))
    for B in (1, 50):
        ours = _find(mlp, B=B, mode="unified")
        if ours:
            out.append(_row(f"MLP step B={B} unified: step / forward", "<= 1.6", f"{ours['step_over_forward']:.2f}",
                            ours["step_over_forward"] <= 1.6, ok("mlp")))
        for mode, want in (("dense", 10 if B == 1 else 3), ("unified", 1.5)):
            t = _find(tor, B=B, mode=mode)
            if t and (B == 50 or mode == "dense"):
                s = t["unified_speedup"]
                out.append(_row(f"MLP step B={B}: ours unified vs PyTorch {mode}", f">= {want}x", f"{s:.1f}x",
                                s >= want, ok("torch")))
    return out

"""Section (e) of benchmarks/gpu.py: the whole training step at the paper's GPU sizes,
beside PyTorch on the same GPU.

The MLP 784-h-h-10 (ReLU, meProp on both hidden layers, the output layer dense), Adam,
minibatch B, for h = 2048, 4096, 8192, B = 128, 1024 and k = 8, 64, 512: sparsebp's
unified meProp step and its dense step, PyTorch's dense step (`nn.Linear` + Adam) and
PyTorch's unified meProp step (the official code's function, re-expressed in
benchmarks/torch_peer.py), all from the same initial weights and the same minibatch
(resident on the device: no copy is timed). Forward (with the loss), backward and
update are timed apart with CUDA events recorded between them (numba's events for
ours, torch.cuda.Event for PyTorch), medians over repetitions, the contenders in
turns within each round. Before timing, one step's gradients of ours are checked
against PyTorch's (unified: the same selection, so the same rows), or, without
torch, against our CPU backend at small sizes.

What differs on purpose: our Adam updates the selected rows only (meProp's point);
PyTorch's updates every weight, as the official code's does. PyTorch zeroes the
gradients (set to None) at the start of its backward.
"""
import numpy as np
from numba import cuda

import sparsebp as sb
from sparsebp import kernels
from sparsebp import train as T
from sparsebp.kernels.cuda_launch import SIM
from sparsebp.tasks.mnist import build_mlp

PHASES = ("forward", "backward", "update")


def torch_or_none():
    """(torch, device) when torch is importable (its GPU when it has one, else its CPU:
    the simulator's smoke run), or (None, reason)."""
    try:
        import torch
    except ImportError:
        return None, "PyTorch is not installed: its peers are skipped (pip install torch)"
    return torch, "cuda" if torch.cuda.is_available() and not SIM else "cpu"


def ours(mode, k, dims, x, y, seed=0):
    """(phases, model, counts of one warm step) of sparsebp's step on cuda; x: (B, n_in)
    float32 and y: (B,) int64, device arrays."""
    cfg = T.Config(mode=mode, k=k, hidden=dims[1], layers=len(dims) - 2, dropout=0.0)
    with sb.using("cuda"):
        sb.seed(seed)
        model = build_mlp(dims[0], dims[-1], cfg)
        opt = T.build_optimizer(model.parameters(), cfg)
    loss_fn = sb.SoftmaxCrossEntropy()

    def forward():
        loss_fn.forward(model(x), y, read=False)

    def backward():
        model.backward(loss_fn.backward())
    return [_on_cuda(f) for f in (forward, backward, opt.step)], model


def _on_cuda(fn):
    def run():
        with sb.using("cuda"):
            fn()
    return run


def peer(torch, device, mode, k, weights, x, y):
    """(phases, model) of PyTorch's step: nn.Linear (+ the unified meProp function) and Adam."""
    from benchmarks import torch_peer
    model = torch_peer.mlp(mode, weights, k, device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    xt, yt = torch.from_numpy(x).to(device), torch.from_numpy(y.astype(np.int64)).to(device)
    state = {}

    def forward():
        state["loss"] = loss_fn(model(xt), yt)

    def backward():
        opt.zero_grad(set_to_none=True)
        state["loss"].backward()
    return [forward, backward, opt.step], model


def split_us(phases, reps, new_event, elapsed_ms):
    """[[us of each phase] per repetition]: events recorded before the step and after
    each phase, one wait at the end of each step."""
    out = []
    for _ in range(reps):
        ev = [new_event() for _ in range(len(phases) + 1)]
        ev[0].record()
        for f, e in zip(phases, ev[1:]):
            f()
            e.record()
        ev[-1].synchronize()
        out.append([elapsed_ms(a, b) * 1e3 for a, b in zip(ev, ev[1:])])
    return out


def _timers(torch, device):
    """{framework: (new_event, elapsed_ms)} where CUDA events time anything, else {}."""
    if SIM:
        return {}
    t = {"ours": (cuda.event, cuda.event_elapsed_time)}
    if torch is not None and device == "cuda":
        t["torch"] = (lambda: torch.cuda.Event(enable_timing=True), lambda a, b: a.elapsed_time(b))
    return t


def _grads(model, torch_model=None):
    """Host gradients of the Linear layers' weights and biases (unselected rows zero)."""
    if torch_model is not None:
        return [p.grad.detach().cpu().numpy() for p in torch_model.parameters()]
    with sb.using("cuda"):
        return [p.dense_grad() for p in model.parameters()]


def validate(name, got, want, tol=1e-3):
    for i, (a, b) in enumerate(zip(got, want)):
        err = np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30)
        if a.shape != b.shape or not err <= tol:
            raise AssertionError(f"whole step, {name}, parameter {i}: relative error {err:.2e}")


def bench_step(dims_in_out, hs, Bs, ks, reps, rounds=3):
    """Rows of section (e), one per (h, B, k, implementation)."""
    G = kernels.get("cuda")
    torch, device = torch_or_none()
    if torch is None:
        print(f"(e): {device}")
    timers = _timers(torch, device)
    n_in, n_out = dims_in_out
    rows = []
    rng = np.random.default_rng(6)
    for h in hs:
        dims = [n_in, h, h, n_out]
        for B in Bs:
            x, y = rng.random((B, n_in), dtype=np.float32), rng.integers(0, n_out, B).astype(np.int64)
            dx, dy = G.to_device(x), G.to_device(y)
            for mode, k in [("dense", None)] + [("unified", k) for k in ks if k <= h]:
                rows += _one_size(dims, B, mode, k, x, y, dx, dy, torch, device, timers, reps, rounds)
    return rows


def _one_size(dims, B, mode, k, x, y, dx, dy, torch, device, timers, reps, rounds):
    phases, model = ours(mode, k or 1, dims, dx, dy)
    contenders = {"sparsebp": phases}
    with sb.using("cuda"):
        weights = [(sb.backend.K().to_host(m.weight.data), sb.backend.K().to_host(m.bias.data))
                   for m in model.layers if hasattr(m, "mode")]
    if torch is not None:
        contenders["PyTorch"], tmodel = peer(torch, device, mode, k or 1, weights, x, y)
    _check_first_step(contenders, model, tmodel if torch is not None else None, dims, B, mode, k, x, y)
    with sb.gpu_counters() as c:                          # one more step of ours, counted
        for f in phases:
            f()
    samples = {name: [] for name in contenders}
    for _ in range(rounds):                               # the contenders in turns
        for name, ph in contenders.items():
            timer = timers.get("ours" if name == "sparsebp" else "torch")
            if timer is not None:
                split_us(ph, 3, *timer)                   # warm
                samples[name] += split_us(ph, max(1, reps // rounds), *timer)
    out = []
    for name in contenders:
        s = np.array(samples[name]) if samples[name] else np.full((1, 3), np.nan)
        row = dict(h=dims[1], B=B, k=k or "-", impl=f"{name} {mode}", launches="-", allocations="-",
                   **{f"{p}_us": float(np.median(s[:, i])) for i, p in enumerate(PHASES)},
                   step_us=float(np.median(s.sum(axis=1))))
        if name == "sparsebp":
            row.update(launches=c.launches, allocations=c.allocations)
        out.append(row)
    return out


def _check_first_step(contenders, model, tmodel, dims, B, mode, k, x, y):
    """Forward and backward of every contender once; our gradients against PyTorch's
    (or, without torch, our CPU backend's at small sizes); then each one's update."""
    for ph in contenders.values():
        ph[0]()
        ph[1]()
    what = f"h={dims[1]} B={B} {mode} k={k}"
    if tmodel is not None:
        ours_g, peer_g = _grads(model), _grads(None, tmodel)
        if mode == "unified" and not _same_selection(ours_g, peer_g):
            print(f"(e) {what}: the selections differ at a near tie (float32 vs float64 column "
                  "sums); gradients not compared")
        else:
            validate(f"{what}: sparsebp vs PyTorch", ours_g, peer_g)
    elif dims[1] <= 64:
        validate(f"{what}: cuda vs cpu", _grads(model), _cpu_grads(mode, k, dims, x, y))
    for ph in contenders.values():
        ph[2]()


def _same_selection(a, b):
    """Whether the hidden layers' weight gradients have the same nonzero rows in a and b."""
    return all(np.array_equal(np.any(p != 0, axis=1), np.any(q != 0, axis=1))
               for p, q in zip(a[:-2:2], b[:-2:2]))


def _cpu_grads(mode, k, dims, x, y):
    """Our CPU backend's gradients of the same step (validates ours without torch)."""
    cfg = T.Config(mode=mode, k=k or 1, hidden=dims[1], layers=len(dims) - 2, dropout=0.0)
    with sb.using("cpu"):
        sb.seed(0)
        model = build_mlp(dims[0], dims[-1], cfg)
        loss_fn = sb.SoftmaxCrossEntropy()
        loss_fn.forward(model(x), y)
        model.backward(loss_fn.backward())
        return [p.dense_grad() for p in model.parameters()]


def with_ratios(rows):
    """Each row's step beside PyTorch's dense step of its size (h, B): torch dense / this."""
    ref = {(r["h"], r["B"]): r["step_us"] for r in rows if r["impl"] == "PyTorch dense"}
    for r in rows:
        r["torch_dense_over_this"] = ref.get((r["h"], r["B"]), float("nan")) / r["step_us"]
    return rows


COLUMNS = ["h", "B", "k", "impl", "forward_us", "backward_us", "update_us", "step_us", "torch_dense_over_this",
           "launches", "allocations"]

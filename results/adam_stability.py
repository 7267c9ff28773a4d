"""Why per-example top-k + Adam grows the activations, and what stops it (issue 12).

    python results/adam_stability.py variants [NAME ...]   # ~10 min on 2 free cores
    python results/adam_stability.py mechanism             # ~2 min

Both train the paper's MLP (784-500-500-10, ReLU, minibatch 10, Adam 1e-3, clip 5)
on the first 5,000 MNIST training images (the dev set is the official first 5,000
of the training file, so these are the next 5,000), one thread.

`variants`: 2 epochs, seeds 1 and 2, one thing varied at a time; prints the train
loss of epoch 2, the dev accuracy (mean ± std over the seeds, then each seed) and
the hidden layers' mean activation on the dev set at the end. Adam's options go
through sparsebp's Adam (`bias_correction`, `eps`); the variants sparsebp has no
option for (moment decay of unselected rows, AMSGrad, one second moment per
matrix, beta1 0) use `NpAdam` below, a plain NumPy lazy Adam ("np-row" is it with
sparsebp's per-row correction, to show it matches).

`mechanism`: 1 epoch, seeds 1 and 2, and for the second hidden layer (500 -> 500)
at every step: the fraction of the kept dy entries that are negative (a negative
dy raises the unit's pre-activation after the update) and of all nonzero entries;
the sum of the kept and of all entries; how many entries of an updated dW row
share the row's majority sign (|sum of signs| / nonzero entries); and the share
of the selections that land on the 20 units selected most. For dense training
the "kept" entries are its top-20 per example, computed but not applied.
"""
import sys
from dataclasses import replace

import numpy as np

import sparsebp as sb
from sparsebp import train as T
from sparsebp.data import load_mnist
from sparsebp.layers import Linear, ReLU
from sparsebp.tasks.mnist import accuracy, build_mlp


class NpAdam:
    """Lazy Adam in NumPy with the variants sparsebp's Adam lacks.

    bc: "row" / "global" / "none" bias correction; decay: the unselected rows'
    M and V decay every step (their weights stay); ams: AMSGrad (the running
    maximum of the corrected V); layerv: one second moment per matrix (the mean
    of the selected rows' V)."""

    def __init__(self, params, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8, clip=5.0, bc="row",
                 decay=False, ams=False, layerv=False):
        self.p, self.lr, self.b1, self.b2, self.eps, self.clip = list(params), lr, b1, b2, eps, clip
        self.bc, self.decay, self.ams, self.layerv, self.t = bc, decay, ams, layerv, 0
        self.M, self.V, self.VM = ([np.zeros_like(p.data) for p in self.p] for _ in range(3))
        self.T = [np.zeros(p.shape[0]) for p in self.p]

    def step(self):
        self.t += 1
        for p, M, V, VM, T in zip(self.p, self.M, self.V, self.VM, self.T):
            rows = np.arange(p.shape[0]) if p.rows is None else np.asarray(p.rows)
            g = np.clip(p.grad[rows], -self.clip, self.clip)
            if self.decay and p.rows is not None:
                M *= self.b1
                V *= self.b2
                M[rows] += (1 - self.b1) * g
                V[rows] += (1 - self.b2) * g * g
            else:
                M[rows] = self.b1 * M[rows] + (1 - self.b1) * g
                V[rows] = self.b2 * V[rows] + (1 - self.b2) * g * g
            T[rows] += 1
            t = (T[rows] if self.bc == "row" else np.full(len(rows), self.t if self.bc == "global" else np.inf))
            t = t.reshape((-1,) + (1,) * (p.data.ndim - 1))
            mh, vh = M[rows] / (1 - self.b1 ** t), V[rows] / (1 - self.b2 ** t)
            if self.ams:
                VM[rows] = np.maximum(VM[rows], vh)
                vh = VM[rows]
            if self.layerv:
                vh = np.full_like(vh, vh.mean())
            p.data[rows] -= (self.lr * mh / (np.sqrt(vh) + self.eps)).astype(p.data.dtype)


def reinit(model, how):
    """Rescale or redraw the weights: "glorot", "he", "pytorch", or "xF" (times F)."""
    for m in model.modules():
        if isinstance(m, Linear) and how != "csharp":
            fo, fi = m.weight.shape
            W = {"glorot": lambda: sb.rng().normal(0, np.sqrt(2 / (fi + fo)), (fo, fi)),
                 "he": lambda: sb.rng().normal(0, np.sqrt(2 / fi), (fo, fi)),
                 "pytorch": lambda: sb.rng().uniform(-1, 1, (fo, fi)) / np.sqrt(fi)}.get(
                how, lambda: m.weight.data * float(how[1:]))()
            m.weight.data[:] = W.astype(np.float32)


def activations(model, x):
    model.eval()
    out, h = [], x
    for layer in model.layers:
        h = layer.forward(h)
        if isinstance(layer, ReLU):
            out.append(float(np.mean(h)))
    model.train()
    return out


def train(cfg, data, init="csharp", np_adam=None):
    sb.seed(cfg.seed)
    model = build_mlp(784, 10, cfg)
    reinit(model, init)
    opt = (NpAdam(model.parameters(), lr=cfg.lr, clip=cfg.clip, **np_adam) if np_adam is not None
           else T.build_optimizer(model.parameters(), cfg))
    lf, n = sb.SoftmaxCrossEntropy(), len(data.train_x)
    for _ in range(cfg.epochs):
        order, losses = sb.rng().permutation(n), []
        for s in range(0, n, cfg.batch_size):
            sel = order[s:s + cfg.batch_size]
            losses.append(lf.forward(model.forward(data.train_x[sel]), data.train_y[sel]))
            model.backward(lf.backward())
            opt.step()
    return np.mean(losses), 100 * accuracy(model, data.dev_x, data.dev_y), activations(model, data.dev_x)


VARIANTS = {   # name: (Config changes, train() keywords)
    "dense": (dict(mode="dense"), {}),
    "topk": ({}, {}),
    "topk np-row": ({}, dict(np_adam={})),
    "topk np-global": ({}, dict(np_adam=dict(bc="global"))),
    "topk np-none": ({}, dict(np_adam=dict(bc="none"))),
    "topk np-decay": ({}, dict(np_adam=dict(decay=True))),
    "topk np-decay-global": ({}, dict(np_adam=dict(decay=True, bc="global"))),
    "topk none decay": ({}, dict(np_adam=dict(bc="none", decay=True))),
    "topk amsgrad": ({}, dict(np_adam=dict(ams=True))),
    "topk layerv": ({}, dict(np_adam=dict(layerv=True))),
    "topk b1=0": ({}, dict(np_adam=dict(b1=0.0))),
    "topk eps1e-4": ({}, dict(np_adam=dict(eps=1e-4))),
    "topk eps1e-2": ({}, dict(np_adam=dict(eps=1e-2))),
    "topk eps1e-1": ({}, dict(np_adam=dict(eps=1e-1))),
    "dense eps1e-2": (dict(mode="dense"), dict(np_adam=dict(eps=1e-2))),
    "topk lr3e-4": (dict(lr=3e-4), {}),
    "topk clip1": (dict(clip=1.0), {}),
    "topk clip0": (dict(clip=0.0), {}),
    "topk glorot": ({}, dict(init="glorot")),
    "dense glorot": (dict(mode="dense"), dict(init="glorot")),
    "topk he": ({}, dict(init="he")),
    "topk pytorch": ({}, dict(init="pytorch")),
    "dense pytorch": (dict(mode="dense"), dict(init="pytorch")),
    "topk x0.5": ({}, dict(init="x0.5")),
    "topk dropout0.1": (dict(dropout=0.1), {}),
    "topk dropout0.2": (dict(dropout=0.2), {}),
    "dense drop0.1": (dict(mode="dense", dropout=0.1), {}),
    "dense drop0.2": (dict(mode="dense", dropout=0.2), {}),
    "topk row drop0.1": (dict(dropout=0.1), dict(np_adam={})),
    "topk decay drop0.1": (dict(dropout=0.1), dict(np_adam=dict(decay=True))),
    "topk drop0.1 pytorch": (dict(dropout=0.1), dict(init="pytorch")),
    "topk none drop0.1": (dict(dropout=0.1), dict(np_adam=dict(bc="none"))),
    "topk none drop0.2": (dict(dropout=0.2), dict(np_adam=dict(bc="none"))),
    "dense none": (dict(mode="dense"), dict(np_adam=dict(bc="none"))),
    "dense none drop0.1": (dict(mode="dense", dropout=0.1), dict(np_adam=dict(bc="none"))),
    "topk k80": (dict(k=80), {}),
    "unified": (dict(mode="unified"), {}),
    "random": (dict(mode="random"), {}),
}


def variants(names, data):
    base = T.Config(mode="topk", k=20, epochs=2)
    print("| variant | train loss, epoch 2 | dev % (mean ± std) | seeds 1, 2 | mean activations at the end |\n"
          "| --- | ---: | ---: | --- | --- |")
    for name in names or VARIANTS:
        c, kw = VARIANTS[name]
        res = [train(replace(base, seed=s, **c), data, **kw) for s in (1, 2)]
        dev, act = [r[1] for r in res], np.mean([r[2] for r in res], 0)
        print(f"| {name} | {np.mean([r[0] for r in res]):.3f} | {np.mean(dev):.2f} ± {np.std(dev):.2f} | "
              f"{' '.join(f'{d:.1f}' for d in dev)} | {act[0]:.2f} / {act[1]:.2f} |", flush=True)


def mechanism(data):
    backward, rec = Linear.backward, {}

    def recording(self, dy):
        dx = backward(self, dy)
        if (self.n_in, self.n_out) == (500, 500):
            d = np.asarray(dy)
            idx = self.selected if self.selected is not None else np.argsort(-np.abs(d), 1)[:, :20]
            kept = np.take_along_axis(d, idx, 1)
            g = np.asarray(self.weight.grad)[np.unique(idx)]
            agree = np.abs(np.sign(g).sum(1)) / np.maximum((g != 0).sum(1), 1)
            np.add.at(rec["counts"], idx.ravel(), 1)
            rec["rows"].append([(kept < 0).mean(), (d[d != 0] < 0).mean(), kept.sum(), d.sum(), agree.mean()])
        return dx
    Linear.backward = recording
    print("| run (1 epoch, seeds 1-2) | kept dy < 0 | all nonzero dy < 0 | sum of kept dy | sum of all dy "
          "| sign agreement in an updated dW row | selections on the 20 most selected units |\n"
          "| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    runs = [("dense (its top-20, not applied)", dict(mode="dense")), ("top-k k=20", {}),
            ("top-k, no bias correction", dict(bias_correction="none")), ("top-k, dropout 0.1", dict(dropout=0.1)),
            ("top-k, AdaGrad", dict(optimizer="adagrad", lr=0.1))]
    for name, kw in runs:
        vals = []
        for seed in (1, 2):
            rec.update(counts=np.zeros(500), rows=[])
            cfg = T.Config(**{"mode": "topk", "k": 20, "epochs": 1, "seed": seed, **kw})
            sb.seed(seed)
            model = build_mlp(784, 10, cfg)
            opt, lf = T.build_optimizer(model.parameters(), cfg), sb.SoftmaxCrossEntropy()
            order = sb.rng().permutation(len(data.train_x))
            for s in range(0, len(order), 10):
                sel = order[s:s + 10]
                lf.forward(model.forward(data.train_x[sel]), data.train_y[sel])
                model.backward(lf.backward())
                opt.step()
            c = np.sort(rec["counts"])[::-1]
            vals.append([*np.mean(rec["rows"], 0), c[:20].sum() / c.sum()])
        v = np.mean(vals, 0)
        print(f"| {name} | {v[0]:.2f} | {v[1]:.2f} | {v[2]:+.3f} | {v[3]:+.3f} | {v[4]:.2f} | {100 * v[5]:.0f}% |",
              flush=True)
    Linear.backward = backward


if __name__ == "__main__":
    data = load_mnist().head(5000)
    if sys.argv[1:2] == ["mechanism"]:
        mechanism(data)
    else:
        variants(sys.argv[2:], data)

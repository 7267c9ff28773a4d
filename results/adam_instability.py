"""The experiments behind the README's account of top-k + Adam's instability.

    python results/adam_instability.py        # about 3 minutes on 2 cores

Variants without a CLI flag are made here, without changing sparsebp: one of the two
products sparsified ("dx only", "dW only"), the bias given only the selected entries,
the C# code's loss gradient summed over the minibatch instead of averaged, and Adam's
beta2 / eps. Each variant trains the paper's MLP (784-500-500-10, ReLU unless stated) from seed
1 on the first 5,000 MNIST training images for 2 epochs (1,000 steps at minibatch
10), then prints the mean train loss of the second epoch, the dev accuracy, and the
mean output of each hidden activation on the dev set after 500 steps and at the end.
"""
import sys
from dataclasses import replace

import numpy as np

import sparsebp as sb
from sparsebp import train as T
from sparsebp.data import load_mnist
from sparsebp.layers import Linear, ReLU, Tanh
from sparsebp.tasks.mnist import accuracy, build_mlp

_backward = Linear.backward


def _kept(self, dy):
    """dy with only this layer's selected entries (per example), the rest zero."""
    keep = np.zeros(dy.shape, bool)
    np.put_along_axis(keep, self.selected, True, axis=1)
    return np.where(keep, dy, 0)


def _one_product_sparse(which):
    """A Linear.backward for mode "topk" whose selection sparsifies only `which`
    ("dx" or "dW"); the other product and the bias use the full dy."""
    def backward(self, dy):
        dx = _backward(self, dy)                    # selection + sparse products
        if self.mode != "topk":                     # the dense output layer
            return dx
        full, masked = dy, _kept(self, dy)
        dx = (masked if which == "dx" else full) @ self.weight.data
        self.weight.grad[:] = (masked if which == "dW" else full).T @ self.x
        self.weight.rows = None                     # every row has a gradient now
        return dx
    return backward


def _masked_bias(self, dy):
    """Linear.backward whose bias gradient sums only the selected entries of dy."""
    dx = _backward(self, dy)
    if self.mode == "topk":
        self.bias.grad[:] = _kept(self, dy).sum(axis=0)
    return dx


def activations(model, x):
    """Mean output of each hidden activation layer on x, in eval mode."""
    model.eval()
    out, h = [], x
    for layer in model.layers:
        h = layer.forward(h)
        if isinstance(layer, (ReLU, Tanh)):
            out.append(float(np.mean(h)))
    model.train()
    return out


def run(name, cfg, data, patch=None, adam=None, summed_loss=False):
    Linear.backward = patch or _backward
    sb.seed(cfg.seed)
    model = build_mlp(784, 10, cfg)
    opt = (sb.Adam(model.parameters(), lr=cfg.lr, clip=cfg.clip, **adam) if adam
           else T.build_optimizer(model.parameters(), cfg))
    at500 = None
    lf = sb.SoftmaxCrossEntropy()
    if summed_loss:                                 # dlogits = probs - onehot, not / B
        lf_backward = lf.backward
        lf.backward = lambda: lf_backward() * cfg.batch_size
    n = len(data.train_x)
    losses = []
    for epoch in range(cfg.epochs):
        order, losses = sb.rng().permutation(n), []
        for s in range(0, n, cfg.batch_size):
            sel = order[s:s + cfg.batch_size]
            losses.append(lf.forward(model.forward(data.train_x[sel]), data.train_y[sel]))
            model.backward(lf.backward())
            opt.step()
            if epoch * n + s + cfg.batch_size == 500 * cfg.batch_size:
                at500 = activations(model, data.dev_x)
    Linear.backward = _backward
    acts = activations(model, data.dev_x)
    print(f"| {name} | {np.mean(losses):.3f} | {100 * accuracy(model, data.dev_x, data.dev_y):.2f} | "
          + " / ".join(f"{a:.2f}" for a in at500 or []) + " | " + " / ".join(f"{a:.2f}" for a in acts) + " |",
          flush=True)


def main():
    data = load_mnist().head(5000)
    base = T.Config(mode="topk", k=20, epochs=2)
    print(f"MLP 784-500-500-10, first 5,000 training images, 2 epochs, seed 1\n\n"
          "| variant | train loss, epoch 2 | dev % | mean activations after 500 steps | at the end |\n"
          "| --- | ---: | ---: | --- | --- |")
    sb.seed(base.seed)
    init = activations(build_mlp(784, 10, base), data.dev_x)
    print(f"| (at initialisation) | | | | {' / '.join(f'{a:.2f}' for a in init)} |")
    variants = [
        ("dense, Adam", replace(base, mode="dense"), None),
        ("top-k k=20, Adam (lazy)", base, None),
        ("top-k, the paper code's dense Adam", replace(base, dense_adam=True), None),
        ("top-k, dx only sparsified", base, _one_product_sparse("dx")),
        ("top-k, dW only sparsified", base, _one_product_sparse("dW")),
        ("top-k, bias from the selected entries only", base, _masked_bias),
        ("top-k, loss gradient summed over the minibatch", base, None, None, True),
        ("top-k, Adam beta2 0.99", base, None, {"beta2": 0.99}),
        ("top-k, Adam eps 1e-3", base, None, {"eps": 1e-3}),
        ("unified k=20, Adam", replace(base, mode="unified"), None),
        ("top-k, Adam lr 1e-4", replace(base, lr=1e-4), None),
        ("top-k, Adam, minibatch 100", replace(base, batch_size=100), None),
        ("top-k, AdaGrad lr 0.1", replace(base, optimizer="adagrad", lr=0.1), None),
        ("top-k, SGD lr 0.1", replace(base, optimizer="sgd", lr=0.1), None),
        ("top-k, Adam, tanh", replace(base, activation="tanh"), None),
    ]
    only = sys.argv[1:]
    for name, cfg, *how in variants:
        if not only or any(o in name for o in only):
            run(name, cfg, data, *how)


if __name__ == "__main__":
    main()

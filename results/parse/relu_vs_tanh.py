"""Why the parser uses tanh: per-example top-k with ReLU and Adam does not train.

    python results/parse/relu_vs_tanh.py DATA_DIR     (UD English EWT; about a minute)

300 steps of 100 random oracle transitions of the first 500 training sentences,
the parser's model (48 x 50 inputs, one hidden layer of 500, Adam 1e-3, clip 5),
seed 1; prints the training loss every 50 steps for each setting. Output of this
script: relu_vs_tanh.md beside it.
"""
import sys

import numpy as np

import sparsebp as sb
from sparsebp.layers import SoftmaxCrossEntropy
from sparsebp.tasks import parse as P
from sparsebp.train import Config, build_optimizer

SETTINGS = [
    ("dense, relu", dict(mode="dense")),
    ("top-k k=20, relu", dict(mode="topk")),
    ("top-k k=20, relu, on the NumPy reference kernels", dict(mode="topk", backend="numpy")),
    ("top-k k=20, relu, the paper code's dense Adam", dict(mode="topk", dense_adam=True)),
    ("top-k k=20, relu, lr 3e-4", dict(mode="topk", lr=3e-4)),
    ("top-k k=20, relu, no clipping", dict(mode="topk", clip=0.0)),
    ("top-k k=100, relu", dict(mode="topk", k=100)),
    ("top-k k=20, relu, AdaGrad 0.01", dict(mode="topk", optimizer="adagrad", lr=0.01)),
    ("unified k=20, relu", dict(mode="unified")),
    ("dense, tanh", dict(mode="dense", activation="tanh")),
    ("top-k k=20, tanh", dict(mode="topk", activation="tanh")),
]


def losses(tb, base, overrides, steps=300, batch=100, every=50):
    cfg = Config(**{**base.__dict__, **overrides})
    with sb.using(cfg.backend):
        return _losses(tb, cfg, steps, batch, every)


def _losses(tb, cfg, steps, batch, every):
    sb.seed(1)
    model = P.build_model(cfg, tb)
    opt = build_optimizer(model.parameters(), cfg)
    loss_fn = SoftmaxCrossEntropy()
    rng = np.random.default_rng(0)
    out = []
    for step in range(steps + 1):
        x, y = P.batch(tb, rng.integers(0, P.n_train(tb), batch))
        loss = loss_fn(model(x), y)
        model.backward(loss_fn.backward())
        opt.step()
        if step % every == 0:
            out.append(loss)
    return out


def main(data):
    base = Config(task="parse", data=data, limit=500, layers=1, activation="relu", extra={})
    tb = P.load(base)
    print("| setting | loss at step 0, 50, ..., 300 |\n| --- | --- |")
    for name, overrides in SETTINGS:
        print(f"| {name} | {' '.join(f'{v:.3f}' for v in losses(tb, base, overrides))} |", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])

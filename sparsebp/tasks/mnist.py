"""The paper's MNIST task: an MLP 784-h-...-h-10 with meProp on its hidden layers.

Data: the vendored MNIST (or any data set in its four-file IDX layout, `--data`);
the first 5,000 training images as dev (`--dev-size`, see `load_mnist`); 10
classes, the digits (`--classes`: a label outside is an error). Metric: accuracy.
"""
from dataclasses import asdict

import numpy as np

from ..backend import K
from ..layers import Cube, Dropout, Linear, ReLU, Tanh
from ..module import Sequential
from . import extra, mlp_errors

NAME = "mnist"
HELP = "MNIST MLP, as in the paper (any data set in the MNIST IDX layout with --data)"
DATA_HELP = "a directory with the four MNIST-layout IDX files (default: the vendored MNIST)"
# Top-k + Adam with the paper's settings lets the hidden activations grow (README,
# results/adam_stability.md): without Adam's bias correction and with dropout 0.1
# (the official PyTorch example's) it trains stably. `--paper` restores the paper's.
DEFAULTS = {"bias_correction": "none", "dropout": 0.1}
PAPER = {"bias_correction": "row", "dropout": 0.0}
DEV_SIZE = 5000            # the official code's dev split: the first 5,000 training images
ARGUMENTS = [
    ("--dev-size", dict(type=int, default=DEV_SIZE, metavar="N",
                        help="the first N training images are the dev set (the official code's 5000)")),
    ("--classes", dict(type=int, default=10, metavar="C",
                       help="number of classes: every label must be in [0, C) (the MNIST layout: 10 digits)")),
    ("--on-device", dict(action="store_true",
                         help="keep the training set in the GPU's memory (--backend cuda): a step gathers "
                              "its minibatch there and copies nothing to the device")),
]



def validate(cfg):
    errors = mlp_errors(cfg)
    if extra(cfg, "dev_size", DEV_SIZE) < 1:
        errors.append("--dev-size must be >= 1")
    if extra(cfg, "classes", 10) < 2:
        errors.append("--classes must be >= 2")
    if extra(cfg, "on_device", False) and cfg.backend != "cuda":
        errors.append("--on-device needs --backend cuda")
    return errors


def load(cfg):
    from ..data import load_mnist
    data = load_mnist(cfg.data or None, dev_size=extra(cfg, "dev_size", DEV_SIZE),
                      n_classes=extra(cfg, "classes", 10))
    data = data.head(cfg.limit) if cfg.limit else data
    return OnDevice(data) if extra(cfg, "on_device", False) else data


class OnDevice:
    """A Split whose training set is also in the backend's memory (`--on-device`):
    every attribute of the Split, and X: (N, 784), Y: (N,) int64 there, the epoch's
    order there (`epoch_order`) and the minibatch buffers `batch` fills."""

    def __init__(self, split):
        self.split = split
        self.X, self.Y = K().to_device(split.train_x), K().to_device(split.train_y.astype(np.int64))
        self.order = K().empty((len(split.train_x),), np.int64)
        self.buffers = {}

    def __getattr__(self, name):
        return getattr(self.split, name)

    def minibatch(self, B):
        """(x: (B, 784), y: (B,) int64) buffers in the backend's memory, kept per B."""
        if B not in self.buffers:
            self.buffers[B] = (K().empty((B, self.X.shape[1]), self.X.dtype), K().empty((B,), np.int64))
        return self.buffers[B]


def describe(data):
    return (f"{len(data.train_x)} train / {len(data.dev_x)} dev / {len(data.test_x)} test, "
            f"{data.n_classes} classes")


def n_classes(data):
    """The data set's stated number of classes (every label was checked against it)."""
    return data.n_classes


def n_train(data):
    return len(data.train_x)


def epoch_order(data, order):
    """The epoch's order (N,) as `batch` takes slices of it: in the backend's memory
    for data kept there (one copy per epoch), else order itself."""
    if not isinstance(data, OnDevice):
        return order
    K().copy_to(data.order, order)
    return data.order


def batch(data, ids):
    """(x: (B, 784) float32, y: (B,) int) for training examples ids: (B,); for data kept
    on the device, both there, gathered by one kernel (ids: a slice of `epoch_order`)."""
    if not isinstance(data, OnDevice):
        return data.train_x[ids], data.train_y[ids]
    x, y = data.minibatch(len(ids))
    K().gather_rows(x, y, data.X, data.Y, ids)
    return x, y


def build_mlp(n_in, n_out, cfg):
    """cfg.layers hidden layers of cfg.hidden units, meProp on each; the output
    layer stays dense, as in the paper's code."""
    k = None if cfg.mode == "dense" else cfg.k
    act = {"relu": ReLU, "tanh": Tanh, "cube": Cube}[cfg.activation]
    layers, width = [], n_in
    for _ in range(cfg.layers):
        layers += [Linear(width, cfg.hidden, k=k, mode=cfg.mode, init=cfg.init), act()]
        if cfg.dropout > 0:
            layers.append(Dropout(cfg.dropout))
        width = cfg.hidden
    layers.append(Linear(width, n_out, init=cfg.init))
    return Sequential(*layers)


def build_model(cfg, data):
    return build_mlp(data.train_x.shape[1], n_classes(data), cfg)


def accuracy(model, x, y, batch=1000):
    """Fraction of x: (N, d) classified as y: (N,), in eval mode."""
    model.eval()
    correct = 0
    for s in range(0, len(x), batch):
        logits = K().to_host(model(x[s:s + batch]))
        correct += int((logits.argmax(1) == y[s:s + batch]).sum())
    model.train()
    return correct / max(len(x), 1)


def evaluate(model, data, split):
    x, y = (data.dev_x, data.dev_y) if split == "dev" else (data.test_x, data.test_y)
    return {"acc": accuracy(model, x, y)}


def small_config(cfg):
    """The same kind of model, tiny: every kernel of the run, compiled in a blink."""
    from ..train import Config
    return Config(**{**asdict(cfg), "hidden": max(cfg.k, 2), "layers": min(cfg.layers, 2)})


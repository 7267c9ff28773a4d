"""The training loop: minibatches, timing of forward/backward/update, evaluation,
per-epoch results and checkpoints. Task-independent: a task hands it arrays."""
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from . import checkpoint
from .backend import K, rng, synchronize
from .layers import Dropout, Linear, ReLU, SoftmaxCrossEntropy, Tanh
from .module import Sequential
from .optim import SGD, AdaGrad, Adam

DEFAULT_LR = {"adam": 1e-3, "adagrad": 0.1, "sgd": 0.1}   # the paper's MNIST rates


@dataclass
class Config:
    """Everything that defines a run; saved in the results file and checkpoints."""
    task: str = "mnist"
    k: int = 20
    mode: str = "topk"
    hidden: int = 500
    layers: int = 2
    batch_size: int = 10
    epochs: int = 20
    optimizer: str = "adam"
    lr: float = 1e-3
    clip: float = 5.0
    dense_adam: bool = False
    dropout: float = 0.0
    activation: str = "relu"
    seed: int = 1
    backend: str = "cpu"
    data: str = ""
    limit: int = 0
    extra: dict = field(default_factory=dict)


def build_mlp(n_in, n_out, cfg):
    """cfg.layers hidden layers of cfg.hidden units, meProp on each; the output
    layer stays dense, as in the paper's code."""
    k = None if cfg.mode == "dense" else cfg.k
    act = {"relu": ReLU, "tanh": Tanh}[cfg.activation]
    layers, width = [], n_in
    for _ in range(cfg.layers):
        layers += [Linear(width, cfg.hidden, k=k, mode=cfg.mode), act()]
        if cfg.dropout > 0:
            layers.append(Dropout(cfg.dropout))
        width = cfg.hidden
    layers.append(Linear(width, n_out))
    return Sequential(*layers)


def build_optimizer(params, cfg):
    if cfg.optimizer == "adam":
        return Adam(params, lr=cfg.lr, clip=cfg.clip, lazy=not cfg.dense_adam)
    if cfg.optimizer == "adagrad":
        return AdaGrad(params, lr=cfg.lr, clip=cfg.clip)
    if cfg.optimizer == "sgd":
        return SGD(params, lr=cfg.lr, clip=cfg.clip)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}; choose adam, adagrad or sgd")


def accuracy(model, x, y, batch=1000):
    """Fraction of x: (N, d) classified as y: (N,), in eval mode."""
    model.eval()
    correct = 0
    for s in range(0, len(x), batch):
        logits = K().to_host(model.forward(x[s:s + batch]))
        correct += int((logits.argmax(1) == y[s:s + batch]).sum())
    model.train()
    return correct / max(len(x), 1)


def _meprop_rows(model):
    """(rows updated, rows) over the meProp layers' weights in the last backward."""
    lin = [m for m in model.layers if isinstance(m, Linear) and m.mode != "dense"]
    done = sum(m.n_out if m.weight.rows is None else len(m.weight.rows) for m in lin)
    return done, sum(m.n_out for m in lin)


def train_epoch(model, opt, x, y, batch_size, progress=None):
    """One pass over x: (N, d), y: (N,) in a seeded random order; returns the stats."""
    loss_fn = SoftmaxCrossEntropy()
    lin = [m for m in model.layers if isinstance(m, Linear)]
    lin_before = sum(m.backward_seconds for m in lin)
    order = rng().permutation(len(x))
    t = {"forward_s": 0.0, "backward_s": 0.0, "update_s": 0.0}
    total_loss, rows_frac, steps = 0.0, 0.0, 0
    for s in range(0, len(x), batch_size):
        sel = order[s:s + batch_size]
        xb, yb = x[sel], y[sel]
        t0 = time.perf_counter()
        loss = loss_fn.forward(model.forward(xb), yb)
        synchronize()                          # a GPU timer must wait for the work
        t1 = time.perf_counter()
        model.backward(loss_fn.backward())
        synchronize()
        t2 = time.perf_counter()
        opt.step()
        synchronize()
        t3 = time.perf_counter()
        if not math.isfinite(loss):
            raise FloatingPointError(f"training diverged at step {steps}: the loss is {loss}; "
                                     "try a lower --lr or --clip")
        t["forward_s"] += t1 - t0
        t["backward_s"] += t2 - t1
        t["update_s"] += t3 - t2
        total_loss += loss * len(sel)
        done, rows = _meprop_rows(model)
        rows_frac += done / rows if rows else 1.0
        steps += 1
        if progress is not None:
            progress.update(len(sel))
            if steps % 50 == 0:
                progress.set_postfix(loss=f"{loss:.4f}", refresh=False)
    t["linear_backward_s"] = sum(m.backward_seconds for m in lin) - lin_before
    return dict(train_loss=total_loss / len(x), rows_frac=rows_frac / max(steps, 1), **t)


def warm_up(cfg, n_in, n_out):
    """One training step and one evaluation of a tiny model of cfg's kind, on random
    data, so that every kernel the run calls is compiled (or loaded from Numba's
    cache) before the first epoch: its timings then measure the work, not the JIT.
    Runs before the run is seeded, so it changes no result."""
    small = Config(**{**asdict(cfg), "hidden": max(cfg.k, 2), "layers": min(cfg.layers, 2)})
    model = build_mlp(n_in, n_out, small)
    opt = build_optimizer(model.parameters(), small)
    x = np.random.default_rng(0).random((2, n_in), dtype=np.float32)
    loss_fn = SoftmaxCrossEntropy()
    loss_fn.forward(model.forward(x), np.arange(2) % n_out)
    model.backward(loss_fn.backward())
    opt.step()
    model.eval()
    model.forward(x)
    synchronize()


def run(cfg, data, out=None, ckpt_dir=None, resume=False, log=print, progress=True):
    """Train cfg on data (train_x/y, dev_x/y, test_x/y); returns the results dict.

    Writes the results JSON to `out` after every epoch and, with `ckpt_dir`,
    a checkpoint after every epoch; `resume` continues from that checkpoint.
    """
    from .backend import seed
    t0 = time.perf_counter()
    warm_up(cfg, data.train_x.shape[1], int(data.train_y.max()) + 1)
    log(f"kernels ready in {time.perf_counter() - t0:.1f}s (Numba compiles them on the first "
        "run, later runs load them from its cache)")
    seed(cfg.seed)
    model = build_mlp(data.train_x.shape[1], int(data.train_y.max()) + 1, cfg)
    opt = build_optimizer(model.parameters(), cfg)
    results = {"config": asdict(cfg), "epochs": [], "best": None}
    if resume:
        results = checkpoint.load(ckpt_dir, model, opt, cfg)
        log(f"resumed from {ckpt_dir} after epoch {len(results['epochs'])}")
    bar = _progress_bar(len(data.train_x), progress)
    for epoch in range(len(results["epochs"]) + 1, cfg.epochs + 1):
        if bar is not None:
            bar.reset()
            bar.set_description(f"epoch {epoch}/{cfg.epochs}")
        stats = train_epoch(model, opt, data.train_x, data.train_y, cfg.batch_size, bar)
        row = {"epoch": epoch, "train_loss": stats.pop("train_loss"),
               "dev_acc": accuracy(model, data.dev_x, data.dev_y),
               "test_acc": accuracy(model, data.test_x, data.test_y), **stats}
        results["epochs"].append(row)
        best = max(results["epochs"], key=lambda r: r["dev_acc"])   # first of equals
        results["best"] = {k: best[k] for k in ("epoch", "dev_acc", "test_acc")}
        log(format_epoch(row))
        if out:
            write_json(out, results)
        if ckpt_dir:
            checkpoint.save(ckpt_dir, model, opt, results)
    if bar is not None:
        bar.close()
    return results


def format_epoch(r):
    return (f"epoch {r['epoch']:3d}  loss {r['train_loss']:.4f}  dev {100 * r['dev_acc']:.2f}%  "
            f"test {100 * r['test_acc']:.2f}%  forward {r['forward_s']:.2f}s  "
            f"backward {r['backward_s']:.2f}s (linear {r['linear_backward_s']:.2f}s)  "
            f"update {r['update_s']:.2f}s  rows updated {100 * r['rows_frac']:.1f}%")


def _progress_bar(total, enabled):
    if not enabled:
        return None
    from tqdm import tqdm
    return tqdm(total=total, unit="ex", unit_scale=True, leave=False, mininterval=1.0)


def write_json(path, obj):
    """Write atomically: a reader never sees a half-written file."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1, default=_json_default)
    os.replace(tmp, path)


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")

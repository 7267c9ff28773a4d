"""The training loop: minibatches, timing of forward/backward/update, evaluation,
per-epoch results and checkpoints. Task-independent: the task module
(`sparsebp/tasks/`) makes the batches, builds the model and evaluates it."""
import contextlib
import inspect
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from . import checkpoint, serialize, tasks
from .average import WeightAverage
from .backend import rng, synchronize
from .layers import SoftmaxCrossEntropy
from .optim import CLIP, SGD, AdaGrad, Adam
from .timing import BackwardTimer
from .warmup import kernels_note

OPTIMIZERS = {"adam": Adam, "adagrad": AdaGrad, "sgd": SGD}
# the paper's MNIST rates: the optimizers' own defaults, one set for the API and the CLI
DEFAULT_LR = {name: inspect.signature(cls).parameters["lr"].default for name, cls in OPTIMIZERS.items()}


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
    clip: float = CLIP
    dense_adam: bool = False
    adam_eps: float = 1e-8
    bias_correction: str = "row"
    init: str = "csharp"
    dropout: float = 0.0
    average: float = 0.0      # decay of the weight average scored instead of the weights (average.py); 0: off
    activation: str = "relu"
    seed: int = 1
    backend: str = "cpu"
    data: str = ""
    limit: int = 0
    threads: int = 0          # BLAS and Numba threads (sb.set_threads); 0: their defaults
    extra: dict = field(default_factory=dict)


def build_optimizer(params, cfg):
    if cfg.optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {cfg.optimizer!r}; choose one of {sorted(OPTIMIZERS)}")
    kwargs = ({"lazy": not cfg.dense_adam, "eps": cfg.adam_eps, "bias_correction": cfg.bias_correction}
              if cfg.optimizer == "adam" else {})
    return OPTIMIZERS[cfg.optimizer](params, lr=cfg.lr, clip=cfg.clip, **kwargs)


def _meprop_weights(model):
    """The weight matrices of the model's meProp layers (found once, read every step)."""
    return [p for m in model.modules() if getattr(m, "mode", "dense") != "dense"
            for p in m.parameters() if len(p.shape) == 2]


def _rows_updated(weights):
    """(rows updated, rows) over weights in the last backward."""
    done = sum(p.shape[0] if p.rows is None else len(p.rows) for p in weights)
    return done, sum(p.shape[0] for p in weights)


def timed_layers(model):
    """The layers whose backward is the paper's "backprop time": every layer with
    a weight matrix (Linear, LSTM), meProp or dense."""
    return [m for m in model.modules() if hasattr(m, "mode")]


PRINT_EVERY = 50         # steps between the losses shown (and read back from a GPU)


def train_epoch(model, opt, task, data, batch_size, progress=None, dist=None, average=None):
    """One pass over the task's training units in a seeded random order; returns the stats.

    dist: a `distributed.Distributed` (data-parallel: this process trains on its
    shard of each minibatch, then the gradients are summed over the processes),
    or None. average: a `WeightAverage` of the model's parameters to update after
    each step (timed with the update), or None.
    """
    loss_fn = SoftmaxCrossEntropy()
    mep = _meprop_weights(model)
    order = rng().permutation(task.n_train(data))
    ids = task.epoch_order(data, order) if hasattr(task, "epoch_order") else order
    t = {"forward_s": 0.0, "backward_s": 0.0, "update_s": 0.0}
    total_loss, rows_frac, steps = 0.0, 0.0, 0
    sizes = []                                     # examples of each step whose loss is not read yet

    def read_losses():
        """Add the losses of the steps since the last read (one copy from a GPU); the last one."""
        nonlocal total_loss
        losses = loss_fn.read()
        for i, (loss, n) in enumerate(zip(losses, sizes)):
            if not math.isfinite(loss):
                raise FloatingPointError(f"training diverged at step {steps - len(sizes) + i}: the loss "
                                         f"is {loss}; try a lower --lr or --clip")
            total_loss += loss * n
        sizes.clear()
        return losses[-1]

    with BackwardTimer(timed_layers(model)) as timer, \
            (dist.epoch() if dist else contextlib.nullcontext()):
        for s in range(0, len(order), batch_size):
            sel = ids[s:s + batch_size]
            mine = dist.shard(sel) if dist else sel
            inputs, targets = task.batch(data, mine)
            n_all = dist.total(len(targets)) if dist else len(targets)
            t0 = time.perf_counter()
            loss_fn.forward(model(inputs), targets, read=False)   # read when printed: no wait
            synchronize()                          # a GPU timer must wait for the work
            t1 = time.perf_counter()
            dy = loss_fn.backward()
            if dist:                               # the mean over the global minibatch
                dist.scale(dy, len(targets), n_all)
            model.backward(dy)
            synchronize()
            t2 = time.perf_counter()
            if dist:                               # timed apart, as comm_s
                dist.exchange(model.parameters())
            t2x = time.perf_counter()
            opt.step()
            if average:
                average.update()
            synchronize()
            t3 = time.perf_counter()
            t["forward_s"] += t1 - t0
            t["backward_s"] += t2 - t1
            t["update_s"] += t3 - t2x
            sizes.append(len(mine))
            done, rows = _rows_updated(mep)
            rows_frac += done / rows if rows else 1.0
            steps += 1
            if progress is not None:
                progress.update(len(sel))
            if steps % PRINT_EVERY == 0:
                loss = read_losses()
                if progress is not None:
                    progress.set_postfix(loss=f"{loss:.4f}", refresh=False)
        if sizes:
            read_losses()
    t["linear_backward_s"] = timer.seconds
    if dist:
        total_loss = dist.sum(total_loss)
        t.update(dist.stats())
    return dict(train_loss=total_loss / len(order), rows_frac=rows_frac / max(steps, 1), **t)


def warm_up(cfg, task, data):
    """One training step and one evaluation of a tiny model of cfg's kind, so that
    every kernel the run calls is compiled (or loaded from Numba's cache) before
    the first epoch: its timings then measure the work, not the JIT.
    Runs before the run is seeded, so it changes no result."""
    small = task.small_config(cfg)
    model = task.build_model(small, data)
    opt = build_optimizer(model.parameters(), small)
    inputs, targets = task.batch(data, np.arange(min(2, task.n_train(data))))
    loss_fn = SoftmaxCrossEntropy()
    loss_fn(model(inputs), targets)
    model.backward(loss_fn.backward())
    opt.step()
    model.eval()
    model(inputs)
    synchronize()


def run(cfg, data, out=None, ckpt_dir=None, resume=False, log=print, progress=True, overwrite=False,
        dist=None):
    """Train cfg on the data of its task (`tasks.get(cfg.task).load(cfg)`); returns
    the results dict.

    Writes the results JSON to `out` after every epoch and, with `ckpt_dir`,
    a checkpoint after every epoch; `resume` continues from that checkpoint.
    Both places are checked before training; an existing checkpoint is replaced
    only with `overwrite` (`checkpoint.check_targets`).
    dist: a `distributed.Distributed` for data-parallel training; then only
    its rank 0 logs, evaluates and writes (the others return no epochs' scores).
    """
    if dist:
        dist.check_batches(tasks.get(cfg.task).n_train(data), cfg.batch_size)
        if not dist.is_root:
            out, log, progress = None, lambda s: None, False
    from .backend import seed
    task = tasks.get(cfg.task)
    checkpoint.check_targets(out, ckpt_dir, resume, overwrite)
    t0 = time.perf_counter()
    warm_up(cfg, task, data)
    log(kernels_note(cfg.backend, time.perf_counter() - t0))
    seed(cfg.seed)
    model = task.build_model(cfg, data)
    opt = build_optimizer(model.parameters(), cfg)
    average = WeightAverage(model.parameters(), cfg.average) if cfg.average else None
    results = {"config": asdict(cfg), "epochs": [], "best": None}
    if resume:
        results = checkpoint.load(ckpt_dir, model, opt, cfg, average)
        log(f"resumed from {ckpt_dir} after epoch {len(results['epochs'])}")
        if hasattr(data, "best_dev") and results["epochs"]:     # tasks.best_dev_so_far: --predict
            data.best_dev = max(e["dev_acc"] for e in results["epochs"])
    if dist:
        dist.start(results)
    bar = _progress_bar(task.n_train(data), progress)
    for epoch in range(len(results["epochs"]) + 1, cfg.epochs + 1):
        if bar is not None:
            bar.reset()
            bar.set_description(f"epoch {epoch}/{cfg.epochs}")
        stats = train_epoch(model, opt, task, data, cfg.batch_size, bar, dist, average)
        row = {"epoch": epoch, "train_loss": stats.pop("train_loss")}
        if dist and not dist.is_root:              # rank 0 evaluates and writes
            results["epochs"].append(row)
            continue
        with average.applied() if average else contextlib.nullcontext():   # scored: the average
            for split in ("dev", "test"):
                row.update({f"{split}_{k}": v for k, v in task.evaluate(model, data, split).items()})
        row.update(stats)
        results["epochs"].append(row)
        best = max(results["epochs"], key=lambda r: r["dev_acc"])   # first of equals
        results["best"] = {k: best[k] for k in ("epoch", "dev_acc", "test_acc")}
        log(format_epoch(row))
        if out:
            write_json(out, results)
        if ckpt_dir:
            checkpoint.save(ckpt_dir, model, opt, results, average)
    if bar is not None:
        bar.close()
    return results


def format_epoch(r):
    return (f"epoch {r['epoch']:3d}  loss {r['train_loss']:.4f}  dev {100 * r['dev_acc']:.2f}%  "
            f"test {100 * r['test_acc']:.2f}%  forward {r['forward_s']:.2f}s  "
            f"backward {r['backward_s']:.2f}s (linear {r['linear_backward_s']:.2f}s)  "
            f"update {r['update_s']:.2f}s  rows updated {100 * r['rows_frac']:.1f}%"
            + (f"  comm {r['comm_s']:.2f}s, {r['comm_bytes_per_step'] / 1e3:.1f} kB/step"
               if "comm_s" in r else ""))


def _progress_bar(total, enabled):
    if not enabled:
        return None
    from tqdm import tqdm
    return tqdm(total=total, unit="ex", unit_scale=True, leave=False, mininterval=1.0)


def write_json(path, obj):
    """Write atomically: a reader never sees a half-written file."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    serialize.atomic_write(path, json.dumps(obj, indent=1, default=_json_default).encode())


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")

"""Command line: `sparsebp train TASK [options]` (or `python -m sparsebp ...`).

The tasks, modes, optimizers and backends offered come from their registries
(`tasks.TASKS`, `meprop.MODES`, `train.OPTIMIZERS`, `kernels.BACKENDS`)."""
import argparse
import os
import sys

from sparsebp.kernels import BACKENDS

from . import tasks
from . import train as T
from .layers import Linear
from .meprop import MODES
from .optim import Adam


def _add_common(t, d):
    """The flags every task has; d: the task's default Config."""
    t.add_argument("--k", type=int, default=d.k, help="units kept per backward in each meProp layer")
    t.add_argument("--mode", choices=MODES, default=d.mode)
    t.add_argument("--hidden", type=int, default=d.hidden, help="units per hidden layer")
    t.add_argument("--layers", type=int, default=d.layers, help="number of hidden layers")
    t.add_argument("--batch-size", type=int, default=d.batch_size)
    t.add_argument("--epochs", type=int, default=d.epochs)
    t.add_argument("--optimizer", choices=sorted(T.OPTIMIZERS), default=d.optimizer)
    t.add_argument("--lr", type=float, default=None,
                   help="learning rate (default: adam 1e-3, adagrad 0.1, sgd 0.1, as in the paper)")
    t.add_argument("--clip", type=float, default=d.clip,
                   help="clip each gradient entry to [-clip, clip] (the C# code's 5); 0: off")
    t.add_argument("--dense-adam", action="store_true",
                   help="the paper code's Adam: update every row every step (default: lazy, selected rows only)")
    t.add_argument("--adam-eps", type=float, default=d.adam_eps, help="Adam's epsilon")
    t.add_argument("--bias-correction", choices=Adam.BIAS_CORRECTIONS, default=d.bias_correction,
                   help="Adam's bias correction: per-row step counts, the global step, or none")
    t.add_argument("--init", choices=sorted(Linear.INITS), default=d.init,
                   help="weight init: csharp (the C# code's normal, std sqrt(6/(in+out))), glorot, pytorch")
    t.add_argument("--dropout", type=float, default=d.dropout, help="dropout after each hidden activation")
    t.add_argument("--activation", choices=["relu", "tanh"], default=d.activation,
                   help="hidden activation (the paper's MNIST MLP: relu)")
    t.add_argument("--seed", type=int, default=d.seed)
    t.add_argument("--backend", choices=sorted(BACKENDS), default=d.backend,
                   help="cpu: Numba kernels; numpy: the plain reference; cuda: a GPU")
    t.add_argument("--limit", type=int, default=0,
                   help="train on the first N training units only (0: all); for quick looks")
    t.add_argument("--out", default=None, help="results JSON (default: runs/TASK-MODE-kK-seedS.json)")
    t.add_argument("--checkpoint", default=None, metavar="DIR", help="save a checkpoint here after each epoch")
    t.add_argument("--resume", action="store_true", help="continue from the checkpoint in --checkpoint DIR")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")


def _parser(paper=False):
    p = argparse.ArgumentParser(prog="sparsebp", description="meProp: sparsified back propagation")
    sub = p.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train a model and write a results JSON")
    tsub = train.add_subparsers(dest="task", required=True, metavar="TASK")
    for name in tasks.TASKS:
        task = tasks.get(name)
        t = tsub.add_parser(name, help=task.HELP, description=task.HELP,
                            formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        paper_fields = getattr(task, "PAPER", {})
        _add_common(t, T.Config(task=name, **{**task.DEFAULTS, **(paper_fields if paper else {})}))
        if paper_fields:
            t.add_argument("--paper", action="store_true", help="the paper's settings where the defaults "
                           "differ: " + ", ".join(f"{k}={v}" for k, v in paper_fields.items()))
        t.add_argument("--data", default=None, help=task.DATA_HELP)
        for flag, kwargs in task.ARGUMENTS:
            t.add_argument(flag, **kwargs)
    r = sub.add_parser("report", help="a markdown table of results JSON files, side by side")
    r.add_argument("files", nargs="+", help="results files; the first is the baseline of the ratios")
    r.add_argument("--group", action="store_true",
                   help="one line per configuration: mean ± std over seeds (files or directories)")
    sub.add_parser("sweep", add_help=False, help="train a grid of configurations over seeds (see sweep --help)")
    sub.add_parser("plot", add_help=False, help="draw PNG figures from results files (see plot --help)")
    return p


def report(files):
    """Best dev/test and summed times per run; time ratios against the first file."""
    import json
    runs = [json.load(open(f)) for f in files]
    tot = [{k: sum(e[k] for e in r["epochs"]) for k in ("forward_s", "linear_backward_s", "update_s")}
           for r in runs]
    lines = ["| run | epochs | best dev epoch | dev acc | test acc | forward s | linear backward s "
             "(speed-up) | update s | rows updated |", "|" + " --- |" * 9]
    for f, r, t in zip(files, runs, tot):
        c, b = r["config"], r["best"]
        name = c["mode"] + ("" if c["mode"] == "dense" else f" k={c['k']}") + f", {c['optimizer']}"
        name += ", dense Adam" if c.get("dense_adam") else ""
        name += f", {c['activation']}" if c.get("activation", "relu") != "relu" else ""
        name += f", batch {c['batch_size']}" + (f", dropout {c['dropout']}" if c["dropout"] else "")
        name += f", seed {c['seed']}"
        rows = sum(e["rows_frac"] for e in r["epochs"]) / len(r["epochs"])
        ratio = tot[0]["linear_backward_s"] / t["linear_backward_s"]
        lines.append(f"| {name} | {len(r['epochs'])} | {b['epoch']} | {100 * b['dev_acc']:.2f} | "
                     f"{100 * b['test_acc']:.2f} | {t['forward_s']:.1f} | "
                     f"{t['linear_backward_s']:.1f} ({ratio:.1f}x) | {t['update_s']:.1f} | {100 * rows:.1f}% |")
    return "\n".join(lines)


def _validate(a, task):
    checks = [(a.hidden >= 1, "--hidden must be >= 1"), (a.layers >= 1, "--layers must be >= 1"),
              (a.batch_size >= 1, "--batch-size must be >= 1"), (a.epochs >= 1, "--epochs must be >= 1"),
              (0 <= a.dropout < 1, "--dropout must be in [0, 1)"), (a.limit >= 0, "--limit must be >= 0"),
              (a.lr is None or a.lr > 0, "--lr must be > 0"), (a.clip >= 0, "--clip must be >= 0"),
              (not a.resume or a.checkpoint, "--resume needs --checkpoint DIR")]
    return [msg for ok, msg in checks if not ok]


def _config(a, task):
    extra = {flag.lstrip("-").replace("-", "_"): None for flag, _ in task.ARGUMENTS}
    extra = {name: getattr(a, name) for name in extra}
    return T.Config(task=a.task, k=a.k, mode=a.mode, hidden=a.hidden, layers=a.layers,
                    batch_size=a.batch_size, epochs=a.epochs, optimizer=a.optimizer,
                    lr=a.lr if a.lr is not None else T.DEFAULT_LR[a.optimizer],
                    clip=a.clip, dense_adam=a.dense_adam, dropout=a.dropout, seed=a.seed,
                    adam_eps=a.adam_eps, bias_correction=a.bias_correction, init=a.init,
                    activation=a.activation, backend=a.backend, data=a.data or "", limit=a.limit,
                    extra=extra)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] in (["sweep"], ["plot"]):          # their own parsers (sweep.py, plot.py)
        from . import plot, sweep
        return {"sweep": sweep.main, "plot": plot.main}[argv[0]](argv[1:])
    parser = _parser()
    args = parser.parse_args(argv)
    if getattr(args, "paper", False):                  # the same flags over the paper's defaults
        parser = _parser(paper=True)
        args = parser.parse_args(argv)
    if args.command == "report":
        if args.group:
            from .sweep import load, summarize
            print(summarize(load(args.files)))
            return 0
        print(report(args.files))
        return 0
    task = tasks.get(args.task)
    cfg = _config(args, task)
    errors = _validate(args, task) + task.validate(cfg)
    if errors:
        parser.error("; ".join(errors))
    out = args.out or os.path.join("runs", f"{cfg.task}-{cfg.mode}-k{cfg.k}-seed{cfg.seed}.json")
    try:
        from .backend import set_backend
        set_backend(cfg.backend)
        data = task.load(cfg)
        print(f"sparsebp: {cfg.task}, {task.describe(data)}; mode={cfg.mode} k={cfg.k} "
              f"hidden={cfg.hidden}x{cfg.layers} batch={cfg.batch_size} {cfg.optimizer} "
              f"lr={cfg.lr} backend={cfg.backend}", flush=True)
        res = T.run(cfg, data, out=out, ckpt_dir=args.checkpoint, resume=args.resume,
                    log=lambda s: print(s, flush=True), progress=not args.no_progress)
    except (ValueError, FileNotFoundError, FloatingPointError, RuntimeError) as e:
        print(f"sparsebp: error: {e}", file=sys.stderr)
        return 1
    b = res["best"]
    print(f"best dev epoch {b['epoch']}: dev {100 * b['dev_acc']:.2f}%  test {100 * b['test_acc']:.2f}%  "
          f"(results in {out})")
    return 0

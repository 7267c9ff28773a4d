"""Command line: `sparsebp train TASK [options]` (or `python -m sparsebp ...`).

The tasks, modes, optimizers and backends offered come from their registries
(`tasks.TASKS`, `meprop.MODES`, `train.OPTIMIZERS`, `kernels.BACKENDS`).

No input ends in a traceback: every error is one line on stderr and exit
status 1 (2 for a bad flag, 130 for Ctrl-C, which says how to resume).
"""
import argparse
import json
import math
import os
import shlex
import sys

from sparsebp.kernels import BACKENDS

from . import __version__, checkpoint, tasks
from . import train as T
from .layers import Linear
from .meprop import MODES
from .optim import Adam
from .serialize import LoadError, WriteError


def finite_float(text):
    """argparse type of every float flag: a number, and not inf or nan."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """One rule for defaults in --help: "(default: X)" after every option that
    takes a value, unless its default is None, when its help says what happens
    without it; a switch (store_true) is off unless given."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def _add_common(t, d):
    """The flags every task has; d: the task's default Config."""
    t.add_argument("--k", type=int, default=d.k, help="units kept per backward in each meProp layer")
    t.add_argument("--mode", choices=MODES, default=d.mode,
                   help="which units of dy a meProp layer keeps (dense: all, normal backprop)")
    t.add_argument("--hidden", type=int, default=d.hidden, help="units per hidden layer")
    t.add_argument("--layers", type=int, default=d.layers, help="number of hidden layers")
    t.add_argument("--batch-size", type=int, default=d.batch_size, help="examples per minibatch")
    t.add_argument("--epochs", type=int, default=d.epochs, help="passes over the training data")
    t.add_argument("--optimizer", choices=sorted(T.OPTIMIZERS), default=d.optimizer,
                   help="the update rule (lazy: only the selected rows)")
    t.add_argument("--lr", type=finite_float, default=None,
                   help="learning rate (default: " + ", ".join(f"{n} {v:g}" for n, v in T.DEFAULT_LR.items())
                   + ", as in the paper)")
    t.add_argument("--clip", type=finite_float, default=d.clip,
                   help="clip each gradient entry to [-clip, clip] (the C# code's 5); 0: off")
    t.add_argument("--dense-adam", action="store_true",
                   help="the paper code's Adam: update every row every step (without it: lazy, selected rows only)")
    t.add_argument("--dropout", type=finite_float, default=d.dropout,
                   help="probability of dropping a hidden unit in training")
    t.add_argument("--average", type=finite_float, default=d.average, metavar="DECAY",
                   help="score (and --predict with) a running average of the weights, forgetting at "
                        "DECAY per step, e.g. 0.9995 (sparsebp/average.py); 0: off, the weights themselves")
    t.add_argument("--adam-eps", type=finite_float, default=d.adam_eps, help="Adam's epsilon")
    t.add_argument("--bias-correction", choices=Adam.BIAS_CORRECTIONS, default=d.bias_correction,
                   help="Adam's bias correction: per-row step counts, the global step, or none")
    t.add_argument("--init", choices=sorted(Linear.INITS), default=d.init,
                   help="weight init: csharp (the C# code's normal, std sqrt(6/(in+out))), glorot, pytorch")
    t.add_argument("--activation", choices=["relu", "tanh", "cube"], default=d.activation,
                   help="hidden activation (the paper's MNIST MLP: relu)")
    t.add_argument("--seed", type=int, default=d.seed,
                   help="seeds weights, shuffles, dropout and random-k (same machine and threads: same run)")
    t.add_argument("--backend", choices=sorted(BACKENDS), default=d.backend,
                   help="cpu: Numba kernels; numpy: the plain reference; cuda: a GPU")
    t.add_argument("--limit", type=int, default=0,
                   help="train on the first N training units only (0: all); for quick looks")
    t.add_argument("--out", default=None, help="results JSON (default: runs/TASK-MODE-kK-seedS.json)")
    t.add_argument("--checkpoint", default=None, metavar="DIR",
                   help="save a checkpoint here after each epoch (default: none)")
    t.add_argument("--resume", action="store_true", help="continue from the checkpoint in --checkpoint DIR")
    t.add_argument("--overwrite-checkpoint", action="store_true",
                   help="start afresh and replace the checkpoint in --checkpoint DIR (without it: refused)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument("--threads", type=int, default=d.threads,
                   help="threads for BLAS and Numba (sb.set_threads); 0: their defaults. "
                        "Pin (e.g. 1) when several jobs share the machine")
    t.add_argument("--distributed", action="store_true",
                   help="data-parallel over MPI: run as mpiexec -n P sparsebp train ... --distributed "
                        "(needs the [mpi] extra; see sparsebp/distributed.py)")


def _parser(paper=False):
    p = argparse.ArgumentParser(prog="sparsebp", description="meProp: sparsified back propagation")
    p.add_argument("--version", action="version", version=f"sparsebp {__version__}")
    p.add_argument("--traceback", action="store_true",
                   help="on an unexpected error, show the full traceback (for bug reports)")
    sub = p.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train a model and write a results JSON")
    tsub = train.add_subparsers(dest="task", required=True, metavar="TASK")
    for name in tasks.TASKS:
        task = tasks.get(name)
        t = tsub.add_parser(name, help=task.HELP, description=task.HELP,
                            formatter_class=_Help)
        paper_fields = getattr(task, "PAPER", {})
        _add_common(t, T.Config(task=name, **{**task.DEFAULTS, **(paper_fields if paper else {})}))
        if paper_fields:
            t.add_argument("--paper", action="store_true", help="the paper's settings where sparsebp's "
                           "choices differ: " + ", ".join(f"{k}={v}" for k, v in paper_fields.items()))
        t.add_argument("--data", default=None, metavar="DIR", help=task.DATA_HELP)
        for flag, kwargs in task.ARGUMENTS:
            if kwargs.get("type") is float:
                kwargs = {**kwargs, "type": finite_float}
            t.add_argument(flag, **kwargs)
    from . import explain
    explain.add_arguments(sub.add_parser("explain", help="one meProp training step of a tiny layer, "
                                         "printed in the paper's notation"))
    e = sub.add_parser("eval-parse", help="UAS and LAS of a parsed CoNLL-U file against the gold one "
                       "(words whose gold UPOS is PUNCT excluded; LAS compares the full DEPREL)")
    e.add_argument("pred", help="the parser's output (CoNLL-U)")
    e.add_argument("gold", help="the gold trees of the same words (CoNLL-U)")
    r = sub.add_parser("report", help="a markdown table of results JSON files, side by side")
    r.add_argument("files", nargs="+", help="results files; the first is the baseline of the ratios")
    from . import bench_layer
    bench_layer.add_parser(sub)
    r.add_argument("--group", action="store_true",
                   help="one line per configuration: mean ± std over seeds (files or directories)")
    sub.add_parser("sweep", add_help=False, help="train a grid of configurations over seeds (see sweep --help)")
    sub.add_parser("plot", add_help=False, help="draw PNG figures from results files (see plot --help)")
    return p


def read_results(path):
    """The results dict of a finished epoch or more in the JSON file at path;
    ValueError naming the file for anything else."""
    if os.path.isdir(path):
        raise ValueError(f"{path}: is a directory, not a results file")
    try:
        with open(path, encoding="utf-8") as f:
            r = json.load(f)
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not a JSON file ({e})") from None
    if not (isinstance(r, dict) and isinstance(r.get("config"), dict) and isinstance(r.get("epochs"), list)):
        raise ValueError(f"{path}: not a sparsebp results file (no config and epochs)")
    if not r["epochs"] or not isinstance(r.get("best"), dict):
        raise ValueError(f"{path}: no finished epoch yet")
    need = {"forward_s", "linear_backward_s", "update_s", "rows_frac"}
    for e in r["epochs"]:
        if not (isinstance(e, dict) and need <= set(e)):
            raise ValueError(f"{path}: an epoch lacks one of {sorted(need)}")
    return r


def report(files):
    """Best dev/test and summed times per run; time ratios against the first file."""
    runs = [read_results(f) for f in files]
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
        name += f", average {c['average']}" if c.get("average") else ""
        name += f", seed {c['seed']}"
        rows = sum(e["rows_frac"] for e in r["epochs"]) / len(r["epochs"])
        ratio = tot[0]["linear_backward_s"] / max(t["linear_backward_s"], 1e-12)
        lines.append(f"| {name} | {len(r['epochs'])} | {b['epoch']} | {100 * b['dev_acc']:.2f} | "
                     f"{100 * b['test_acc']:.2f} | {t['forward_s']:.1f} | "
                     f"{t['linear_backward_s']:.1f} ({ratio:.1f}x) | {t['update_s']:.1f} | {100 * rows:.1f}% |")
    return "\n".join(lines)


def eval_parse(pred, gold):
    from .tasks.parse import score_files
    try:
        s = score_files(pred, gold)
    except (ValueError, FileNotFoundError) as e:
        print(f"sparsebp: error: {e}", file=sys.stderr)
        return 1
    print(f"UAS {100 * s['uas']:.2f}  LAS {100 * s['las']:.2f}  ({s['words']} words scored, "
          "punctuation excluded)")
    return 0


def _validate(a, task):
    checks = [(a.hidden >= 1, "--hidden must be >= 1"), (a.layers >= 1, "--layers must be >= 1"),
              (a.batch_size >= 1, "--batch-size must be >= 1"), (a.epochs >= 1, "--epochs must be >= 1"),
              (0 <= a.dropout < 1, "--dropout must be in [0, 1)"),
              (0 <= a.average < 1, "--average must be in [0, 1) (0: off)"), (a.limit >= 0, "--limit must be >= 0"),
              (a.lr is None or a.lr > 0, "--lr must be > 0"), (a.clip >= 0, "--clip must be >= 0"),
              (not a.resume or a.checkpoint, "--resume needs --checkpoint DIR"),
              (not a.overwrite_checkpoint or a.checkpoint, "--overwrite-checkpoint needs --checkpoint DIR"),
              (not (a.resume and a.overwrite_checkpoint), "--resume and --overwrite-checkpoint exclude each other"),
              (a.threads >= 0, "--threads must be >= 0")]
    return [msg for ok, msg in checks if not ok]


def _config(a, task):
    extra = {flag.lstrip("-").replace("-", "_"): None for flag, _ in task.ARGUMENTS}
    extra = {name: getattr(a, name) for name in extra}
    return T.Config(task=a.task, k=a.k, mode=a.mode, hidden=a.hidden, layers=a.layers,
                    batch_size=a.batch_size, epochs=a.epochs, optimizer=a.optimizer,
                    lr=a.lr if a.lr is not None else T.DEFAULT_LR[a.optimizer],
                    clip=a.clip, dense_adam=a.dense_adam, dropout=a.dropout, average=a.average, seed=a.seed,
                    adam_eps=a.adam_eps, bias_correction=a.bias_correction, init=a.init,
                    activation=a.activation, backend=a.backend, data=a.data or "", limit=a.limit,
                    threads=a.threads, extra=extra)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] in (["sweep"], ["plot"]):          # their own parsers (sweep.py, plot.py)
        from . import plot, sweep
        try:
            return {"sweep": sweep.main, "plot": plot.main}[argv[0]](argv[1:])
        except (ValueError, OSError, RuntimeError) as e:
            print(f"sparsebp {argv[0]}: error: {e}", file=sys.stderr)
            return 1
    parser = _parser()
    args = parser.parse_args(argv)
    if getattr(args, "paper", False):                  # the same flags over the paper's defaults
        parser = _parser(paper=True)
        args = parser.parse_args(argv)
    try:
        if args.command == "explain":
            from . import explain
            return explain.run(args)
        if args.command == "bench":
            from . import bench_layer
            return bench_layer.main(args)
        if args.command == "eval-parse":
            return eval_parse(args.pred, args.gold)
        if args.command == "report":
            if args.group:
                from .sweep import load, summarize
                print(summarize(load(args.files)))
                return 0
            print(report(args.files))
            return 0
        return _train(parser, args)
    except KeyboardInterrupt:
        _close_progress_bars()
        print(f"sparsebp: interrupted; {_last_checkpoint(args, argv)}", file=sys.stderr)
        return 130
    except WriteError as e:
        _close_progress_bars()
        print(f"sparsebp: error: {e}; {_last_checkpoint(args, argv, intact=True)}", file=sys.stderr)
        return 1
    except (ValueError, OSError, FloatingPointError, RuntimeError, LoadError) as e:
        _close_progress_bars()
        print(f"sparsebp: error: {e}", file=sys.stderr)
        return 1
    except Exception as e:                     # a bug, not the user's input: still one line
        if args.traceback:
            raise
        _close_progress_bars()
        print(f"sparsebp: unexpected error {type(e).__name__}: {e} (a bug: please report it; "
              "`sparsebp --traceback ...` shows where)", file=sys.stderr)
        return 1


def _close_progress_bars():
    """Clear a progress bar cut short, so that the message gets a line of its own."""
    tqdm = sys.modules.get("tqdm")
    for bar in list(getattr(getattr(tqdm, "tqdm", None), "_instances", ())):
        bar.close()


def _train(parser, args):
    task = tasks.get(args.task)
    cfg = _config(args, task)
    errors = _validate(args, task) + task.validate(cfg)
    if errors:
        parser.error("; ".join(errors))
    out = args.out or os.path.join("runs", f"{cfg.task}-{cfg.mode}-k{cfg.k}-seed{cfg.seed}.json")
    checkpoint.check_targets(out, args.checkpoint, args.resume, args.overwrite_checkpoint)  # before any work
    if args.distributed:                   # every rank runs this; a failing one stops them all
        from .distributed import Distributed
        dist = Distributed()
        return dist.run_or_abort(lambda: _run(args, task, cfg, out, dist))
    return _run(args, task, cfg, out)


def _run(args, task, cfg, out, dist=None):
    from .backend import set_backend
    from .threads import set_threads
    set_backend(cfg.backend)
    if cfg.threads:
        set_threads(cfg.threads)
    data = task.load(cfg)
    if not dist or dist.is_root:
        print(f"sparsebp: {cfg.task}, {task.describe(data)}; mode={cfg.mode} k={cfg.k} "
              f"hidden={cfg.hidden}x{cfg.layers} {cfg.activation} batch={cfg.batch_size} {cfg.optimizer} "
              f"lr={cfg.lr}" + (f" dropout={cfg.dropout}" if cfg.dropout else "")
              + (f" average={cfg.average}" if cfg.average else "") + f" backend={cfg.backend}"
              + (f" ranks={dist.size}" if dist else ""),
              flush=True)
    res = T.run(cfg, data, out=out, ckpt_dir=args.checkpoint, resume=args.resume,
                log=lambda s: print(s, flush=True), progress=not args.no_progress,
                overwrite=args.overwrite_checkpoint, dist=dist)
    if dist and not dist.is_root:
        return 0
    b = res["best"]
    print(f"best dev epoch {b['epoch']}: dev {100 * b['dev_acc']:.2f}%  test {100 * b['test_acc']:.2f}%  "
          f"(results in {out})")
    return 0


def _last_checkpoint(args, argv, intact=False):
    """Where the last complete checkpoint is, and the command that resumes it."""
    if args.command != "train":
        return "nothing was written"
    if not args.checkpoint:
        return "no --checkpoint DIR was given, so there is no checkpoint to resume from"
    try:
        n = checkpoint.epochs_done(args.checkpoint)
    except (LoadError, OSError) as e:
        return f"the checkpoint in {args.checkpoint} is not readable: {e}"
    if n is None:
        return f"no epoch had finished, so {args.checkpoint} holds no checkpoint yet"
    cmd = [a for a in argv if a != "--overwrite-checkpoint"] + ([] if "--resume" in argv else ["--resume"])
    return (f"the last complete checkpoint, after epoch {n}, is {checkpoint.path_of(args.checkpoint)}"
            f"{' (intact)' if intact else ''}; resume with: sparsebp {shlex.join(cmd)}")

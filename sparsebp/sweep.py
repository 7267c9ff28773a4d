"""`sparsebp sweep TASK`: a grid of `sparsebp train` runs over seeds, and its summary.

    sparsebp sweep mnist --mode dense topk --k 10 20 --seeds 1-5 --epochs 5 --out results/x

Every combination of the grid flags' values is trained once per seed, each run a
`python -m sparsebp train` subprocess pinned to ONE thread for BLAS and Numba (two
multi-threaded OpenBLAS pools on two cores thrash), `--jobs` at a time. A run whose
results file is already complete (all its epochs written) is skipped, so an
interrupted sweep resumes where it stopped; an incomplete one is trained again.
Flags that are not grid flags (`--epochs 5`, `--paper`, ...) pass to every run.
At the end the sweep writes OUT/summary.md: mean ± std over seeds per configuration
(`summarize`, also `sparsebp report --group`).
"""
import argparse
import itertools
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

# The train flags a grid may vary, with their types; each takes one or more values.
GRID = {"mode": str, "k": int, "optimizer": str, "lr": float, "hidden": int, "layers": int,
        "dropout": float, "batch-size": int, "activation": str, "init": str, "adam-eps": float,
        "bias-correction": str, "clip": float}
# Every child computes on one thread: sweeps run one process per core.
ONE_THREAD = {v: "1" for v in ("OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS",
                               "OMP_NUM_THREADS", "MKL_NUM_THREADS")}


def parse_seeds(text):
    """'1-5' -> [1, 2, 3, 4, 5]; '1,3,7' -> [1, 3, 7]; '2' -> [2]."""
    seeds = []
    try:
        for part in text.split(","):
            lo, _, hi = part.partition("-")
            seeds += list(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds must look like 1-5 or 1,3,7 (got {text!r})")
    if not seeds:
        raise argparse.ArgumentTypeError(f"no seeds in {text!r}")
    return seeds


def _parser():
    p = argparse.ArgumentParser(prog="sparsebp sweep", description=__doc__.split("\n\n")[0], allow_abbrev=False,
                                epilog="Other flags are passed to every `sparsebp train` run.")
    p.add_argument("task", help="the task, as for `sparsebp train`")
    p.add_argument("--seeds", type=parse_seeds, default=[1], help="e.g. 1-5 or 1,3,7")
    p.add_argument("--jobs", type=int, default=2, help="runs at a time, one thread each")
    p.add_argument("--out", required=True, help="directory for the results files and logs")
    p.add_argument("--dry-run", action="store_true", help="list the runs, train none")
    for flag, typ in GRID.items():
        p.add_argument(f"--{flag}", type=typ, nargs="+", default=None)
    return p


def runs(grid, seeds, passed):
    """[(name, argv)] for every combination of grid {flag: [values]} and seed.

    dense ignores k, so a dense combination appears once whatever the k values."""
    flags = [f for f in GRID if grid.get(f)]
    tag = "".join(a.lstrip("-").replace("-", "") for a in passed)
    out, seen = [], set()
    for values in itertools.product(*(grid[f] for f in flags)):
        combo = dict(zip(flags, values))
        if combo.get("mode") == "dense":
            combo.pop("k", None)
        for seed in seeds:
            name = "-".join(f"{f.replace('-', '')}{v}" for f, v in combo.items())
            name = "-".join(s for s in (name, tag, f"seed{seed}") if s)
            if name in seen:
                continue
            seen.add(name)
            argv = [a for f, v in combo.items() for a in (f"--{f}", str(v))]
            out.append((name, argv + list(passed) + ["--seed", str(seed)]))
    return out


def complete(path):
    """True if path holds a results file with every epoch its config asks for."""
    try:
        with open(path) as f:
            r = json.load(f)
        return len(r["epochs"]) >= r["config"]["epochs"]
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _train(task, name, argv, out_dir):
    """One `sparsebp train` subprocess, one thread; returns (name, exit code, seconds)."""
    pkg_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, **ONE_THREAD,
           "PYTHONPATH": os.pathsep.join(p for p in (pkg_root, os.environ.get("PYTHONPATH")) if p)}
    cmd = [sys.executable, "-m", "sparsebp", "train", task, *argv, "--no-progress",
           "--out", os.path.join(out_dir, name + ".json")]
    t0 = time.perf_counter()
    with open(os.path.join(out_dir, name + ".log"), "w") as log:
        log.write(" ".join(cmd[2:]) + "\n")
        log.flush()
        rc = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    return name, rc, time.perf_counter() - t0


def sweep(task, grid, seeds, passed, out_dir, jobs=2, log=print, dry_run=False):
    """Train every run not yet complete; returns the names that failed."""
    todo = runs(grid, seeds, passed)
    os.makedirs(out_dir, exist_ok=True)
    left = [(n, a) for n, a in todo if not complete(os.path.join(out_dir, n + ".json"))]
    log(f"sweep: {len(todo)} runs, {len(todo) - len(left)} already complete, {len(left)} to train "
        f"({jobs} at a time, one thread each) into {out_dir}")
    if dry_run:
        for n, a in left:
            log(f"  {n}: sparsebp train {task} {' '.join(a)}")
        return []
    failed = []
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(_train, task, n, a, out_dir) for n, a in left]
        for i, fut in enumerate(futures, 1):
            name, rc, secs = fut.result()
            if rc:
                failed.append(name)
            log(f"[{i}/{len(left)}] {name}: {'FAILED (see its .log)' if rc else 'done'} in {secs:.0f}s")
    return failed


def _describe(c, keys):
    """A short label of config dict c from the keys that differ between groups."""
    names = {"mode": "", "k": "k=", "optimizer": "", "hidden": "h=", "layers": "layers=",
             "dropout": "dropout ", "batch_size": "batch ", "lr": "lr ", "epochs": "epochs "}
    parts = []
    for key in keys:
        if key == "k" and c.get("mode") == "dense":
            continue
        v = c.get(key)
        if isinstance(v, bool):
            parts.append(key.replace("_", " ") if v else f"no {key.replace('_', ' ')}")
        else:
            parts.append(f"{names.get(key, key.replace('_', ' ') + ' ')}{v}")
    return ", ".join(parts) or "all"


IGNORED = ("seed", "backend", "data", "extra", "threads")   # threads change a run's time, not its numbers


def group(results):
    """[(config without seed, [results])] grouped by config, sorted by mode, optimizer,
    then the numbers (k, hidden, layers, dropout) in numeric order."""
    groups = {}
    for r in results:
        c = {k: v for k, v in r["config"].items() if k not in IGNORED}
        if c.get("mode") == "dense":
            c["k"] = None
        groups.setdefault(json.dumps(c, sort_keys=True), (c, []))[1].append(r)

    def order(item):
        c = item[1][0]
        return (str(c.get("mode")), str(c.get("optimizer")), c.get("k") or 0, c.get("hidden") or 0,
                c.get("layers") or 0, c.get("dropout") or 0, item[0])
    return [g for _, g in sorted(groups.items(), key=order)]


def stats(runs_):
    """Per-run numbers of one group: arrays over seeds."""
    def total(r, key):
        return sum(e[key] for e in r["epochs"])
    return {"test": np.array([100 * r["best"]["test_acc"] for r in runs_]),
            "dev": np.array([100 * r["best"]["dev_acc"] for r in runs_]),
            "epoch": np.array([r["best"]["epoch"] for r in runs_]),
            "backward": np.array([total(r, "linear_backward_s") for r in runs_]),
            "rows": np.array([100 * total(r, "rows_frac") / len(r["epochs"]) for r in runs_])}


def _pm(a, digits=2):
    """'mean ± std' (population std over seeds; std 0 for one seed)."""
    return f"{a.mean():.{digits}f} ± {a.std():.{digits}f}"


def labels(groups):
    """A label per group of `group`, from the settings that differ between groups."""
    first = ("mode", "k", "optimizer")
    keys = [k for k in (*first, *(k for k in groups[0][0] if k not in first))
            if len({json.dumps(c.get(k)) for c, _ in groups}) > 1]
    return [_describe(c, keys) for c, _ in groups]


def summarize(results):
    """Markdown table: per configuration, mean ± std over seeds of the best-dev
    test and dev accuracy, the linear backward seconds (summed over epochs) and the
    rows updated per step."""
    groups = group(results)
    lines = ["| configuration | seeds | best dev epoch | dev % | test % | linear backward s "
             "| rows updated % |", "| --- |" + " ---: |" * 6]
    for label, (c, rs) in zip(labels(groups), groups):
        s = stats(rs)
        lines.append(f"| {label} | {len(rs)} | {s['epoch'].mean():.1f} | {_pm(s['dev'])} | "
                     f"{_pm(s['test'])} | {_pm(s['backward'], 1)} | {_pm(s['rows'], 1)} |")
    return "\n".join(lines)


def load(paths):
    """The results files among paths (directories: their *.json), complete or not;
    each read and checked by `cli.read_results` (a bad file: ValueError naming it)."""
    from .cli import read_results
    files = []
    for p in paths:
        files += (sorted(os.path.join(p, f) for f in os.listdir(p) if f.endswith(".json"))
                  if os.path.isdir(p) else [p])
    return [read_results(f) for f in files]


def main(argv):
    p = _parser()
    args, passed = p.parse_known_args(argv)
    if args.jobs < 1:
        p.error("--jobs must be >= 1")
    bad = [a for a in passed if a in ("--seed", "--out")]
    if bad:
        p.error(f"{bad[0]} is set by the sweep (use --seeds / --out DIR)")
    grid = {f: getattr(args, f.replace("-", "_")) for f in GRID}
    failed = sweep(args.task, grid, args.seeds, passed, args.out, args.jobs, dry_run=args.dry_run)
    if args.dry_run:
        return 0
    results = load([args.out])
    if results:
        table = summarize(results)
        with open(os.path.join(args.out, "summary.md"), "w") as f:
            f.write(table + "\n")
        print(table)
    if failed:
        print(f"sparsebp sweep: {len(failed)} runs failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0

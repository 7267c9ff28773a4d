"""`sparsebp bench layer`: one Linear layer's backward over a grid, modes side by side.

    sparsebp bench layer --n 500 2000 4000 --batch 1 32 128 --k 10 50 \\
        --modes dense topk unified --threads 1 --json grid.json [--png grid.png] [--reference]

For each cell (n_in = n_out = n, batch B, k): one weight W shared by a layer of
every mode (`Linear.from_weights`), 8 inputs (x, dy); each mode's backward is
checked against kernels/reference.py on them (`validate`), then all modes are timed
side by side (`bench.Timer`), with `--reference` also each mode on the NumPy
reference backend. Prints a table of µs and speed-ups over dense, writes JSON
(machine, config, rows), and a PNG of speed-up vs n per mode if matplotlib is
installed. A cell is "not judged" when the load exceeded the cores or a mode's
rounds spread by more than 20% (`bench.SPREAD_LIMIT`).
"""
import json
import os
import sys

import numpy as np

from . import bench
from .backend import using
from .layers import Linear

R_NAME = "numpy"


def _cell(rng, n, B):
    W = rng.standard_normal((n, n)).astype(np.float32) / np.sqrt(n)
    inputs = [(rng.standard_normal((B, n)).astype(np.float32), rng.standard_normal((B, n)).astype(np.float32))
              for _ in range(bench.INPUTS)]
    return W, np.zeros(n, np.float32), inputs


def _layer(W, b, k, mode, backend):
    with using(backend):
        return Linear.from_weights(W, b, k=None if mode == "dense" else k, mode=mode)


def validate(layer, backend, x, dy):
    """layer's backward on `backend` against the reference kernels with the same
    selection: the selection itself (not for "random"), dx, and dW in the rows written.
    Raises AssertionError on a mismatch."""
    from . import kernels
    R = kernels.get(R_NAME)
    with using(backend):
        layer.x = x                     # what forward stores (the backward alone is timed)
        dx = np.asarray(layer.backward(dy))
    W, dW, sel, mode = layer.weight.data, layer.weight.grad, layer.selected, layer.mode
    rdx, rdW = np.empty_like(dx), np.full_like(W, np.nan)
    if mode == "dense":
        R.dense_backward(rdx, rdW, dy, x, W)
        rows = np.arange(W.shape[0])
    elif mode == "unified":
        want = np.empty(layer.k, np.int32)
        R.topk_unified(want, dy, layer.k)
        assert np.array_equal(sel, want), f"{mode} n={W.shape[0]}: selection differs from the reference"
        R.unified_backward(rdx, rdW, dy, x, W, sel)
        rows = sel
    else:
        if mode == "topk":
            want = np.empty_like(sel)
            R.topk_rows(want, dy, layer.k)
            assert np.array_equal(sel, want), f"{mode} n={W.shape[0]}: selection differs from the reference"
        R.topk_backward(rdx, rdW, dy, x, W, sel)
        rows = np.unique(sel)
    scale = 1e-4 * (1 + np.abs(rdx).max())
    assert np.abs(dx - rdx).max() <= scale, f"{mode}: dx differs from the reference"
    scale = 1e-4 * (1 + np.abs(rdW[rows]).max())
    assert np.abs(np.asarray(dW)[rows] - rdW[rows]).max() <= scale, f"{mode}: dW differs from the reference"


def _backward_fn(layer, backend, inputs):
    """fn(): the next input's backward (on `backend`), cycling through inputs."""
    from .backend import backend_name, set_backend
    state = {"i": 0}

    def fn():
        x, dy = inputs[state["i"] % len(inputs)]
        state["i"] += 1
        old = backend_name()
        if old != backend:
            set_backend(backend)
        layer.x = x
        layer.backward(dy)
        if old != backend:
            set_backend(old)
    return fn


def layer_grid(ns, batches, ks, modes, reference=False, timer=None, seed=0, log=print):
    """Rows (dicts) of µs per backward and speed-ups, one per (n, B, k) with k <= n.

    Keys: n, B, k; `{mode}_us`, `{mode}_speedup` (dense / mode, when dense is among
    the modes), `{mode}_ref_us` and `{mode}_vs_ref` (reference / ours) with reference;
    flop_limit n/k; spread (the largest of the modes'), load, judged, why."""
    timer = timer or bench.Timer()
    log = log or (lambda s: None)
    rng = np.random.default_rng(seed)
    rows = []
    for n in ns:
        for B in batches:
            W, b, inputs = _cell(rng, n, B)
            for k in ks:
                if k > n:
                    log(f"skipped n={n} k={k}: k > n")
                    continue
                load0 = os.getloadavg()[0]
                fns = {}
                for mode in modes:
                    backends = ["cpu"] + ([R_NAME] if reference and mode != "dense" else [])
                    for be in backends:
                        layer = _layer(W, b, k, mode, be)
                        for x, dy in inputs[:2]:
                            validate(layer, be, x, dy)
                        fns[mode if be == "cpu" else f"{mode}_ref"] = _backward_fn(layer, be, inputs)
                t = timer(fns)
                rows.append(_row(dict(n=n, B=B, k=k, flop_limit=n / k), t, modes, timer.spread,
                                 max(load0, os.getloadavg()[0])))
                log(_line(rows[-1], modes))
    return rows


def _row(r, t, modes, spread, load):
    """A grid row: r (n, B, k, ...) with the times t {name: µs}, the speed-ups, and the
    judgement from the load and the rounds' spread {name: fraction}."""
    r.update({f"{name}_us": v for name, v in t.items()}, load=load, spread=max(spread.values()))
    for mode in modes:
        if "dense" in t and mode != "dense":
            r[f"{mode}_speedup"] = t["dense"] / t[mode]
        if f"{mode}_ref" in t:
            r[f"{mode}_vs_ref"] = t[f"{mode}_ref"] / t[mode]
    why = [bench.load_check(load)] + [f"{name} rounds spread {s:.0%}" for name, s in spread.items()
                                      if s > bench.SPREAD_LIMIT]
    r["why"] = "; ".join(w for w in why if w)
    r["judged"] = not r["why"]
    return r


def _line(r, modes):
    parts = [f"n={r['n']} B={r['B']} k={r['k']}:"]
    for m in modes:
        parts.append(f"{m} {r[m + '_us']:.1f} us" + (f" ({r[m + '_speedup']:.1f}x)" if m + "_speedup" in r else ""))
    return " ".join(parts) + ("" if r["judged"] else f"  [not judged: {r['why']}]")


def table(rows, modes):
    """A markdown table: µs per mode, speed-ups over dense, vs the reference, judged."""
    cols = [("n", "n", "{}"), ("B", "B", "{}"), ("k", "k", "{}")]
    cols += [(f"{m}_us", f"{m} µs", "{:.1f}") for m in modes]
    cols += [(f"{m}_ref_us", f"{m} reference µs", "{:.1f}") for m in modes]
    cols += [(f"{m}_speedup", f"{m} speed-up", "{:.1f}x") for m in modes]
    cols += [(f"{m}_vs_ref", f"{m} vs reference", "{:.1f}x") for m in modes]
    cols += [("flop_limit", "n/k", "{:.0f}"), ("spread", "spread", "{:.0%}"), ("load", "load", "{:.2f}")]
    cols = [c for c in cols if any(c[0] in r for r in rows)]
    out = ["| " + " | ".join(h for _, h, _ in cols) + " | judged |", "|" + " ---: |" * (len(cols) + 1)]
    for r in rows:
        cells = ["" if r.get(c) is None else f.format(r[c]) for c, _, f in cols]
        out.append("| " + " | ".join(cells) + f" | {'yes' if r['judged'] else _short(r['why'])} |")
    return "\n".join(out)


def _short(why):
    """'no (load)', 'no (spread)' or 'no (load, spread)' from a cell's `why`."""
    return "no (" + ", ".join(w for w in ("load", "spread") if w in why) + ")"


def plot(rows, modes, path):
    """Speed-up over dense vs n, one panel per mode, a line per (B, k). Returns a
    note (str) saying what was written, or why nothing was."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "no plot: matplotlib is not installed (pip install matplotlib)"
    sparse = [m for m in modes if any(f"{m}_speedup" in r for r in rows)]
    if not sparse:
        return "no plot: speed-ups need dense among the modes"
    fig, axes = plt.subplots(1, len(sparse), figsize=(5 * len(sparse), 4), squeeze=False)
    for ax, m in zip(axes[0], sparse):
        for B, k in sorted({(r["B"], r["k"]) for r in rows}):
            pts = sorted((r["n"], r[f"{m}_speedup"]) for r in rows if (r["B"], r["k"]) == (B, k))
            ax.plot(*zip(*pts), marker="o", label=f"B={B}, k={k}")
        ax.axhline(1, color="gray", lw=0.8)
        ax.set(xscale="log", yscale="log", xlabel="n (n_in = n_out)", ylabel="speed-up over dense",
               title=f"{m} backward")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return f"written {path}"


def add_parser(sub):
    """The `bench` command and its `layer` subcommand, on the CLI's subparsers."""
    from .meprop import MODES
    p = sub.add_parser("bench", help="speed experiments (bench layer: one layer's backward over a grid)")
    bsub = p.add_subparsers(dest="bench", required=True, metavar="WHAT")
    lp = bsub.add_parser("layer", help="one Linear layer's backward: modes side by side over a grid",
                         description=__doc__.splitlines()[0])
    lp.add_argument("--n", type=int, nargs="+", default=[500, 2000], help="n_in = n_out")
    lp.add_argument("--batch", type=int, nargs="+", default=[1, 32, 128])
    lp.add_argument("--k", type=int, nargs="+", default=[10, 50])
    lp.add_argument("--modes", nargs="+", choices=MODES, default=["dense", "topk", "unified"])
    lp.add_argument("--threads", type=int, default=1,
                    help="BLAS and Numba threads (default 1: ratios of one core each; 0: their defaults)")
    lp.add_argument("--reference", action="store_true", help="time each sparse mode on the NumPy reference too")
    lp.add_argument("--budget", type=float, default=0.25, help="seconds of timing per mode and cell")
    lp.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                    help="wall: elapsed time (what is judged); cpu: this thread's CPU time (needs "
                         "--threads 1): less disturbed by other processes on a loaded machine")
    lp.add_argument("--json", default=None, metavar="OUT", help="write machine, config and rows here")
    lp.add_argument("--png", default=None, metavar="OUT", help="speed-up vs n per mode (default: --json's "
                    "name with .png)")
    lp.add_argument("--seed", type=int, default=0)


def main(a):
    """Runs `sparsebp bench layer` with the parsed arguments; returns the exit status."""
    bad = [f"--{name} values must be >= 1" for name in ("n", "batch", "k") if min(getattr(a, name)) < 1]
    bad += ["--threads must be >= 0"] if a.threads < 0 else []
    bad += ["--clock cpu needs --threads 1 (it sees this thread's CPU time only)"] \
        if a.clock == "cpu" and a.threads != 1 else []
    if bad:
        print("sparsebp bench: error: " + "; ".join(bad), file=sys.stderr)
        return 2
    m = bench.start(a.threads)                           # may re-execute this process
    from .backend import set_backend
    set_backend("cpu")
    config = {k: v for k, v in vars(a).items() if k not in ("command", "bench")}
    rows = layer_grid(a.n, a.batch, a.k, a.modes, a.reference, bench.Timer(budget_s=a.budget, clock=a.clock), a.seed,
                      log=lambda s: print(s, flush=True))
    m["load_end"] = os.getloadavg()[0]
    print("\n" + table(rows, a.modes))
    unjudged = sum(not r["judged"] for r in rows)
    if unjudged:
        print(f"\nWARNING: {unjudged} of {len(rows)} cells not judged (load above the cores, or rounds "
              f"spread over {bench.SPREAD_LIMIT:.0%}): rerun on a quieter machine")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"machine": m, "config": config, "rows": rows}, f, indent=1)
        print(f"written {a.json}")
    png = a.png or (os.path.splitext(a.json)[0] + ".png" if a.json else None)
    if png:
        print(plot(rows, a.modes, png))
    return 0

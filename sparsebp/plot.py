"""`sparsebp plot FIGURE RESULTS... --out FILE.png`: the paper's figures from results files.

    sparsebp plot k results/mnist/k --out results/mnist/k.png
    sparsebp plot curves results/mnist/headline --out results/mnist/curves.png
    sparsebp plot time results/mnist/headline --out results/mnist/time.png

RESULTS are results JSON files or directories of them; runs that differ only in
their seed form one configuration (`sweep.group`), drawn as its mean over seeds
(error bars: the standard deviation). matplotlib is an optional extra:
`pip install sparsebp[plot]` (or `pip install matplotlib`).
"""
import argparse
import sys

import numpy as np

from .sweep import group, labels, load, stats

FIGURES = ("k", "curves", "time")


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")                  # files only: no display needed
    import matplotlib.pyplot as plt
    return plt


def accuracy_vs_k(ax, results):
    """Best-dev test accuracy against k: one line per meProp mode and optimizer;
    dense runs with h < the largest hidden size are the h = k baseline (drawn at
    k = h), a dense run at full size a horizontal line."""
    groups = group(results)
    full = max(c["hidden"] for c, _ in groups)
    lines = {}
    for c, rs in groups:
        s = stats(rs)["test"]
        if c["mode"] == "dense" and c["hidden"] == full:
            ax.axhline(s.mean(), ls="--", color="gray", label=f"dense h={full}, {c['optimizer']}")
            continue
        name, x = ((f"dense h=k, {c['optimizer']}", c["hidden"]) if c["mode"] == "dense"
                   else (f"{c['mode']}, {c['optimizer']}", c["k"]))
        lines.setdefault(name, []).append((x, s.mean(), s.std()))
    ticks = set()
    for name, pts in lines.items():
        x, m, sd = map(np.array, zip(*sorted(pts)))
        ax.errorbar(x, m, yerr=sd, marker="o", capsize=3, label=name)
        ticks.update(x.tolist())
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted(ticks), [str(int(t)) for t in sorted(ticks)])
    ax.minorticks_off()
    ax.set_xlabel("k (h for the dense h = k baseline)")
    ax.set_ylabel("test accuracy % (best dev epoch)")
    ax.legend(fontsize=8)


def learning_curves(axes, results):
    """Dev accuracy and train loss per epoch, mean over seeds, per configuration."""
    groups = group(results)
    for label, (_, rs) in zip(labels(groups), groups):
        n = min(len(r["epochs"]) for r in rs)
        epochs = np.arange(1, n + 1)
        for ax, key, scale in ((axes[0], "dev_acc", 100), (axes[1], "train_loss", 1)):
            ys = np.array([[scale * e[key] for e in r["epochs"][:n]] for r in rs])
            line, = ax.plot(epochs, ys.mean(0), marker=".", label=label)
            if len(rs) > 1:
                ax.fill_between(epochs, ys.mean(0) - ys.std(0), ys.mean(0) + ys.std(0), alpha=0.2,
                                color=line.get_color())
    axes[0].set_ylabel("dev accuracy %")
    axes[1].set_ylabel("train loss")
    axes[1].set_yscale("log")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
    axes[0].legend(fontsize=8)


def time_split(ax, results):
    """Seconds per epoch in forward, backward (its linear layers apart) and
    update, mean over seeds and epochs, per configuration: stacked bars."""
    groups = group(results)
    names = labels(groups)
    bottom = np.zeros(len(groups))
    parts = (("forward_s", "forward"), ("linear_backward_s", "backward: linear layers"),
             ("other_backward_s", "backward: the rest"), ("update_s", "update"))
    for key, label in parts:
        h = np.array([np.mean([_per_epoch(r, key) for r in rs]) for _, rs in groups])
        ax.bar(names, h, bottom=bottom, label=label)
        bottom += h
    ax.set_ylabel("seconds per epoch")
    ax.tick_params(axis="x", labelrotation=20, labelsize=8)
    ax.legend(fontsize=8)


def _per_epoch(r, key):
    if key == "other_backward_s":
        return np.mean([e["backward_s"] - e["linear_backward_s"] for e in r["epochs"]])
    return np.mean([e[key] for e in r["epochs"]])


def draw(figure, results, out, title=None):
    """Draw one figure of FIGURES from the results to the PNG out; False without matplotlib."""
    plt = _pyplot()
    if plt is None:
        return False
    if figure == "curves":
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
        learning_curves(axes, results)
    else:
        fig, ax = plt.subplots(figsize=(6, 4))
        (accuracy_vs_k if figure == "k" else time_split)(ax, results)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return True


def main(argv):
    p = argparse.ArgumentParser(prog="sparsebp plot", description=__doc__.split("\n\n")[0])
    p.add_argument("figure", choices=FIGURES,
                   help="k: accuracy vs k; curves: dev accuracy and train loss per epoch; "
                        "time: forward / backward / update seconds per epoch")
    p.add_argument("results", nargs="+", help="results JSON files or directories of them")
    p.add_argument("--out", required=True, help="the PNG to write")
    p.add_argument("--title", default=None)
    args = p.parse_args(argv)
    try:
        results = load(args.results)
    except (OSError, ValueError) as e:
        p.error(f"cannot read the results: {e}")
    if not results:
        p.error("no results with a finished epoch in " + " ".join(args.results))
    if not draw(args.figure, results, args.out, args.title):
        print("sparsebp plot: needs matplotlib: pip install 'sparsebp[plot]' (or pip install matplotlib)",
              file=sys.stderr)
        return 1
    print(f"wrote {args.out}")
    return 0

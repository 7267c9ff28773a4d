"""Mean and spread over seeds of the POS runs in results/pos/ (MODE-kK-seedS.json):
test accuracy at the best-dev epoch, and the training times summed over the epochs
per epoch (forward, backward, the LSTMs' + output layer's backward, update), with
the ratios dense / meProp taken per seed.

    python results/pos/summary.py [DIR ...] > DIR/summary.md     (DIR: results/pos by default)

Several directories are read as one table (e.g. e20 and e20-per-gate: the per-gate runs
appear as "topk per gate k = K").
"""
import glob
import json
import os
import re
import sys
from collections import defaultdict

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def load(dirs):
    runs = defaultdict(dict)                  # (mode, k) -> seed -> results
    for d in dirs:
        for path in sorted(glob.glob(os.path.join(d, "*-k*-seed*.json"))):
            mode, k, seed = re.match(r"(\w+)-k(\d+)-seed(\d+)\.json", os.path.basename(path)).groups()
            with open(path) as f:
                r = json.load(f)
            if (r["config"].get("extra") or {}).get("per_gate"):
                mode += " per gate"
            if r.get("best"):
                runs[(mode, int(k) if mode != "dense" else 0)][int(seed)] = r
    return runs


def times(r):
    """Seconds per epoch (the mean over the epochs run)."""
    t = {k: float(np.mean([e[k] for e in r["epochs"]])) for k in ("forward_s", "backward_s", "linear_backward_s",
                                                                 "update_s")}
    t["total_s"] = t["forward_s"] + t["backward_s"] + t["update_s"]
    return t


def stat(xs, fmt="{:.2f}"):
    xs = np.asarray(xs, float)
    if len(xs) == 1:
        return fmt.format(xs[0]) + " (1 seed)"
    return f"{fmt.format(xs.mean())} ± {fmt.format(xs.std(ddof=1))} [{fmt.format(xs.min())}, {fmt.format(xs.max())}]"


def main(dirs):
    runs = load(dirs or [HERE])
    dense = runs.get(("dense", 0), {})
    print("| run | seeds | epochs | best-dev epochs | dev % | test % (mean ± sd [min, max]) | "
          "LSTM+output backward s / epoch | backward ratio dense/run | total train s / epoch | "
          "total ratio dense/run | rows updated |")
    print("|" + " --- |" * 11)
    for (mode, k), by_seed in sorted(runs.items(), key=lambda kv: (kv[0][0] != "dense", kv[0][1])):
        seeds = sorted(by_seed)
        rs = [by_seed[s] for s in seeds]
        ts = [times(r) for r in rs]
        n_ep = [len(r["epochs"]) for r in rs]
        bratio = [times(dense[s])["linear_backward_s"] / t["linear_backward_s"] for s, t in zip(seeds, ts) if s in dense]
        tratio = [times(dense[s])["total_s"] / t["total_s"] for s, t in zip(seeds, ts) if s in dense]
        rows = np.mean([np.mean([e["rows_frac"] for e in r["epochs"]]) for r in rs])
        name = "dense" if mode == "dense" else f"{mode} k = {k}"
        print(f"| {name} | {', '.join(map(str, seeds))} | {'/'.join(map(str, n_ep))} | "
              f"{'/'.join(str(r['best']['epoch']) for r in rs)} | "
              f"{stat([100 * r['best']['dev_acc'] for r in rs])} | {stat([100 * r['best']['test_acc'] for r in rs])} | "
              f"{stat([t['linear_backward_s'] for t in ts], '{:.1f}')} | "
              f"{stat(bratio, '{:.2f}') if bratio else '-'} | "
              f"{stat([t['total_s'] for t in ts], '{:.1f}')} | "
              f"{stat(tratio, '{:.2f}') if tratio else '-'} | {100 * rows:.1f}% |")


if __name__ == "__main__":
    main(sys.argv[1:])

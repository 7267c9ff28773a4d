"""The parsing results table: python results/parse/summarize.py [DIR] (from the JSON
files in DIR, by default this folder).

Per run: epochs run, the best-dev epoch, dev and test UAS/LAS at it, and the mean
wall-clock seconds per epoch of each part (on the shared, loaded machine); then
mean, sample standard deviation and range (min-max) over seeds of each setting.
"""
import glob
import json
import os
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PARTS = ("forward_s", "backward_s", "linear_backward_s", "update_s", "dev_parse_s", "test_parse_s")


def load(folder=HERE):
    runs = []
    for path in sorted(glob.glob(os.path.join(folder, "*-seed*.json"))):
        r = json.load(open(path))
        c, E = r["config"], r["epochs"]
        if c["task"] != "parse":              # e.g. the POS tagger of predicted/
            continue
        b = E[r["best"]["epoch"] - 1]
        runs.append(dict(name=os.path.basename(path)[:-5], mode=c["mode"], dropout=c["dropout"],
                         seed=c["seed"], epochs=len(E), planned=c["epochs"], best=b["epoch"], dev=b["dev_acc"],
                         dev_las=b["dev_las"], test=b["test_acc"], test_las=b["test_las"],
                         **{p: sum(e[p] for e in E) / len(E) for p in PARTS}))
    return runs


def main():
    runs = load(sys.argv[1] if len(sys.argv) > 1 else HERE)
    print("| run | epochs run | best dev epoch | dev UAS | dev LAS | test UAS | test LAS | forward s "
          "| backward s (linear) | update s | parse dev + test s |\n|" + " --- |" * 11)
    for r in runs:
        print(f"| {r['name']} | {r['epochs']} | {r['best']} | {100 * r['dev']:.2f} | "
              f"{100 * r['dev_las']:.2f} | {100 * r['test']:.2f} | {100 * r['test_las']:.2f} | "
              f"{r['forward_s']:.0f} | {r['backward_s']:.0f} ({r['linear_backward_s']:.0f}) | "
              f"{r['update_s']:.0f} | {r['dev_parse_s'] + r['test_parse_s']:.0f} |")
    print("\n| setting | seeds | dev UAS | test UAS ± sd (min-max) | test LAS |\n| --- | --- | --- | --- | --- |")
    groups = {}
    for r in runs:
        if r["epochs"] > r["best"] or r["epochs"] == r["planned"]:   # not a run stopped while rising
            groups.setdefault((r["mode"], r["dropout"]), []).append(r)
    for (mode, dropout), rs in groups.items():
        t = [100 * r["test"] for r in rs]
        mean = lambda k: sum(100 * r[k] for r in rs) / len(rs)  # noqa: E731
        sd = f" ± {statistics.stdev(t):.2f}" if len(t) > 1 else ""
        print(f"| {mode}, dropout {dropout} | {', '.join(str(r['seed']) for r in rs)} | {mean('dev'):.2f} | "
              f"{sum(t) / len(t):.2f}{sd} ({min(t):.2f}-{max(t):.2f}) | {mean('test_las'):.2f} |")


if __name__ == "__main__":
    main()

"""CPU benchmarks of meProp: validate against kernels/reference.py, then time side by side.

    python -m benchmarks.run [--quick] [--out FILE.json] [--threads N]

Every implementation is first checked against the NumPy reference on the very inputs
it is then timed on; a mismatch stops the run. Times are medians over many repetitions
after warm-up, all in one process, one implementation after the other on the same
inputs, so the ratios compare like with like. Numba's compile time is measured apart,
in a fresh interpreter with an empty cache. Sections (see benchmarks/README.md):
(a) top-k selection, (b) one Linear layer's backward, (c) the MNIST MLP training step,
(d) PyTorch peers of (c) when torch is importable, (e) the kernel ladder: the plain
first version of each meProp kernel (kernels/cpu_simple.py) beside the tuned one, (f) the
LSTM tagger's training step (benchmarks/lstm.py, in a process of its own: one thread, a
clean OpenBLAS environment).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

try:    # before Numba starts its OpenMP pool: in the other order PyTorch's step ran
    import torch  # noqa: F401   2-3x slower (two OpenMP runtimes in one process)
except ImportError:
    pass

from benchmarks import ladder, lstm as lstm_lab, sections  # noqa: E402

from sparsebp.bench import SPREAD_LIMIT, Timer  # noqa: E402  (interleaved rounds; benchmarks/README.md)


class SectionTimer(Timer):
    """A Timer that remembers the largest round spread it saw since `worst` was reset."""
    worst = 0.0

    def __call__(self, fns):
        out = super().__call__(fns)
        self.worst = max([self.worst, *self.spread.values()])
        return out


# ---------------------------------------------------------------- the machine
def set_threads(n):
    """The same number of threads for BLAS, Numba (sb.set_threads) and torch (when importable)."""
    import sparsebp as sb
    sb.set_threads(n)
    try:
        import torch
        torch.set_num_threads(n)
    except ImportError:
        pass


def machine():
    """sparsebp.bench.machine() (BLAS kernel, threads, load) and torch's version and threads."""
    from sparsebp import bench
    info = bench.machine()
    info["parallel_min_work"] = getattr(sections.C, "PARALLEL_MIN_WORK", None)
    try:
        import torch
        info["torch"], info["torch_threads"] = torch.__version__, torch.get_num_threads()
    except ImportError:
        info["torch"] = info["torch_threads"] = None
    return info


def compile_seconds():
    """Numba's JIT compile time of the float32 training kernels, in a fresh interpreter
    with an empty cache; then the same again with that cache (what later runs pay)."""
    code = ("import time; t=time.perf_counter(); from benchmarks.sections import first_calls; "
            "first_calls(); print(time.perf_counter()-t)")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = {}
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        for key in ("compile_s", "cache_load_s"):
            r = subprocess.run([sys.executable, "-c", code], cwd=root, env=env,
                               capture_output=True, text=True, timeout=600)
            if r.returncode != 0:
                raise RuntimeError(r.stderr)
            out[key] = float(r.stdout.split()[-1])
    return out


# ---------------------------------------------------------------- tables
def table(rows, cols):
    """rows: dicts; cols: [(key, header, format)] -> a markdown table."""
    out = ["| " + " | ".join(h for _, h, _ in cols) + " |", "|" + " ---: |" * len(cols)]
    for r in rows:
        out.append("| " + " | ".join("" if r.get(c) is None else f.format(r[c]) for c, _, f in cols) + " |")
    return "\n".join(out)


US = "{:.1f}"
X = "{:.1f}x"
TABLES = {
    "topk": ("(a) top-k selection, microseconds per call (whole minibatch)", [
        ("B", "B", "{}"), ("n", "n", "{}"), ("k", "k", "{}"),
        ("rows_us", "ours per example", US), ("argpartition_us", "np.argpartition per row", US),
        ("unified_us", "ours unified", US), ("argpartition_unified_us", "np.argpartition unified", US),
        ("rows_speedup", "per example vs argpartition", X)]),
    "layer": ("(b) one Linear layer's backward (Linear.backward: bias, select, dx, dW), microseconds, "
              "one thread; `sparsebp bench layer`", [
        ("n", "n_in = n_out", "{}"), ("B", "B", "{}"), ("k", "k", "{}"), ("dense_us", "dense BLAS", US),
        ("topk_us", "top-k", US), ("unified_us", "unified", US), ("topk_ref_us", "top-k, reference", US),
        ("unified_ref_us", "unified, reference", US), ("topk_speedup", "top-k speed-up", X),
        ("unified_speedup", "unified speed-up", X), ("unified_vs_ref", "unified vs reference", X),
        ("flop_limit", "flop limit n/k", X), ("spread", "spread", "{:.0%}"), ("load", "load", "{:.2f}"),
        ("judged", "judged", "{}")]),
    "breakdown": ("(b') where one layer's backward spends its time, B = 50, n = 500, k = 20, "
                  "one thread, microseconds", [("part", "part", "{}"), ("us", "time", US)]),
    "mlp": ("(c) MNIST MLP 784-500-500-10 training step (Adam), k = 20, microseconds", [
        ("B", "B", "{}"), ("mode", "mode", "{}"), ("forward_us", "forward", US),
        ("backward_us", "backward", US), ("update_us", "update", US), ("step_us", "step", US),
        ("step_over_forward", "step / forward", "{:.2f}"), ("weights_updated", "weights updated", "{:,}"),
        ("step_speedup", "vs our dense step", X)]),
    "torch": ("(d) the same step in PyTorch, microseconds: side by side with ours, and "
              "PyTorch again in a fresh process", [
        ("B", "B", "{}"), ("mode", "mode", "{}"), ("threads", "torch threads", "{}"),
        ("forward_us", "forward", US), ("step_here_us", "step, here", US),
        ("step_fresh_us", "step, fresh process", US), ("step_us", "step (faster)", US),
        ("ours_unified_us", "ours unified step", US), ("unified_speedup", "ours unified vs this", X)]),
    "ladder": ladder.TABLE,
    "targets": ("targets (the issue) against what this run measured", [
        ("target", "target", "{}"), ("want", "want", "{}"), ("got", "got", "{}"), ("met", "met", "{}")]),
}


def show(res, key):
    title, cols = TABLES[key]
    print(f"\n## {title}\n")
    print(table(res[key], cols))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="few sizes, short timings: a smoke run")
    ap.add_argument("--out", default=None, help="write the results as JSON to this file")
    ap.add_argument("--threads", type=int, default=1,
                    help="threads for BLAS, Numba and torch alike (default 1: the issue's one thread each)")
    ap.add_argument("--no-compile", action="store_true", help="skip the compile-time measurement")
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                    help="cpu: this thread's CPU time (with --threads 1), for a loaded machine")
    ap.add_argument("--only", nargs="+", choices=["topk", "layer", "breakdown", "mlp", "torch", "ladder"],
                    help="run these sections only")
    ap.add_argument("--no-lstm", action="store_true", help="skip section (f), the LSTM tagger")
    a = ap.parse_args(argv)
    from sparsebp import bench
    bench.native_blas()                        # re-executes without OPENBLAS_CORETYPE / L2_SIZE
    set_threads(a.threads)
    res = {"machine": None, "quick": a.quick}
    if not a.no_compile:
        res.update(compile_seconds())
    t0 = time.perf_counter()
    sections.first_calls()                     # this process: compile or load from the cache
    res["first_calls_s"] = time.perf_counter() - t0
    res["machine"] = machine()
    print(bench.describe(res["machine"]), f"; torch {res['machine']['torch']}")
    if "compile_s" in res:
        print(f"Numba JIT compile of the float32 kernels: {res['compile_s']:.2f} s with an empty "
              f"cache, {res['cache_load_s']:.2f} s loading them from the cache")
    res["cost_model"] = c = sections.cost_model()
    print(f"\ncost model per example (README): forward {c['forward_mflop']:.3f} MFLOP, backward dense "
          f"{c['dense_backward_mflop']:.3f} / meProp {c['meprop_backward_mflop']:.4f} MFLOP "
          f"({c['backward_ratio']:.1f}x; hidden layers {c['hidden_backward_ratio']:.1f}x); weights updated "
          f"by a unified step {c['unified_weights_sparsebp']:,} of {c['weights']:,}")
    sizes = sections.QUICK if a.quick else sections.FULL
    if a.clock == "cpu" and a.threads != 1:
        ap.error("--clock cpu needs --threads 1")
    timer = SectionTimer(budget_s=0.02, min_rounds=3, clock=a.clock) if a.quick else SectionTimer(clock=a.clock)
    res["clock"] = a.clock
    res["spread"] = {}
    want = set(a.only or ("topk", "layer", "breakdown", "mlp", "torch", "ladder"))
    for key, fn in (("topk", lambda: sections.bench_topk(timer, **sizes["topk"])),
                    ("layer", lambda: sections.bench_layer(timer, **sizes["layer"])),
                    ("breakdown", lambda: sections.bench_breakdown(timer)),
                    ("mlp", lambda: sections.bench_mlp(timer, **sizes["mlp"])),
                    ("torch", lambda: sections.bench_torch(timer, sizes["mlp"]["Bs"], a.threads, a.quick)),
                    ("ladder", lambda: ladder.bench_ladder(timer, **(ladder.QUICK if a.quick else ladder.FULL)))):
        if key not in want:
            continue
        timer.worst = 0.0
        res[key] = fn()
        res["spread"][key] = timer.worst
        if res[key] is None:
            print(f"\n## ({key}) skipped: torch is not importable (pip install torch)")
        else:
            show(res, key)
    loads = [res["machine"]["load"], os.getloadavg()[0]]
    res["load_end"] = loads[1]
    res["judged"] = not any(bench.load_check(v) for v in loads)
    if not res["judged"]:
        print(f"\nWARNING: load average {max(loads):.2f} above the {os.cpu_count()} cores during this run: "
              "the targets are not judged")
    for key, s in res["spread"].items():
        if s > SPREAD_LIMIT:
            print(f"WARNING: section {key}: rounds spread up to {s:.0%} (> {SPREAD_LIMIT:.0%}): its targets "
                  "are not judged")
    res["targets"] = sections.targets(res)
    show(res, "targets")
    if not a.no_lstm:                          # prints its own tables and targets
        with tempfile.TemporaryDirectory() as d:
            res["lstm"] = lstm_lab.run_clean(a.quick, os.path.join(d, "lstm.json"))
    if a.out:
        with open(a.out, "w") as f:
            json.dump(res, f, indent=1)
        print(f"\nwritten {a.out}")
    return res


if __name__ == "__main__":
    main()

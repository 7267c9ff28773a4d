"""CPU benchmarks of meProp: validate against kernels/reference.py, then time side by side.

    python -m benchmarks.run [--quick] [--out FILE.json] [--threads N]

Every implementation is first checked against the NumPy reference on the very inputs
it is then timed on; a mismatch stops the run. Times are medians over many repetitions
after warm-up, all in one process, one implementation after the other on the same
inputs, so the ratios compare like with like. Numba's compile time is measured apart,
in a fresh interpreter with an empty cache. Sections (see benchmarks/README.md):
(a) top-k selection, (b) one Linear layer's backward, (c) the MNIST MLP training step,
(d) PyTorch peers of (c) when torch is importable.
"""
import argparse
import ctypes
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

try:    # before Numba starts its OpenMP pool: in the other order PyTorch's step ran
    import torch  # noqa: F401   2-3x slower (two OpenMP runtimes in one process)
except ImportError:
    pass

from benchmarks import sections  # noqa: E402

# ---------------------------------------------------------------- timing
class Timer:
    """Times implementations side by side: rounds in which each runs a batch of calls
    in turn (a batch lasts about `batch_s`), after warm-up; the result per
    implementation is the median over the rounds of its mean time per call, in
    microseconds. Interleaving the rounds spreads any drift of the machine (other
    load, clock changes) over all implementations alike."""

    def __init__(self, budget_s=0.25, batch_s=0.002, min_rounds=7, max_rounds=300, clock=time.perf_counter):
        self.budget_s, self.batch_s = budget_s, batch_s
        self.min_rounds, self.max_rounds = min_rounds, max_rounds
        self.clock = clock      # time.process_time: this process's CPU time, blind to waiting on a busy machine

    def __call__(self, fns):
        """fns: {name: fn} -> {name: median microseconds per call}."""
        inner, total = {}, 0.0
        for name, fn in fns.items():
            for _ in range(3):
                fn()
            t0 = self.clock()
            fn()
            once = max(self.clock() - t0, 1e-7)
            inner[name] = max(1, int(self.batch_s / once))
            total += inner[name] * once
        rounds = int(min(max(self.budget_s * len(fns) / total, self.min_rounds), self.max_rounds))
        ts = {name: np.empty(rounds) for name in fns}
        for r in range(rounds):
            for name, fn in fns.items():
                t0 = self.clock()
                for _ in range(inner[name]):
                    fn()
                ts[name][r] = (self.clock() - t0) / inner[name]
        return {name: float(np.median(t) * 1e6) for name, t in ts.items()}


# ---------------------------------------------------------------- the machine
def _openblas():
    """The OpenBLAS that numpy loaded (ctypes handle, symbol prefix), or (None, None)."""
    try:
        with open("/proc/self/maps") as f:
            paths = sorted({ln.split()[-1] for ln in f if "openblas" in ln.lower() and "/" in ln})
    except OSError:
        return None, None
    for p in paths:
        lib = ctypes.CDLL(p)
        for pre, suf in [("scipy_openblas_", "64_"), ("openblas_", "64_"), ("openblas_", "")]:
            if hasattr(lib, f"{pre}get_num_threads{suf}"):
                return lib, (pre, suf)
    return None, None


def set_threads(n):
    """The same number of threads for OpenBLAS, Numba and torch (when importable)."""
    import numba
    lib, (pre, suf) = _openblas()
    if lib is not None:
        getattr(lib, f"{pre}set_num_threads{suf}")(ctypes.c_int(n))
    numba.set_num_threads(n)
    try:
        import torch
        torch.set_num_threads(n)
    except ImportError:
        pass


def machine():
    import numba
    info = {"python": platform.python_version(), "numpy": np.__version__, "numba": numba.__version__,
            "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "numba_threads": numba.get_num_threads(), "numba_threading_layer": None,
            "parallel_min_work": getattr(sections.C, "PARALLEL_MIN_WORK", None)}
    try:
        info["numba_threading_layer"] = numba.threading_layer()
    except ValueError:                      # no parallel region has run yet
        pass
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    lib, (pre, suf) = _openblas()
    if lib is not None:
        cfg = getattr(lib, f"{pre}get_config{suf}")
        cfg.restype = ctypes.c_char_p
        info["blas"] = cfg().decode()
        info["blas_threads"] = getattr(lib, f"{pre}get_num_threads{suf}")()
    else:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        info["blas"], info["blas_threads"] = f"{blas.get('name')} {blas.get('version')}", None
    try:
        import torch
        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
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
    "layer": ("(b) one Linear layer's backward (select + dx + dW), microseconds; "
              "1 thread / all threads", [
        ("B", "B", "{}"), ("n", "n_in = n_out", "{}"), ("k", "k", "{}"), ("dense_us", "dense BLAS", US),
        ("topk_us", "top-k", US), ("topk_select_us", "of which select", US),
        ("unified_us", "unified", US), ("topk_mt_us", "top-k, threads", US),
        ("unified_mt_us", "unified, threads", US), ("topk_speedup", "top-k speed-up", X),
        ("unified_speedup", "unified speed-up", X), ("topk_mt_speedup", "top-k, threads", X),
        ("unified_mt_speedup", "unified, threads", X), ("flop_limit", "flop limit n/k", X)]),
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
    ap.add_argument("--threads", type=int, default=os.cpu_count(),
                    help="threads for OpenBLAS, Numba and torch alike (default: all cores)")
    ap.add_argument("--no-compile", action="store_true", help="skip the compile-time measurement")
    a = ap.parse_args(argv)
    set_threads(a.threads)
    res = {"machine": None, "quick": a.quick}
    if not a.no_compile:
        res.update(compile_seconds())
    t0 = time.perf_counter()
    sections.first_calls()                     # this process: compile or load from the cache
    res["first_calls_s"] = time.perf_counter() - t0
    res["machine"] = machine()
    print("machine:", json.dumps(res["machine"]))
    if "compile_s" in res:
        print(f"Numba JIT compile of the float32 kernels: {res['compile_s']:.2f} s with an empty "
              f"cache, {res['cache_load_s']:.2f} s loading them from the cache")
    res["cost_model"] = c = sections.cost_model()
    print(f"\ncost model per example (README): forward {c['forward_mflop']:.3f} MFLOP, backward dense "
          f"{c['dense_backward_mflop']:.3f} / meProp {c['meprop_backward_mflop']:.4f} MFLOP "
          f"({c['backward_ratio']:.1f}x; hidden layers {c['hidden_backward_ratio']:.1f}x); weights updated "
          f"by a unified step {c['unified_weights_sparsebp']:,} of {c['weights']:,}")
    sizes = sections.QUICK if a.quick else sections.FULL
    timer = Timer(budget_s=0.02, min_rounds=3) if a.quick else Timer()
    res["topk"] = sections.bench_topk(timer, **sizes["topk"])
    show(res, "topk")
    res["layer"] = sections.bench_layer(timer, **sizes["layer"])
    show(res, "layer")
    res["breakdown"] = sections.bench_breakdown(timer)
    show(res, "breakdown")
    res["mlp"] = sections.bench_mlp(timer, **sizes["mlp"])
    show(res, "mlp")
    res["torch"] = sections.bench_torch(timer, sizes["mlp"]["Bs"], a.threads, a.quick)
    if res["torch"] is None:
        print("\n## (d) PyTorch peers: skipped, torch is not importable (pip install torch)")
    else:
        show(res, "torch")
    res["targets"] = sections.targets(res)
    show(res, "targets")
    if a.out:
        with open(a.out, "w") as f:
            json.dump(res, f, indent=1)
        print(f"\nwritten {a.out}")
    return res


if __name__ == "__main__":
    main()

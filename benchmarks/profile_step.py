"""Where the MNIST MLP step's time goes at batch 1 (unified, k = 20, Adam), and what
the one-call optimizer step changed.

    python -m benchmarks.profile_step [--rev REV] [--clock cpu] [--profile]

Two copies of the model (same seed, same minibatches) step side by side in one
process, interleaved by Timer: one with today's optimizer (one `adam_step` call for
all parameters), one with the optimizer of git revision REV (default a192784: one
`adam_rows` call per parameter) and REV's CPU kernels, read with `git show`; the
layers of both run today's kernels.
Prints the step, its forward and the update of each, the step / forward ratios
(issue 15's target: <= 1.6 at B = 1), then the Adam kernels alone on the rows of
the last backward (six calls against one), and with --profile cProfile's busiest
functions over 3,000 steps. Needs git and the repository for REV.
"""
import argparse
import cProfile
import importlib
import pstats
import subprocess
import sys
import tempfile
import types
from pathlib import Path

from sparsebp.kernels import cpu as C
import sparsebp as sb
from benchmarks import sections as S
from sparsebp.bench import SPREAD_LIMIT, Timer, load_check

ROOT = Path(__file__).resolve().parent.parent


def optim_at(rev):
    """sparsebp/optim.py of git revision rev, as a module of the sparsebp package,
    calling the CPU kernels of rev (kernels/cpu*.py and reference.py, read with
    `git show` into a temporary package): the optimizer of rev, Python and kernels."""
    def show(path):
        return subprocess.run(["git", "show", f"{rev}:{path}"], cwd=ROOT, check=True,
                              capture_output=True, text=True).stdout
    pkg = Path(tempfile.mkdtemp()) / "kernels_at_rev"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    for name in ("cpu.py", "cpu_optim.py", "cpu_lstm.py", "reference.py"):
        (pkg / name).write_text(show(f"kernels/{name}"))
    sys.path.insert(0, str(pkg.parent))
    kern = importlib.import_module("kernels_at_rev.cpu")
    mod = types.ModuleType("sparsebp._optim_at_rev")
    mod.__package__ = "sparsebp"
    exec(compile(show("sparsebp/optim.py"), f"{rev}:sparsebp/optim.py", "exec"), mod.__dict__)
    mod.K = lambda: kern
    return mod


def kernel_cases(opt):
    """The Adam kernels on the rows of the last backward, on copies of the state:
    {name: fn}, one call per parameter and one call for all."""
    g = opt._groups()[0]
    rows = tuple(r if p.rows is None else p.rows for p, r in zip(g.params, g.all_rows))
    rows += g.all_rows[len(rows):]                     # the padding (optim.STEP_TUPLE)
    st = [tuple(a.copy() for a in g.W)] + [tuple(a.copy() for a in g.state[n]) for n in "MVT"]
    args = (1e-3, 0.9, 0.999, 1e-8, 0.0)
    cases = {}
    for i, (W, M, V, T, G, r) in enumerate(list(zip(*st, g.G, rows))[:len(g.params)]):
        cases[f"adam_rows, parameter {i} {opt.params[i].shape}, {len(r)} rows"] = (
            lambda W=W, M=M, V=V, T=T, G=G, r=r: C.adam_rows(W, M, V, T, G, r, *args))
    cases["adam_step, every parameter in one call"] = lambda: C.adam_step(*st, g.G, rows, *args, 0)
    return cases


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rev", default="a192784", help="the revision whose optimizer is 'before'")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    ap.add_argument("--budget", type=float, default=0.5, help="seconds per timed part")
    ap.add_argument("--profile", action="store_true", help="cProfile 3,000 steps too")
    a = ap.parse_args(argv)
    from sparsebp import bench
    m = bench.start(1)                                 # native BLAS, one thread, machine line
    sb.set_backend("cpu")
    old = optim_at(a.rev)
    model, opt, lf = S.build("unified")
    twin, _, lf2 = S.build("unified")
    opt_old = old.Adam(twin.parameters(), lr=1e-3, clip=0.0)
    batches = [S.mnist_batch(1, i)[:2] for i in range(S.INPUTS)]
    step, step_old = S.train_step(model, opt, lf), S.train_step(twin, opt_old, lf2)
    for b in batches:
        step(*b)
        step_old(*b)

    def forward(x, y):
        lf.forward(model.forward(x), y)
    fns = {"step": S.cycling(step, batches), f"step, optimizer of {a.rev}": S.cycling(step_old, batches),
           "forward + loss": S.cycling(forward, batches),
           "backward": lambda: model.backward(lf.backward()),
           "update (one adam_step)": opt.step,
           f"update, optimizer of {a.rev} (adam_rows per parameter)": opt_old.step}
    # Twice, the second time in reverse order, and the mean of the two medians: the first
    # part of a round starts with caches the others filled (the two steps differed by
    # 17% in one order alone, each way round)
    timer = Timer(budget_s=a.budget / 2, clock=a.clock)
    t1 = timer(fns)
    spread = max(timer.spread.values())
    t2 = timer(dict(reversed(fns.items())))
    spread = max(spread, *timer.spread.values())
    t = {name: (t1[name] + t2[name]) / 2 for name in fns}
    tk = Timer(budget_s=a.budget / 2, clock=a.clock)(kernel_cases(opt))
    print(f"\n{a.clock} clock, µs per call, medians of interleaved rounds; worst spread {spread:.0%}"
          f"{' (over ' + format(SPREAD_LIMIT, '.0%') + ': not judged)' if spread > SPREAD_LIMIT else ''}\n")
    print("| part | µs |\n| --- | ---: |")
    for name, v in {**t, **tk}.items():
        print(f"| {name} | {v:.1f} |")
    fw = t["forward + loss"]
    print(f"\nstep / forward: {t['step'] / fw:.2f} now, {t[f'step, optimizer of {a.rev}'] / fw:.2f} with the "
          f"optimizer of {a.rev} (issue 15's target: <= 1.6)")
    bad = load_check(bench.machine()["load"]) or load_check(m["load"])
    if bad:
        print(f"not judged: {bad}")
    if a.profile:
        prof = cProfile.Profile()
        prof.enable()
        for i in range(3000):
            step(*batches[i % len(batches)])
        prof.disable()
        print("\ncProfile, 3,000 steps (its own overhead inflates every Python call):")
        pstats.Stats(prof).sort_stats("tottime").print_stats(14)


if __name__ == "__main__":
    main()

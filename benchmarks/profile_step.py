"""Where the MNIST MLP step's time goes at batch 1 (unified, k = 20, Adam).

    python -m benchmarks.profile_step

Prints the step's parts (medians, run.Timer), the Adam kernels timed alone on the
same rows (their sum against the optimizer's whole step is the Python above them),
and cProfile's busiest functions over 3,000 steps.
"""
import cProfile
import pstats

from sparsebp.kernels import cpu as C
import sparsebp as sb
from benchmarks import sections as S
from benchmarks.run import Timer
from sparsebp.optim import _as_rows


def main():
    from sparsebp import bench
    bench.start(1)                                     # native BLAS, one thread, machine line
    sb.set_backend("cpu")
    model, opt, lf = S.build("unified")
    batches = [S.mnist_batch(1, i)[:2] for i in range(S.INPUTS)]

    def forward(x, y):
        lf.forward(model.forward(x), y)
    step = S.train_step(model, opt, lf)
    for b in batches:
        step(*b)
    t = Timer()({"step": S.cycling(step, batches), "forward + loss": S.cycling(forward, batches),
                 "backward": lambda: model.backward(lf.backward()), "update": opt.step})
    # the Adam kernels alone, on the rows of the last backward, in copies of the state
    kern = {}
    for i, (p, st) in enumerate(zip(opt.params, opt.state)):
        rows = opt._all_rows[i] if p.rows is None else p.rows
        W, M, V, T = (_as_rows(p.data).copy(), st["M"].copy(), st["V"].copy(), st["T"].copy())
        G = _as_rows(p.grad)
        kern[f"Adam kernel, parameter {i} {p.shape}, {len(rows)} rows"] = (
            lambda W=W, M=M, V=V, T=T, G=G, rows=rows:
            C.adam_rows_split(W, M, V, T, G, rows, 1e-3, 0.9, 0.999, 1e-8, 5.0, 1))
    tk = Timer()(kern)
    print("| µs, median | |\n| --- | ---: |")
    for name, v in {**t, **tk}.items():
        print(f"| {name} | {v:.1f} |")
    print(f"| Adam kernels, sum | {sum(tk.values()):.1f} |")
    print(f"| update minus its kernels: the optimizer's Python | {t['update'] - sum(tk.values()):.1f} |")
    prof = cProfile.Profile()
    prof.enable()
    for i in range(3000):
        step(*batches[i % len(batches)])
    prof.disable()
    print("\ncProfile, 3,000 steps (its own overhead inflates every Python call):")
    pstats.Stats(prof).sort_stats("tottime").print_stats(14)


if __name__ == "__main__":
    main()

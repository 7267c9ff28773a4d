"""Backward and whole-step time of the POS tagger, dense against top-k, side by side:
one process, the same minibatches of UD English EWT, the models stepped in turn
(interleaved, so a change in the machine's load hits them all alike). The settings
of the results/pos runs (h = 64, 32 sentences, 4 x 50 embeddings), dropout off.

    PYTHONPATH=. python results/pos/timing.py [STEPS] > results/pos/timing.md     (from the repository root)
"""
import os
import sys
import time

import numpy as np

import sparsebp as sb
from sparsebp import train as T
from sparsebp.layers import SoftmaxCrossEntropy
from sparsebp.tasks import pos as P
from sparsebp.timing import BackwardTimer

RUNS = [("dense", 16, False), ("topk", 5, False), ("topk", 5, True), ("topk", 16, False), ("topk", 32, False)]
# (mode, k, per gate: k of each gate's h pre-activations instead of k of all 4h)


def main(steps=100):
    sb.set_threads(1)
    data = os.path.join(os.environ.get(P.DATA_ENV, "../shared/data"), P.DATA_NAME)
    base = T.Config(task="pos", data=data, hidden=64, layers=1, batch_size=32, lr=2e-3, dropout=0.0,
                    extra={"embed": 50, "min_count": 2})
    c = P.load(base)
    cfgs = [T.Config(**{**base.__dict__, "mode": m, "k": k, "extra": {**base.extra, "per_gate": g}})
            for m, k, g in RUNS]
    T.warm_up(cfgs[1], P, c)
    T.warm_up(cfgs[0], P, c)
    models, opts = [], []
    for cfg in cfgs:
        sb.seed(1)
        models.append(P.build_model(cfg, c))
        opts.append(T.build_optimizer(models[-1].parameters(), cfg))
    loss_fn = SoftmaxCrossEntropy()
    order = np.random.default_rng(1).permutation(P.n_train(c))
    fwd, bwd, lstm, upd = (np.zeros(len(RUNS)) for _ in range(4))
    timers = [BackwardTimer(T.timed_layers(m)) for m in models]
    for t in timers:
        t.__enter__()
    for s in range(steps):
        inputs, y = P.batch(c, order[s * 32:(s + 1) * 32])
        for i, (m, opt) in enumerate(zip(models, opts)):
            t0 = time.perf_counter()
            loss_fn(m(inputs), y)
            t1 = time.perf_counter()
            m.backward(loss_fn.backward())
            t2 = time.perf_counter()
            opt.step()
            t3 = time.perf_counter()
            fwd[i] += t1 - t0
            bwd[i] += t2 - t1
            upd[i] += t3 - t2
    for t in timers:
        t.__exit__(None, None, None)
    lstm[:] = [t.seconds for t in timers]
    load = os.getloadavg()
    print(f"{steps} steps of 32 sentences, one thread, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} "
          "(2 cores)\n")
    print("| run | forward ms/step | backward ms/step | LSTMs + output layer backward ms/step | update ms/step "
          "| backward vs dense | LSTM+output backward vs dense | whole step vs dense |")
    print("|" + " --- |" * 8)
    tot = fwd + bwd + upd
    for i, (m, k, g) in enumerate(RUNS):
        name = "dense" if m == "dense" else f"{m} {'per gate ' if g else ''}k = {k}"
        ms = lambda a: f"{1e3 * a[i] / steps:.2f}"  # noqa: E731
        print(f"| {name} | {ms(fwd)} | {ms(bwd)} | {ms(lstm)} | {ms(upd)} | {bwd[0] / bwd[i]:.2f}x | "
              f"{lstm[0] / lstm[i]:.2f}x | {tot[0] / tot[i]:.2f}x |")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100)

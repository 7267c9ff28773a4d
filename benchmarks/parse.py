"""The parser's training step and greedy decoding, dense vs meProp, side by side.

    python -m benchmarks.parse --data DIR [--batches 100 1000] [--embed 100] [--quick] [--out FILE]

DIR holds train.conllu and dev.conllu (UD English EWT). The model is the task's
(`sparsebp/tasks/parse.py`): 48 features x 100 dims (the task's default, `--embed`)
= 4,800 inputs, one hidden
layer of 500 (tanh), 2L + 1 transitions, Adam. What is timed, on one thread:

(a) one training step on a minibatch of B oracle transitions of the training set,
    split into forward, backward (and the hidden layer's backward alone: the
    paper's "backprop time"), update and the whole step, for dense and top-k
    (k = 20), cycling through 8 minibatches; transitions per second. PyTorch's
    dense MLP of the same shape (nn.Embedding, nn.Linear, tanh, cross-entropy,
    torch.optim.Adam) beside them when torch is importable.
(b) greedy decoding of the dev sentences, all at once (one model call per step),
    split into the model's forward and the transition system's Numba code;
    sentences per second. The forward is the same in every mode, so decoding is
    timed once.

Every implementation is validated first: one step on the Numba backend against
the same step on the NumPy reference (loss, selections, gradients), and
PyTorch's gradients against ours. Times are this process's CPU time
(`time.process_time`, one thread): on the shared 2-core machine, where a run
may get a tenth of a core, wall-clock times mostly measure the wait for the CPU
(and a median over rounds then favours short calls, which more often run
unpreempted). CPU time still moves with the neighbours' use of caches and
memory: the load average is printed with the results.
"""
import argparse
import json
import os
import time

import numpy as np

try:    # before Numba starts its OpenMP pool (see benchmarks/run.py)
    import torch  # noqa: F401
except ImportError:
    torch = None

import sparsebp as sb  # noqa: E402
from benchmarks.run import Timer, machine, set_threads, table  # noqa: E402
from benchmarks.sections import INPUTS, close, cycling  # noqa: E402
from sparsebp import arcstandard as A  # noqa: E402
from sparsebp import train as T  # noqa: E402
from sparsebp.data import read_conllu  # noqa: E402
from sparsebp.tasks import parse as P  # noqa: E402

K_PAPER = 20


def config(mode, hidden=500, k=K_PAPER, embed=P.EMBED):
    return T.Config(task="parse", mode=mode, k=k, hidden=hidden, layers=1, activation="tanh",
                    extra={"embed": embed})


def build(tb, mode, backend="cpu", **kw):
    """(model, optimizer, loss) of the parser, seeded: every mode starts from the same weights."""
    cfg = config(mode, **kw)
    with sb.using(backend):
        sb.seed(0)
        model = P.build_model(cfg, tb)
        return model, T.build_optimizer(model.parameters(), cfg), sb.SoftmaxCrossEntropy()


def step(model, opt, loss_fn, x, y):
    loss = loss_fn(model(x), y)
    model.backward(loss_fn.backward())
    opt.step()
    return loss


def validate_step(tb, mode, x, y, **kw):
    """One step on the Numba backend against the same step on the reference."""
    ref, ours = build(tb, mode, "numpy", **kw), build(tb, mode, "cpu", **kw)
    with sb.using("numpy"):
        l_ref = step(*ref, x, y)
    with sb.using("cpu"):
        l_ours = step(*ours, x, y)
    assert abs(l_ref - l_ours) <= 1e-5 * abs(l_ref), f"parser {mode}: loss differs"
    hidden_ref, hidden_ours = ref[0].layers[1].layers[0], ours[0].layers[1].layers[0]
    if mode != "dense":
        assert np.array_equal(hidden_ref.selected, hidden_ours.selected), f"parser {mode}: selection"
    for i, (p, q) in enumerate(zip(ref[0].parameters(), ours[0].parameters())):
        close(f"parser {mode} gradient {i}", q.dense_grad(), p.dense_grad())


def torch_step_fns(tb, weights, batches):
    """(forward, step, model) of PyTorch's dense parser MLP from our weights."""
    from torch import nn
    E, W1, b1, W2, b2 = weights
    C = W2.shape[0]
    model = nn.Sequential(nn.Embedding(*E.shape), nn.Flatten(), nn.Linear(W1.shape[1], W1.shape[0]),
                          nn.Tanh(), nn.Linear(W1.shape[0], C))
    with torch.no_grad():
        for p, a in zip(model.parameters(), weights):
            p.copy_(torch.from_numpy(a))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    data = [(torch.from_numpy(x.astype(np.int64)), torch.from_numpy(y.astype(np.int64))) for x, y in batches]
    state = [0]

    def forward():
        state[0] = (state[0] + 1) % len(data)
        return loss_fn(model(data[state[0]][0]), data[state[0]][1])

    def one_step():
        opt.zero_grad(set_to_none=False)
        forward().backward()
        opt.step()
    return forward, one_step, model


def validate_torch(tb, x, y, embed=P.EMBED):
    """PyTorch's gradients of one dense step against the reference's."""
    model, opt, loss_fn = build(tb, "dense", "numpy", embed=embed)
    weights = [p.data.copy() for p in model.parameters()]
    with sb.using("numpy"):
        loss_fn(model(x), y)
        model.backward(loss_fn.backward())
    forward, _, tmodel = torch_step_fns(tb, weights, [(x, y)])
    tmodel.zero_grad()
    forward().backward()
    for i, (p, q) in enumerate(zip(model.parameters(), tmodel.parameters())):
        close(f"torch gradient {i}", q.grad.numpy(), p.dense_grad())


def bench_step(timer, tb, B, embed=P.EMBED):
    """Rows of (a) for minibatches of B transitions (features of `embed` numbers)."""
    rng = np.random.default_rng(B)
    batches = [P.batch(tb, rng.integers(0, P.n_train(tb), B)) for _ in range(INPUTS)]
    fns, models = {}, {}
    for mode in ("dense", "topk"):
        validate_step(tb, mode, *batches[0], embed=embed)
        model, opt, loss_fn = models[mode] = build(tb, mode, embed=embed)
        hidden = model.layers[1].layers[0]

        def forward(x, y, model=model, loss_fn=loss_fn):
            loss_fn(model(x), y)
        step(model, opt, loss_fn, *batches[0])
        fns.update({(mode, "forward_us"): cycling(forward, batches),
                    (mode, "backward_us"): lambda m=model, f=loss_fn: m.backward(f.backward()),
                    (mode, "hidden_backward_us"): lambda h=hidden: h.backward(h.dy_saved),
                    (mode, "update_us"): opt.step,
                    (mode, "step_us"): cycling(lambda x, y, a=(model, opt, loss_fn): step(*a, x, y), batches)})
        hidden.dy_saved = np.random.default_rng(0).standard_normal((B, hidden.n_out)).astype(np.float32)
        hidden.x = model.layers[0](batches[0][0])
    if torch is not None:
        validate_torch(tb, *batches[0], embed=embed)
        weights = [p.data.copy() for p in build(tb, "dense", embed=embed)[0].parameters()]
        tf, ts, _ = torch_step_fns(tb, weights, batches)
        fns.update({("torch dense", "forward_us"): lambda: tf(), ("torch dense", "step_us"): ts})
    t = timer(fns)
    rows = []
    for mode in dict.fromkeys(m for m, _ in fns):
        r = dict(B=B, mode=mode, **{key: v for (m, key), v in t.items() if m == mode})
        r["transitions_per_s"] = B / r["step_us"] * 1e6
        r["step_speedup"] = t[("dense", "step_us")] / r["step_us"]
        if "hidden_backward_us" in r:
            r["hidden_backward_speedup"] = t[("dense", "hidden_backward_us")] / r["hidden_backward_us"]
        rows.append(r)
    return rows


def bench_decode(tb, sentences, embed=P.EMBED, repeats=2):
    """(b): the best of `repeats` parses of all sentences at once."""
    model = build(tb, "dense", embed=embed)[0].eval()
    word, tag, n = P.padded(tb, sentences)
    best = None
    for _ in range(repeats):
        fwd = [0.0, 0]
        score = P.scorer(model)

        def timed(f):
            t0 = time.process_time()
            out = score(f)
            fwd[0] += time.process_time() - t0
            fwd[1] += 1
            return out
        t0 = time.process_time()
        A.decode(timed, word, tag, n, tb.nulls, tb.label_ids, tb.root_label)
        total = time.process_time() - t0
        if best is None or total < best["total_s"]:
            best = dict(sentences=len(sentences), words=int(n.sum()), model_calls=fwd[1], total_s=total,
                        forward_s=fwd[0], transition_system_s=total - fwd[0],
                        sentences_per_s=len(sentences) / total, words_per_s=int(n.sum()) / total)
    return [best]


TABLES = {
    "step": ("(a) one training step on B oracle transitions, CPU microseconds (one thread); k = 20", [
        ("B", "B", "{}"), ("mode", "mode", "{}"), ("forward_us", "forward", "{:.0f}"),
        ("backward_us", "backward", "{:.0f}"), ("hidden_backward_us", "hidden layer's backward", "{:.0f}"),
        ("hidden_backward_speedup", "its speed-up", "{:.1f}x"), ("update_us", "update", "{:.0f}"),
        ("step_us", "step", "{:.0f}"), ("step_speedup", "step vs our dense", "{:.2f}x"),
        ("transitions_per_s", "transitions/s", "{:,.0f}")]),
    "decode": ("(b) greedy decoding, all sentences at once, CPU seconds (one thread)", [
        ("sentences", "sentences", "{}"), ("words", "words", "{}"), ("model_calls", "model calls", "{}"),
        ("total_s", "seconds", "{:.2f}"), ("forward_s", "of which forward", "{:.2f}"),
        ("transition_system_s", "of which features + transitions", "{:.2f}"),
        ("sentences_per_s", "sentences/s", "{:,.0f}"), ("words_per_s", "words/s", "{:,.0f}")]),
}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="a directory with train.conllu and dev.conllu")
    ap.add_argument("--batches", type=int, nargs="+", default=[100, 1000], help="minibatch sizes B")
    ap.add_argument("--embed", type=int, default=P.EMBED, help="embedding size of each of the 48 features")
    ap.add_argument("--quick", action="store_true", help="short timings, 200 dev sentences")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    a = ap.parse_args(argv)
    set_threads(1)
    sb.set_backend("cpu")
    try:
        tb = P.load(T.Config(task="parse", data=a.data, limit=2000 if a.quick else 0))
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"benchmarks.parse: {e}")
    dev = read_conllu(os.path.join(a.data, "dev.conllu"))[:200 if a.quick else None]
    timer = Timer(budget_s=0.1 if a.quick else 1.0, clock="cpu")
    load = os.getloadavg()
    res = {"machine": machine(), "load_before": load, "data": P.describe(tb), "embed": a.embed,
           "step": [r for B in a.batches for r in bench_step(timer, tb, B, a.embed)],
           "decode": bench_decode(tb, dev, a.embed)}
    res["load_after"] = os.getloadavg()
    print(f"# parser benchmark ({res['data']}; {a.embed}-dimensional embeddings)\nload average before {load[0]:.1f} {load[1]:.1f} "
          f"{load[2]:.1f}, after {res['load_after'][0]:.1f} on {os.cpu_count()} cores; times are "
          "this process's CPU time (waiting for a core not counted, cache contention still is)")
    for key, (title, cols) in TABLES.items():
        print(f"\n## {title}\n\n{table(res[key], cols)}")
    if a.out:
        with open(a.out, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()

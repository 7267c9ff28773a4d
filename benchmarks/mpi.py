"""Data-parallel meProp over MPI: what each rank sends per step, how long the
exchange takes, and a model of larger jobs. Run it under mpiexec:

    mpiexec -n 2 python -m benchmarks.mpi                 # h = 500, 2000, 8000: minutes
    mpiexec -n 2 python -m benchmarks.mpi --quick         # h = 500 only: seconds
    mpiexec -n 2 python -m benchmarks.mpi --out benchmarks/results-mpi.json

For the paper's MNIST MLP 784-h-h-10 (meProp on both hidden layers, k = 20,
Adam, global minibatch 10, so 5 examples per rank at P = 2) it trains dense,
top-k and unified side by side for a few steps on MNIST through
`sparsebp.distributed` and measures, per step and rank: the bytes handed to
each kind of collective, the time of the exchange alone (after a Barrier, so
a slower rank's compute is not counted), unified mode's column-sum Allreduce
(inside the backward: it includes waiting for the slower rank) and the compute
(forward, backward, update). It then models the step time at
P = 8-64 on 10 and 100 Gbit/s links from those numbers (`model_comm_s`).
"""
import argparse
import json
import os
import platform
import time

import numpy as np

LINKS_GBIT = (10, 100)
RANKS = (2, 8, 16, 32, 64)
LATENCY_S = 5e-6          # per message of a ring step: a typical cluster interconnect (assumed)
SUM_BYTES_PER_S = 5e9     # a core adding gathered rows into the gradient (assumed, memory-bound)


def measure(dist, data, h, modes=("dense", "topk", "unified"), k=20, batch=10, warm=3, steps=10,
            rounds=20):
    """Train 784-h-h-10 in every mode side by side: `warm` untimed steps, then
    `steps` timed ones, the modes taking turns step by step (so a burst of
    load on the machine hits them alike); then `_repeat_exchange`. Returns one
    dict a mode: this rank's medians per step (the exchange's minimum too, the
    least disturbed by other load) and the bytes it sent per step by kind of call."""
    import sparsebp as sb
    from sparsebp import train as T
    from sparsebp.layers import SoftmaxCrossEntropy
    from sparsebp.tasks import mnist

    runs = []
    for mode in modes:
        cfg = T.Config(mode=mode, k=k, hidden=h, layers=2, batch_size=batch)
        sb.seed(1)
        model = mnist.build_model(cfg, data)
        runs.append({"mode": mode, "model": model, "opt": T.build_optimizer(model.parameters(), cfg),
                     "exchange": [], "colsum": [], "compute": [], "sent": None})
    loss_fn, order = SoftmaxCrossEntropy(), sb.rng().permutation(len(data.train_x))
    dist.start({"epochs": []})
    with dist.epoch():
        for s in range(warm + steps):
            sel = order[s * batch:(s + 1) * batch]
            mine = dist.shard(sel)
            for r in runs:
                _step(dist, r, loss_fn, data.train_x[mine], data.train_y[mine], len(sel), s >= warm)
    _repeat_exchange(dist, runs, rounds)
    return [{"h": h, "mode": r["mode"], "k": k, "batch": batch, "ranks": dist.size, "steps": steps,
             "bytes": {n: b / steps for n, b in r["sent"].items()},
             "exchange_s": float(np.median(r["exchange"])),
             "exchange_min_s": float(np.min(r["exchange"])),
             "exchange_alone_s": float(np.median(r["alone"])),
             "colsum_s": float(np.median(r["colsum"])),
             "compute_s": float(np.median(r["compute"]))} for r in runs]


def _repeat_exchange(dist, runs, rounds):
    """The exchange alone: each mode's last gradients exchanged again and again
    (restored each time), the modes taking turns, with no compute in between
    (on a loaded machine, a rank that has just computed for long is the first
    the scheduler takes the core from: that waiting is not the exchange's)."""
    for r in runs:
        params = r["model"].parameters()
        r["saved"] = [(p.rows, p.grad.copy()) for p in params]
        r["alone"] = []
    for _ in range(rounds):
        for r in runs:
            params = r["model"].parameters()
            for p, (rows, g) in zip(params, r["saved"]):
                p.rows = rows
                p.grad[...] = g
            dist.comm.Barrier()
            t0 = time.perf_counter()
            dist.exchange(params)
            r["alone"].append(time.perf_counter() - t0)
    for r in runs:
        del r["saved"]


def _step(dist, r, loss_fn, x, y, n_global, timed):
    """One training step of run r on this rank's shard (x, y); records its times."""
    model = r["model"]
    dist.reset_counters()
    t0 = time.perf_counter()
    loss_fn(model(x), y)
    dy = loss_fn.backward()
    dist.scale(dy, len(y), n_global)
    model.backward(dy)
    t1 = time.perf_counter()
    colsum = dist.comm_s                       # unified mode's Allreduce, inside backward
    dist.comm.Barrier()                        # time the exchange alone
    t2 = time.perf_counter()
    dist.exchange(model.parameters())
    t3 = time.perf_counter()
    r["opt"].step()
    t4 = time.perf_counter()
    if timed:
        r["exchange"].append(t3 - t2)
        r["colsum"].append(colsum)
        r["compute"].append(t1 - t0 - colsum + t4 - t3)
        r["sent"] = {n: (r["sent"] or {}).get(n, 0) + b for n, b in dist.sent.items()}


def model_comm_s(r, P, gbit):
    """Seconds per step of rank r's collectives at P ranks on a link of gbit Gbit/s,
    with ring algorithms (each rank sends and receives at the link's rate):
    Allreduce of N bytes: 2 (P - 1) messages and 2 (P - 1) / P N bytes;
    Allgatherv of m bytes a rank: P - 1 messages and (P - 1) m bytes, then the
    P m bytes of rows are summed at SUM_BYTES_PER_S. Weak scaling: every rank
    keeps the measured shard (5 examples), so its own rows stay as measured."""
    beta = gbit * 1e9 / 8
    b = r["bytes"]
    t = 2 * (P - 1) * LATENCY_S + 2 * (P - 1) / P * b["allreduce"] / beta
    t += 2 * ((P - 1) * LATENCY_S + (P - 1) * b["indices"] / beta)      # counts, then row ids
    if b["allgatherv"]:
        t += (P - 1) * LATENCY_S + (P - 1) * b["allgatherv"] / beta + P * b["allgatherv"] / SUM_BYTES_PER_S
    return t


def tables(results):
    """Markdown: the measured bytes and times at P = 2, then the model."""
    dense = {r["h"]: r for r in results if r["mode"] == "dense"}
    lines = ["| h | mode | bytes/step/rank | vs dense | target h/(2k) | exchange ms: in training, "
             "median (min) | alone | column sums ms | compute ms |", "|" + " --- |" * 9]
    for r in results:
        tot, d = sum(r["bytes"].values()), sum(dense[r["h"]]["bytes"].values())
        target = "" if r["mode"] == "dense" else f"{r['h'] / (2 * r['k']):.1f}x"
        lines.append(f"| {r['h']} | {r['mode']} | {tot / 1e3:,.1f} kB | {d / tot:.1f}x | {target} | "
                     f"{1e3 * r['exchange_s']:.2f} ({1e3 * r['exchange_min_s']:.2f}) | "
                     f"{1e3 * r['exchange_alone_s']:.2f} | "
                     f"{1e3 * r['colsum_s']:.2f} | "
                     f"{1e3 * r['compute_s']:.2f} |")
    lines += ["", "Model (weak scaling, 5 examples a rank; compute as measured here): step ms "
              "(communication ms)", "",
              "| h | mode | link | " + " | ".join(f"P={P}" for P in RANKS) + " |",
              "|" + " --- |" * (3 + len(RANKS))]
    for r in results:
        for g in LINKS_GBIT:
            cells = [f"{1e3 * (r['compute_s'] + model_comm_s(r, P, g)):.1f} "
                     f"({1e3 * model_comm_s(r, P, g):.1f})" for P in RANKS]
            lines.append(f"| {r['h']} | {r['mode']} | {g} Gbit/s | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="h = 500 only")
    p.add_argument("--batch", type=int, default=10, help="global minibatch (the paper's: 10)")
    p.add_argument("--out", default=None, help="write the measurements as JSON")
    a = p.parse_args(argv)
    import sparsebp as sb
    from sparsebp.data import load_mnist
    from sparsebp.distributed import Distributed

    dist = Distributed()
    sb.set_backend("cpu")
    data = load_mnist()
    sizes = [(500, 10, 10)] if a.quick else [(500, 30, 40), (2000, 10, 20), (8000, 4, 6)]   # h, steps, rounds
    results = []
    for h, steps, rounds in sizes:
        results += dist.run_or_abort(lambda: measure(dist, data, h, batch=a.batch, steps=steps,
                                                     rounds=rounds))
    if dist.is_root:
        load = os.getloadavg()
        print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average "
              f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (times on a loaded machine are rough; "
              f"bytes are exact); {dist.size} ranks, "
              f"{dist.MPI.Get_library_version().splitlines()[0].strip()}")
        print(tables(results))
        if a.out:
            with open(a.out, "w") as f:
                json.dump({"loadavg": load, "latency_s": LATENCY_S, "sum_bytes_per_s": SUM_BYTES_PER_S,
                           "results": results}, f, indent=1)


if __name__ == "__main__":
    main()

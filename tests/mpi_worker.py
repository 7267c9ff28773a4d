"""A short data-parallel training that tests/test_distributed.py runs under mpiexec.

    mpiexec -n P python tests/mpi_worker.py MODE DROPOUT OUT_DIR [fail|kill]
    mpiexec -n P python tests/mpi_worker.py exchange OUT_DIR

Trains `config(MODE, DROPOUT)` on `small_mnist()` through the real loop (`train.run`
with a `Distributed`) and saves every rank's weights after every step to
OUT_DIR/rank{r}.npz. With "fail", rank 1 raises at its third step; with
"kill", rank 1 kills itself there (SIGKILL): the job must stop, not hang.
The test imports `config`, `small_mnist` and `recording` to train the same
steps in one process. "exchange" checks `Distributed.exchange` alone on
gradients of every format (`rank_grads`) against their sum computed here.
"""
import os
import signal
import sys

import numpy as np

FAIL_STEP = 3


def small_mnist():
    """61 training images (minibatches of 7 leave a last one of 5: uneven shards
    at P = 2), 100 dev and test images."""
    from sparsebp.data import load_mnist
    m = load_mnist()
    return type(m)(m.train_x[:61], m.train_y[:61], m.dev_x[:100], m.dev_y[:100],
                   m.test_x[:100], m.test_y[:100])


def config(mode, dropout=0.0):
    from sparsebp import train as T
    return T.Config(mode=mode, k=4, hidden=32, layers=2, batch_size=7, epochs=2, seed=5,
                    dropout=float(dropout), backend="numpy")


def recording(snapshots, on_step=None):
    """A build_optimizer that appends the weights after every step to snapshots
    (the first: `train.warm_up`'s tiny model); on_step(n) runs before step n."""
    from sparsebp import train as T
    build = T.build_optimizer

    def build_recording(params, cfg):
        opt = build(params, cfg)
        step = opt.step

        def recorded_step():
            if on_step is not None:
                on_step(len(snapshots))
            step()
            snapshots.append([np.array(p.data) for p in opt.params])
        opt.step = recorded_step
        return opt
    return build_recording


def rank_grads(rank):
    """Rank `rank`'s gradients, as (shape, rows or None, grad) per parameter: dense
    everywhere; rows that differ by rank; the same rows on every rank; a bias;
    dense on rank 0 but rows elsewhere; no rows at all on rank 0. Rows outside
    `rows` hold 1e6: stale values that must never be summed."""
    g = np.random.default_rng(100 + rank)
    n = 7
    specs = [((6, 3), None), ((n, 2), np.sort(g.choice(n, 1 + rank % n, replace=False))),
             ((5, 4), np.array([1, 3])), ((4,), None), ((6, 3), None if rank == 0 else np.array([2])),
             ((3, 2), np.array([], int) if rank == 0 else np.array([0, 2]))]
    out = []
    for shape, rows in specs:
        grad = g.standard_normal(shape).astype(np.float32)
        if rows is not None:
            stale = np.ones(shape[0], bool)
            stale[rows] = False
            grad[stale] = 1e6
            rows = rows.astype(np.int32)
        out.append((shape, rows, grad))
    return out


def check_exchange(dist):
    """Exchange rank_grads(rank) and compare with the sum of every rank's."""
    from sparsebp.module import Parameter
    params = []
    for shape, rows, grad in rank_grads(dist.rank):
        p = Parameter(np.zeros(shape, np.float32))
        p.grad[...], p.rows = grad, rows
        params.append(p)
    dist.exchange(params)
    every = [rank_grads(r) for r in range(dist.size)]
    for i, p in enumerate(params):
        want = np.zeros(p.shape, np.float64)
        for grads in every:
            _, rows, grad = grads[i]
            want[slice(None) if rows is None else rows] += grad if rows is None else grad[rows]
        if any(grads[i][1] is None for grads in every):
            want_rows = None
        else:
            want_rows = np.unique(np.concatenate([grads[i][1] for grads in every]))
        got_rows = None if p.rows is None else np.asarray(p.rows)
        assert (got_rows is None) == (want_rows is None), f"parameter {i}: rows {got_rows} vs {want_rows}"
        assert want_rows is None or np.array_equal(got_rows, want_rows), f"parameter {i}"
        err = np.abs(p.dense_grad() - want).max()
        assert err < 1e-5, f"parameter {i}: off by {err}"


def main(mode, *args):
    import sparsebp as sb
    from sparsebp import train as T
    from sparsebp.distributed import Distributed

    dist = Distributed()
    sb.set_backend("numpy")
    if mode == "exchange":
        out_dir, = args
        dist.run_or_abort(lambda: check_exchange(dist))
        open(os.path.join(out_dir, f"ok{dist.rank}"), "w").close()
        return
    dropout, out_dir, fault = (*args, None)[:3]
    snapshots = []

    def inject(step):
        if dist.rank == 1 and step == FAIL_STEP:
            if fault == "fail":
                raise RuntimeError(f"injected failure at step {step}")
            if fault == "kill":
                os.kill(os.getpid(), signal.SIGKILL)

    T.build_optimizer = recording(snapshots, inject)
    cfg = config(mode, dropout)
    dist.run_or_abort(lambda: T.run(cfg, small_mnist(), progress=False, log=lambda s: None,
                                    dist=dist))
    np.savez(os.path.join(out_dir, f"rank{dist.rank}.npz"),
             **{f"{s}.{i}": w for s, ws in enumerate(snapshots) for i, w in enumerate(ws)})


if __name__ == "__main__":
    main(*sys.argv[1:])

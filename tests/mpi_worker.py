"""A short data-parallel training that tests/test_distributed.py runs under mpiexec.

    mpiexec -n P python tests/mpi_worker.py MODE OUT_DIR [fail|kill]

Trains `config(MODE)` on `small_mnist()` through the real loop (`train.run`
with a `Distributed`) and saves every rank's weights after every step to
OUT_DIR/rank{r}.npz. With "fail", rank 1 raises at its third step; with
"kill", rank 1 kills itself there (SIGKILL): the job must stop, not hang.
The test imports `config`, `small_mnist` and `recording` to train the same
steps in one process.
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


def config(mode):
    from sparsebp import train as T
    return T.Config(mode=mode, k=4, hidden=32, layers=2, batch_size=7, epochs=2, seed=5,
                    backend="numpy")


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


def main(mode, out_dir, fault=None):
    import sparsebp as sb
    from sparsebp import train as T
    from sparsebp.distributed import Distributed

    dist = Distributed()
    sb.set_backend("numpy")
    snapshots = []

    def inject(step):
        if dist.rank == 1 and step == FAIL_STEP:
            if fault == "fail":
                raise RuntimeError(f"injected failure at step {step}")
            if fault == "kill":
                os.kill(os.getpid(), signal.SIGKILL)

    T.build_optimizer = recording(snapshots, inject)
    cfg = config(mode)
    dist.run_or_abort(lambda: T.run(cfg, small_mnist(), progress=False, log=lambda s: None,
                                    dist=dist))
    np.savez(os.path.join(out_dir, f"rank{dist.rank}.npz"),
             **{f"{s}.{i}": w for s, ws in enumerate(snapshots) for i, w in enumerate(ws)})


if __name__ == "__main__":
    main(*sys.argv[1:])

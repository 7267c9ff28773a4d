"""Data-parallel training over MPI that sends only the rows meProp selected.

    pip install ".[mpi]"          # mpi4py and the mpich wheel (which brings mpiexec)
    mpiexec -n 2 sparsebp train mnist --distributed --mode topk --k 20

Every rank (process) holds the whole model. Each global minibatch (the
`--batch-size` examples one process would take) is split into P consecutive
shards, one per rank; each rank runs forward and backward on its shard, the
ranks sum their gradients (`exchange`), and every rank applies the same update
to the same weights. So the run is the single-process run of the same global
minibatches, up to the order of float additions.

How the gradients travel, per parameter (any `Parameter`, of any layer: the
exchange reads only `grad` and `.rows`, see `sparsebp/module.py`):

- a dense gradient (`rows` None: biases, the dense output layer, dense mode)
  is summed with one `Allreduce` over a flat buffer of all of them
  (one call for many small arrays: MPI's cost per call dominates for biases);
- a row-sparse gradient (meProp's top-k or random rows, an Embedding's words)
  sends its rows only. `Allgather` of every parameter's row count first (a few
  ints, so each rank can size what it receives), then `Allgatherv` of the row
  indices (int32), then the values: when every rank selected the same rows
  (unified mode) they go into the `Allreduce` buffer above (k rows summed in
  place, which costs the same whatever P); otherwise `Allgatherv` of every
  rank's own rows, and each rank sums them, in rank order, into the gradient
  whose `.rows` becomes the union: the rows a single process would update.
- unified mode must choose one set of k units for the whole global minibatch,
  from the column sums of |dy| over all its examples: `meprop.select` calls
  the column-sums reducer installed here, an `Allreduce` of n_out numbers, so
  every rank selects what one process would. (Not the LSTM's: it selects at
  every step inside its recurrence kernel, from this rank's sequences alone.)

Collectives, not point-to-point messages: every rank needs every sum, and the
MPI library picks the algorithm (ring, recursive doubling) for the message size.
MPICH's Allreduce hands every rank the same bits (the MPI standard advises it;
tests/test_distributed.py checks the weights after every step), and the sparse
sums run in the same order on every rank, so the ranks' weights stay identical.

The loss is the mean over the global minibatch's outputs: `SoftmaxCrossEntropy`
divides by the shard's, so `scale` multiplies its gradient by shard / global
outputs; the global number comes from an `Allreduce` of one int before the
forward (a task's units, e.g. sentences, have different numbers of outputs).

Randomness: every rank draws from the seeded generator (`backend.rng`), in the
same state on every rank as in one process: seeded alike, it draws the same
example order, and then, at each dropout mask and random-k draw, the numbers
for the whole global minibatch, as one process would, and keeps its shard's
rows (`backend.random_rows`; `rows_of_draw` tells it which rows those are, an
`Allgather` of one int; the LSTM draws sequence by sequence, so a shard's rows
are consecutive there too). So dropout and random mode train the
single-process network too, and the generator stays the same on every rank (a
checkpoint's state fits all of them). Each rank pays for the draws of the
whole minibatch: P times its shard's, little beside the products (B x h
numbers a layer).

Rank 0 alone prints, shows progress, evaluates and writes results and
checkpoints; `run_or_abort` turns a failure of any rank into `MPI_Abort`, so
the job stops within seconds with the rank's message instead of hanging in the
next collective. (A killed rank is seen by `mpiexec`, which ends the others.)
"""
import contextlib
import sys
import time
import traceback

import numpy as np

from . import meprop
from .backend import K, backend_name, set_rows_of_draw

# The failures a user can cause (bad flags, a missing file, a diverged run, a
# missing library): a message, no traceback.
USER_ERRORS = (ValueError, FileNotFoundError, FloatingPointError, RuntimeError)


def _mpi():
    try:
        from mpi4py import MPI
    except ImportError:
        raise RuntimeError("--distributed needs mpi4py and an MPI library: "
                           'pip install "sparsebp[mpi]" (or: pip install mpi4py mpich), '
                           "then run with mpiexec -n P sparsebp train ...") from None
    return MPI


class Distributed:
    """This process's place in the job and the gradient exchange.

    comm: an mpi4py communicator (default: every process of the job).
    Counts the bytes this rank hands to the collectives (`sent`: "allreduce"
    and "allgatherv" of gradient values, "indices": row ids and the counts) and
    the seconds it spends in them (waiting for slower ranks included).
    """

    def __init__(self, comm=None):
        MPI = _mpi()
        self.MPI = MPI
        self.comm = comm if comm is not None else MPI.COMM_WORLD
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self.is_root = self.rank == 0
        self.reset_counters()

    def reset_counters(self):
        self.comm_s, self.steps = 0.0, 0
        self.sent = {"allreduce": 0, "allgatherv": 0, "indices": 0}

    def start(self, results):
        """Before the first epoch: record the job in results (a resumed run's
        too, which must come from a job of as many ranks)."""
        saved = results.get("distributed", {"ranks": 1})["ranks"]
        if results["epochs"] and saved != self.size:
            raise ValueError(f"--resume: the checkpoint comes from a job of {saved} rank(s); "
                             f"resume it with mpiexec -n {saved}")
        results["distributed"] = {"ranks": self.size,
                                  "mpi": self.MPI.Get_library_version().splitlines()[0].strip()}

    # -- the minibatch ---------------------------------------------------------

    def check_batches(self, n_train, batch_size):
        """Every rank needs at least one example of every global minibatch."""
        last = n_train % batch_size
        if batch_size < self.size or 0 < last < self.size:
            raise ValueError(f"--distributed with {self.size} ranks: every minibatch needs at "
                             f"least {self.size} examples; --batch-size {batch_size} over "
                             f"{n_train} training units makes one of {min(batch_size, last or batch_size)}")
        if backend_name() == "cuda":
            raise ValueError("--distributed runs on the CPU backends (cpu, numpy) for now")

    def shard(self, sel):
        """This rank's share of the global minibatch sel: (B,) -> (about B / P,)."""
        return np.array_split(sel, self.size)[self.rank]

    def total(self, n_local):
        """The global minibatch's number of outputs, from this shard's n_local:
        an Allreduce of one number (a task's units, sentences, differ in outputs)."""
        t0 = time.perf_counter()
        n = self.comm.allreduce(n_local)
        self.sent["indices"] += 8
        self.comm_s += time.perf_counter() - t0
        return n

    def scale(self, dlogits, n_local, n_global):
        """Rescale the gradient of the mean loss over this shard's n_local outputs
        to that of the mean over the global minibatch's n_global (in place)."""
        dlogits *= dlogits.dtype.type(n_local / n_global)

    def sum(self, x):
        """A float summed over the ranks (the epoch's loss)."""
        return self.comm.allreduce(float(x))

    def rows_of_draw(self, rows):
        """(lo, n): this shard's rows are rows [lo, lo + rows) of the global
        minibatch's n (examples, words), which precede it in rank order: an
        Allgather of one int (see "Randomness" above)."""
        t0 = time.perf_counter()
        every = np.empty(self.size, np.int64)
        self.comm.Allgather(np.array([rows], np.int64), every)
        self.sent["indices"] += 8
        self.comm_s += time.perf_counter() - t0
        return int(every[:self.rank].sum()), int(every.sum())

    @contextlib.contextmanager
    def epoch(self):
        """Within: dropout and random-k draw this shard's rows of the global
        minibatch's draw, and unified mode selects by its column sums."""
        self.reset_counters()
        meprop.set_column_sums_reducer(self.reduce_column_sums)
        set_rows_of_draw(self.rows_of_draw)
        try:
            yield
        finally:
            meprop.set_column_sums_reducer(None)
            set_rows_of_draw(None)

    # -- the exchange ------------------------------------------------------------

    def reduce_column_sums(self, s):
        """s: (n_out,) this shard's column sums of |dy| -> the global minibatch's."""
        t0 = time.perf_counter()
        self.comm.Allreduce(self.MPI.IN_PLACE, s)
        self.sent["allreduce"] += s.nbytes
        self.comm_s += time.perf_counter() - t0
        return s

    def exchange(self, params):
        """Sum every parameter's gradient over the ranks, in place (see the module
        docstring); afterwards every rank holds the same grads and `.rows`."""
        t0 = time.perf_counter()
        counts = np.array([-1 if p.rows is None else len(p.rows) for p in params], np.int64)
        every = np.empty((self.size, len(params)), np.int64)
        self.comm.Allgather(counts, every)
        dense = [p for p, c in zip(params, every.T) if (c < 0).any()]
        sparse = [(p, c) for p, c in zip(params, every.T) if (c >= 0).all()]
        for p in dense:
            _zero_unselected(p)            # a rank that sent rows where others are dense
        rows, nbytes = self._gather_rows(sparse)
        self.sent["indices"] += counts.nbytes + nbytes
        agreed = [(p, r[0]) for (p, _), r in zip(sparse, rows) if _same(r)]
        apart = [(p, r) for (p, _), r in zip(sparse, rows) if not _same(r)]
        self.sent["allreduce"] += self._allreduce(dense, agreed)
        self.sent["allgatherv"] += self._allgather_rows(apart)
        self.steps += 1
        self.comm_s += time.perf_counter() - t0

    def _gather_rows(self, sparse):
        """Every rank's row indices of each sparse parameter: [[(c,) int32 per rank]]."""
        if not sparse:
            return [], 0
        mine = np.concatenate([np.asarray(p.rows, np.int32) for p, _ in sparse])
        sizes = np.array([sum(int(c[r]) for _, c in sparse) for r in range(self.size)])
        got = np.empty(int(sizes.sum()), np.int32)
        self.comm.Allgatherv(mine, [got, sizes])
        out, at = [[] for _ in sparse], 0
        for r in range(self.size):
            for i, (_, c) in enumerate(sparse):
                out[i].append(got[at:at + c[r]])
                at += c[r]
        return out, mine.nbytes

    def _allreduce(self, dense, agreed):
        """One Allreduce of the dense grads and the agreed rows; returns bytes sent."""
        parts = [_rows_of(p).reshape(-1) for p in dense] + [_rows_of(p)[r].reshape(-1) for p, r in agreed]
        if not parts:
            return 0
        buf = np.concatenate(parts)
        self.comm.Allreduce(self.MPI.IN_PLACE, buf)
        at = 0
        for p in dense:
            g = _rows_of(p)
            g.reshape(-1)[:] = buf[at:at + g.size]
            at += g.size
        for p, r in agreed:
            g = _rows_of(p)
            g[r] = buf[at:at + len(r) * g.shape[1]].reshape(len(r), g.shape[1])
            at += len(r) * g.shape[1]
        return buf.nbytes

    def _allgather_rows(self, apart):
        """Allgatherv of each rank's own rows; sums them into the union of rows."""
        if not apart:
            return 0
        mine = np.concatenate([_rows_of(p)[r[self.rank]].reshape(-1) for p, r in apart])
        width = [_rows_of(p).shape[1] for p, _ in apart]
        sizes = np.array([sum(len(r[q]) * w for (_, r), w in zip(apart, width))
                          for q in range(self.size)])
        got = np.empty(int(sizes.sum()), mine.dtype)
        self.comm.Allgatherv(mine, [got, sizes])
        union = [np.unique(np.concatenate(r)).astype(np.int32) for _, r in apart]
        for (p, _), u in zip(apart, union):
            _rows_of(p)[u] = 0
        at = 0
        for q in range(self.size):             # rank order: the same sums on every rank
            for (p, r), w in zip(apart, width):
                n = len(r[q]) * w
                _rows_of(p)[r[q]] += got[at:at + n].reshape(len(r[q]), w)
                at += n
        for (p, _), u in zip(apart, union):
            p.rows = u
        return mine.nbytes

    def stats(self):
        """This epoch's communication: seconds, and bytes this rank sent per step."""
        return {"comm_s": self.comm_s,
                "comm_bytes_per_step": sum(self.sent.values()) / max(self.steps, 1)}

    # -- failures ------------------------------------------------------------------

    def run_or_abort(self, fn):
        """fn() on this rank; if it raises, print which rank failed and why, then
        MPI_Abort the whole job (the other ranks would wait forever otherwise)."""
        try:
            return fn()
        except BaseException as e:                # also KeyboardInterrupt, SystemExit
            if isinstance(e, SystemExit) and not e.code:
                raise
            where = f"rank {self.rank} of {self.size}"
            if isinstance(e, USER_ERRORS):
                msg = f"sparsebp: error ({where}): {e}"
            else:
                msg = f"sparsebp: {where} failed:\n{traceback.format_exc()}"
            print(f"{msg}\nsparsebp: stopping all {self.size} ranks (MPI_Abort)",
                  file=sys.stderr, flush=True)
            self.comm.Abort(1)


def _rows_of(p):
    """p.grad as (rows, row width): a bias (n,) is n rows of one number."""
    g = p.grad
    return g.reshape(g.shape[0], -1)


def _same(rows):
    """Did every rank select exactly the same rows?"""
    return all(len(r) == len(rows[0]) and np.array_equal(r, rows[0]) for r in rows[1:])


def _zero_unselected(p):
    """Make a row-sparse grad dense (zeros outside .rows); a no-op for a dense one."""
    if p.rows is not None:
        K().zero_unselected(_rows_of(p), p.rows)
        p.rows = None

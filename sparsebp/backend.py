"""Which kernel backend the engine calls, and the seeded random generator.

Both are process-wide, set once before a model is built:

    sb.set_backend("cpu")   # "numpy" (the reference), "cpu" (Numba) or "cuda"
    sb.seed(1)              # weights, dropout masks and random-k draw from it

Parameters are allocated in the backend's memory when a layer is built, so set
the backend first, then build the model.

Dropout masks and random-k units draw through `random_rows`, the one place
where data-parallel training (sparsebp/distributed.py) makes a process draw
what one process would draw for the whole minibatch; see its docstring.
"""
import contextlib

import numpy as np

from . import kernels

_state = {"name": "cpu", "K": None, "sync": None, "rng": np.random.default_rng(0),
          "rows_of_draw": None}


def set_backend(name):
    """Select the kernels every layer and optimizer calls from now on."""
    if name == "cuda":
        from . import gpu
        gpu.require_device()
    _state["K"] = kernels.get(name)
    _state["sync"] = getattr(_state["K"], "synchronize", None)   # GPU kernels only
    _state["name"] = name


def backend_name():
    return _state["name"]


def K():
    """The current kernel module (kernels.reference, kernels.cpu or kernels.cuda)."""
    if _state["K"] is None:
        set_backend(_state["name"])
    return _state["K"]


def synchronize():
    """Wait until the backend's queued work is done: GPU kernels run asynchronously,
    so a timer must wait for them. A no-op on the CPU backends."""
    K()                                        # loads the backend, and its sync, on first use
    if _state["sync"] is not None:
        _state["sync"]()


@contextlib.contextmanager
def using(name):
    """`with sb.using("numpy"): ...` runs a block on another backend."""
    old = _state["name"]
    set_backend(name)
    try:
        yield
    finally:
        set_backend(old)


def seed(s):
    """Reseed the generator that initialisation, dropout and random-k use."""
    _state["rng"] = np.random.default_rng(s)


def rng():
    return _state["rng"]


@contextlib.contextmanager
def using_rng(generator):
    """`with using_rng(g): ...` draws from g within the block, then from the
    seeded generator again (the kernels' warm-up leaves the seeded one untouched)."""
    old = _state["rng"]
    _state["rng"] = generator
    try:
        yield
    finally:
        _state["rng"] = old


def random_rows(shape):
    """Uniform [0, 1) float64 numbers of shape (rows, ...) from the seeded generator:
    this process's rows of one draw over the whole minibatch.

    One process holds every row: `rng().random(shape)`. In data-parallel training
    each process holds rows [lo, lo + rows) of the minibatch's n (its examples,
    or its sentences' words: the shards are consecutive, in rank order), and its
    generator is in the same state as every other's, the state one process's
    would be in. So it draws the whole (n, ...) block, as one process does, and
    keeps its own rows: the dropout masks and random-k units of one process,
    whatever the number of processes. (lo, n) come from the function installed
    by `set_rows_of_draw`: rows -> (lo, n), a collective, so every process must
    draw in the same order: the layers' order, which is the same everywhere.
    """
    if _state["rows_of_draw"] is None:
        return rng().random(shape)
    lo, n = _state["rows_of_draw"](shape[0])
    return rng().random((n,) + tuple(shape[1:]))[lo:lo + shape[0]]


def set_rows_of_draw(fn):
    """Install fn: rows -> (lo, n) for `random_rows` (None: one process holds all rows)."""
    _state["rows_of_draw"] = fn

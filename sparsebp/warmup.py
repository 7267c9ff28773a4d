"""Where the first call's time goes: Numba compiles each CPU kernel on its first call.

With an empty cache that is about 10 s for what a training step calls (on the
2-core test machine); compiled code is cached in `__pycache__`, and later
processes load it in 0.1-0.3 s. Without a warning, the first backward of a
script looks like a hang, so:

    import sparsebp as sb
    sb.warm_up()          # compiles (or loads) the kernels now; returns the seconds

`sparsebp train` does the same on a tiny model of the run's kind before the
first epoch and prints `kernels_note`. With NUMBA_DISABLE_JIT=1 (set before Numba
is imported: for pdb) nothing is compiled and the kernels run as plain Python.
"""
import time

import numpy as np


def jit_disabled():
    """Whether Numba's JIT is off (NUMBA_DISABLE_JIT=1 when Numba was imported)."""
    from numba.core import config
    return bool(config.DISABLE_JIT)


def kernels_note(backend, seconds):
    """The log line after the warm-up step: what the seconds were spent on."""
    if backend == "numpy":
        return f"numpy backend: the reference kernels, nothing to compile (warm-up step {seconds:.1f}s)"
    if backend == "cpu" and jit_disabled():
        return ("NUMBA_DISABLE_JIT=1: the Numba kernels run as plain Python (slowly; pdb "
                "breakpoints in kernels/cpu.py are reached)")
    return (f"kernels ready in {seconds:.1f}s (Numba compiles them on the first run, later runs "
            "load them from its cache)")


def warm_up(dtype=np.float32):
    """Call every kernel a training step uses once, on the current backend and dtype.

    On the cpu backend this compiles them (or loads them from Numba's cache), so
    the first step of your own loop is not 10 s long. Builds a tiny model of every
    layer kind and mode and takes one step with each optimizer; the seeded
    generator (`sb.seed`) is left as it was, so results do not change. Returns
    the seconds it took.
    """
    import sparsebp as sb
    from .backend import synchronize, using_rng
    t0 = time.perf_counter()
    with using_rng(np.random.default_rng(0)):          # the seeded generator is not touched
        for opt, mode in zip((sb.Adam, sb.AdaGrad, sb.SGD, sb.Adam), sb.MODES):
            model = sb.Sequential(sb.Linear(8, 6, k=2, mode=mode, dtype=dtype), sb.ReLU(), sb.Dropout(0.5),
                                  sb.Linear(6, 6, k=2, mode=mode, dtype=dtype), sb.Tanh(),
                                  sb.Linear(6, 3, dtype=dtype))
            emb = sb.Embedding(5, 8, dtype=dtype)
            o = opt(model.parameters() + emb.parameters(), clip=1.0,
                    **({"lazy": mode != "random"} if opt is sb.Adam else {"lr": 0.1}))
            loss_fn = sb.SoftmaxCrossEntropy()
            loss_fn(model(emb(np.arange(4) % 5)), np.arange(4) % 3)
            emb.backward(model.backward(loss_fn.backward()))
            o.step()
        synchronize()
    return time.perf_counter() - t0

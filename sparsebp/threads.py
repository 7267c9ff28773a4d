"""How many threads BLAS and Numba use: `sb.set_threads(n)`, `sb.threads()`.

    sb.set_threads(1)                 # both pools on one thread (speed experiments)
    sb.set_threads(blas=2, numba=1)   # each on its own
    sb.threads()  # {'blas': 1, 'numba': 1, 'cores': 2, 'numba_layer': 'omp', ...}

The defaults (nothing set): BLAS (NumPy's OpenBLAS) uses every core; Numba's pool
has every core too, but our kernels split their work only above
`kernels.cpu.PARALLEL_MIN_WORK` multiply-adds (MNIST-sized kernels run on one
thread), and Numba's OpenMP workers wait passively (`OMP_WAIT_POLICY=PASSIVE`, set
below before Numba starts them, unless the environment says otherwise): with GNU
OpenMP's default spinning wait, the workers of a threaded kernel kept both cores
busy for milliseconds after it and the BLAS call that followed ran 1.3-2.7x slower
(benchmarks/README.md, "Threads").

Two jobs at once on one machine should pin threads (`set_threads(1)` or the CLI's
`--threads 1`): with every pool on every core, two processes' threads fight for
the same cores and both slow down several times over.

The wait policy is read by every GNU OpenMP runtime loaded after `import sparsebp`
(PyTorch's too: import torch first, or set OMP_WAIT_POLICY yourself, to keep its
default). BLAS is set through threadpoolctl (any BLAS NumPy loaded: OpenBLAS, MKL, BLIS).
Numba's count is per calling thread (Numba's own rule) and at most the size of its
pool, `NUMBA_NUM_THREADS` (the cores, unless set before the first import).
"""
import os

# GNU OpenMP reads this once, when Numba first loads it (its first parallel kernel
# or get_num_threads()): before that, a passive wait costs a parallel region a
# wake-up of some 50 us, which PARALLEL_MIN_WORK (about 1 ms of work) pays for.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _blas_pools():
    import numpy  # noqa: F401  (loads the BLAS threadpoolctl should see)
    from threadpoolctl import threadpool_info
    return [p for p in threadpool_info() if p.get("user_api") == "blas"]


def set_threads(n=None, *, blas=None, numba=None):
    """Threads for BLAS and Numba: `n` for both, or `blas=` / `numba=` for one.

    Each count must be >= 1; Numba's at most its pool size (`threads()['numba_max']`).
    Raises ValueError otherwise (nothing is changed then)."""
    blas = n if blas is None else blas
    numba = n if numba is None else numba
    limit = max_numba_threads()
    for name, v in (("blas", blas), ("numba", numba)):
        if v is not None and not (isinstance(v, int) and v >= 1):
            raise ValueError(f"set_threads: {name}={v!r}: need an integer >= 1")
    if numba is not None and numba > limit:
        raise ValueError(f"set_threads: numba={numba} exceeds Numba's pool of {limit} threads "
                         f"(set NUMBA_NUM_THREADS before the first import to grow it)")
    if blas is not None:
        from threadpoolctl import threadpool_limits
        threadpool_limits(limits=blas, user_api="blas")     # applies now, for the process
    if numba is not None:
        import numba as nb
        nb.set_num_threads(numba)


def max_numba_threads():
    from numba import config
    return config.NUMBA_NUM_THREADS


def threads():
    """{'blas': threads (None: no BLAS found), 'blas_kernel': e.g. 'SkylakeX',
    'blas_name', 'numba': threads, 'numba_max': its pool, 'numba_layer': the threading
    layer once a parallel kernel has run (else None), 'omp_wait_policy', 'cores'}."""
    import numba as nb
    pools = _blas_pools()
    try:
        layer = nb.threading_layer()
    except ValueError:                      # no parallel region has run yet
        layer = None
    p = pools[0] if pools else {}
    return {"blas": p.get("num_threads"), "blas_name": p.get("internal_api"),
            "blas_version": p.get("version"), "blas_kernel": p.get("architecture"),
            "numba": nb.get_num_threads(), "numba_max": max_numba_threads(), "numba_layer": layer,
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "cores": os.cpu_count()}

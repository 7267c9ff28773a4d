"""Shared test helpers: one tolerance rule (`assert_close`), every backend as a fixture."""
import contextlib
import os
import sys

# CI has no GPU: the CUDA kernels run in Numba's simulator, which must be chosen
# before numba.cuda is first imported. SPARSEBP_REAL_GPU=1 runs them on a GPU.
if os.environ.get("SPARSEBP_REAL_GPU") != "1":
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from sparsebp import kernels  # noqa: E402


def assert_close(out, ref, atol=1e-5, rtol=1e-5):
    """|out - ref| <= atol + rtol |ref| everywhere, with the worst entry in the message."""
    out, ref = np.asarray(out), np.asarray(ref)
    assert out.shape == ref.shape, f"shape {out.shape} != {ref.shape}"
    # NaN compares False with everything, so it would pass the test below unseen:
    # NaNs and infinities must sit where the reference has the same ones.
    special = ~np.isfinite(out) | ~np.isfinite(ref)
    bad = special & ~((out == ref) | (np.isnan(out) & np.isnan(ref)))
    if bad.any():
        i = np.unravel_index(np.argmax(bad), bad.shape)
        raise AssertionError(f"non-finite mismatch at {i}: got {out[i]!r}, expected {ref[i]!r}")
    with np.errstate(invalid="ignore"):               # inf - inf at the special entries
        err = np.abs(out.astype(np.float64) - ref) - (atol + rtol * np.abs(ref))
    err = np.where(special, 0.0, err)
    if err.size and err.max() > 0:
        i = np.unravel_index(np.argmax(err), err.shape)
        raise AssertionError(f"mismatch at {i}: got {out[i]!r}, expected {ref[i]!r} "
                             f"(atol={atol}, rtol={rtol})")


def _has_numba_cuda():
    try:
        import numba.cuda  # noqa: F401
        return True
    except ImportError:
        return False


BACKENDS = ["numpy", "cpu"] + (["cuda"] if _has_numba_cuda() else [])


def pytest_collection_modifyitems(config, items):
    """Cases marked `big` (large shapes) do not run on cuda in the simulator, which runs
    every GPU thread as a Python thread (on a GPU, SPARSEBP_REAL_GPU=1, they all run)."""
    if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1":
        return
    keep, drop = [], []
    for item in items:
        cs = getattr(item, "callspec", None)
        on_cuda = cs is not None and cs.params.get("backend") == "cuda"
        (drop if on_cuda and item.get_closest_marker("big") else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def _serialise_simulator_shared_arrays():
    """numba-cuda's simulator gives a block's threads their shared arrays with a
    check-then-set (`_allocations.get(line)`, then `np.empty`, then store) that two
    threads can both pass: each then works on its own copy and the block computes
    garbage. With the short switch interval below and a loaded machine it happened
    in about one full run in three (wrong GEMM and top-k backward results). A lock
    around it makes the simulator do what a GPU does. Tests only; GPUs are unaffected."""
    if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1" or not _has_numba_cuda():
        return
    import threading
    import traceback

    from numba.cuda.simulator import kernelapi
    original, lock = kernelapi.FakeCUDAShared.array, threading.Lock()
    if getattr(original, "serialised", False):
        return

    def array(self, shape, dtype, alignment=None):
        if alignment is not None or shape == 0:       # an error, or dynamic shared memory
            return original(self, shape, dtype, alignment)
        if not isinstance(dtype, np.dtype):
            dtype = kernelapi.numpy_support.as_dtype(dtype) if isinstance(dtype, kernelapi.types.Type) \
                else np.dtype(dtype)
        caller = tuple(traceback.extract_stack(sys._getframe(1), limit=1)[0])[0:2]   # as the original
        with lock:
            res = self._allocations.get(caller)
            if res is None:
                res = self._allocations[caller] = np.empty(shape, dtype)
        return res
    array.serialised = True
    kernelapi.FakeCUDAShared.array = array


_serialise_simulator_shared_arrays()


def poison_cuda_empty(monkeypatch):
    """kernels.cuda's `empty` hands out NaN (float) or -1 (int) arrays while a test runs,
    not whatever memory was freed last: the simulator's allocator often returns the
    buffer of the call before, right answer included, and a kernel that never wrote
    would pass."""
    G = kernels.get("cuda")

    def empty(shape, dtype=np.float32):
        fill = np.nan if np.dtype(dtype).kind == "f" else -1
        return G.cuda.to_device(np.full(shape, fill, dtype))
    monkeypatch.setattr(G, "empty", empty)


@contextlib.contextmanager
def short_switch_interval():
    """The simulator's block manager polls its threads under the GIL; a short switch
    interval lets them reach each barrier sooner (about 10x faster here)."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


@pytest.fixture(params=BACKENDS)
def backend(request, monkeypatch):
    """Each backend's name, the current backend while the test runs: numpy (the
    reference), cpu (Numba) and cuda (Numba's simulator in CI, with `empty` poisoned:
    see poison_cuda_empty; SPARSEBP_REAL_GPU=1: a GPU)."""
    import sparsebp as sb
    with contextlib.ExitStack() as stack:
        if request.param == "cuda":
            poison_cuda_empty(monkeypatch)
            stack.enter_context(short_switch_interval())
        with sb.using(request.param):
            yield request.param


@pytest.fixture(params=["numpy", "cpu"])
def host_backend(request):
    """The CPU backends only, for code that has no CUDA kernels (the LSTM's
    recurrence: kernels.cuda raises NotImplementedError naming the kernel)."""
    import sparsebp as sb
    with sb.using(request.param):
        yield request.param


@pytest.fixture
def kern(backend):
    """The kernel module of `backend` (kernels.reference, kernels.cpu or kernels.cuda)."""
    return kernels.get(backend)


def host(a):
    """Any backend's array as a host ndarray."""
    return np.asarray(a.copy_to_host() if hasattr(a, "copy_to_host") else a)


@pytest.fixture(autouse=True)
def _restore_backend():
    """A test that selects a backend (the CLI does) must not leak it into the next."""
    import sparsebp as sb
    name = sb.backend_name()
    yield
    if sb.backend_name() != name:
        sb.set_backend(name)

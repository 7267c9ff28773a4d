"""A clear answer to "is there a GPU?", asked before any CUDA kernel is touched; and
what the cuda backend does per step, counted (`counting`, `sb.gpu_counters`)."""
import contextlib


class NoCudaDevice(RuntimeError):
    pass


def require_device():
    """Raise NoCudaDevice with advice, never a stack trace from inside Numba.

    Under Numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1, as the tests set it)
    `cuda.is_available()` is True, so the cuda backend runs without a GPU.
    """
    try:
        from numba import cuda
    except ImportError as e:
        raise NoCudaDevice(
            "the cuda backend needs numba-cuda: pip install '.[cuda]'") from e
    try:
        ok = cuda.is_available()
    except Exception:  # a missing driver can raise instead of answering False
        ok = False
    if not ok:
        raise NoCudaDevice("no CUDA device found; use --backend cpu")


class Counts:
    """What the cuda backend did inside a `counting()` block: kernel launches,
    device allocations, copies to the device and to the host (each a number).
    Read them during the block or after it."""

    NAMES = ("launches", "allocations", "to_device", "to_host")

    def __init__(self, source):
        self._source, self._start, self._end = source, source(), None

    def __getattr__(self, name):
        if name not in Counts.NAMES:
            raise AttributeError(name)
        now = self._end if self._end is not None else self._source()
        return now[name] - self._start[name]

    def as_dict(self):
        return {n: getattr(self, n) for n in Counts.NAMES}

    def __repr__(self):
        return "Counts(" + ", ".join(f"{n}={v}" for n, v in self.as_dict().items()) + ")"


@contextlib.contextmanager
def counting():
    """`with sb.gpu_counters() as c: step()` then `c.launches`, `c.allocations`, ...:
    what the cuda backend's kernels/cuda_launch.py counted in the block (launches
    through `@gpu_kernel`, device allocations, copies either way). Works on a GPU
    and in Numba's simulator alike; loads numba-cuda, needs no device."""
    from .kernels import cuda_launch
    c = Counts(cuda_launch.counts)
    try:
        yield c
    finally:
        c._end = cuda_launch.counts()

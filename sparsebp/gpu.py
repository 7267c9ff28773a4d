"""A clear answer to "is there a GPU?", asked before any CUDA kernel is touched."""


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

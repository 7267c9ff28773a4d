"""Shared test helpers: one tolerance rule, the CPU backends as a fixture."""
import os

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


@pytest.fixture(params=["numpy", "cpu"])
def backend(request):
    """The name of each CPU backend; the CUDA backend has its own file (simulator)."""
    import sparsebp as sb
    with sb.using(request.param):
        yield request.param


@pytest.fixture
def ref():
    return kernels.get("numpy")


@pytest.fixture(autouse=True)
def _restore_backend():
    """A test that selects a backend (the CLI does) must not leak it into the next."""
    import sparsebp as sb
    name = sb.backend_name()
    yield
    if sb.backend_name() != name:
        sb.set_backend(name)

"""sparsebp's compute kernels, one module per backend, the same names in each.

- `kernels.reference`: the specification, plain NumPy (backend name "numpy").
- `kernels.cpu`: Numba `@njit` CPU kernels (backend name "cpu").
- `kernels.cuda`: numba.cuda GPU kernels (backend name "cuda"; needs numba-cuda).

`get(name)` imports a backend on first use, so importing the package never compiles
anything and never needs a GPU.
"""
import importlib

BACKENDS = {"numpy": "reference", "cpu": "cpu", "cuda": "cuda"}


def get(name):
    """The kernel module of backend `name` ("numpy", "cpu" or "cuda")."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of {sorted(BACKENDS)}")
    return importlib.import_module(f"{__name__}.{BACKENDS[name]}")

"""sparsebp: meProp (Sun et al., ICML 2017) in NumPy and Numba, read top to bottom.

The meProp backward is `meprop_backward` in `sparsebp/meprop.py`; the kernels it
calls are specified in `kernels/reference.py`.
"""
from .threads import set_threads, threads  # first: sets the OpenMP wait before Numba loads it
from ._kernels_path import _attach_kernels  # noqa: E402

_attach_kernels()   # sparsebp.kernels: the repository's top-level kernels/ folder
from .backend import backend_name, rng, seed, set_backend, using
from .gpu import counting as gpu_counters
from .layers import MODES, Cube, Dropout, Embedding, Linear, ReLU, SoftmaxCrossEntropy, Tanh
from .lstm import LSTM, BiLSTM
from .module import Module, Parameter, Sequential
from .optim import SGD, AdaGrad, Adam, Optimizer
from .serialize import LoadError, load, save
from .warmup import warm_up

__version__ = "0.1.0"

__all__ = [
    "Adam", "AdaGrad", "BiLSTM", "Cube", "Dropout", "Embedding", "LSTM", "Linear", "LoadError", "MODES", "Module", "Optimizer",
    "Parameter", "ReLU", "SGD", "Sequential", "SoftmaxCrossEntropy", "Tanh", "backend_name", "gpu_counters", "load",
    "rng", "save", "seed", "set_backend", "set_threads", "threads", "using", "warm_up",
]

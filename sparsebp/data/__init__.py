"""Data loaders: MNIST and other data sets in its four-file IDX layout."""
from .mnist import (FILES, MNIST_SHA256, N_CLASSES, IDXError, Split, default_mnist_dir,
                    load_idx_set, load_mnist, read_idx)

__all__ = ["FILES", "IDXError", "MNIST_SHA256", "N_CLASSES", "Split", "default_mnist_dir",
           "load_idx_set", "load_mnist", "read_idx"]

"""Data loaders: MNIST-layout IDX files."""
from .mnist import FILES, IDXError, MNIST_SHA256, Split, default_mnist_dir, load_mnist, read_idx

__all__ = ["FILES", "IDXError", "MNIST_SHA256", "Split", "default_mnist_dir", "load_mnist", "read_idx"]

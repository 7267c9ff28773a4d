"""Data loaders: MNIST and other data sets in its four-file IDX layout; CoNLL-U treebanks."""
from .conllu import ConlluError, Sentence, Vocab, read_conllu, write_conllu
from .mnist import (FILES, MNIST_SHA256, N_CLASSES, IDXError, Split, default_mnist_dir,
                    load_idx_set, load_mnist, read_idx)

__all__ = ["ConlluError", "FILES", "IDXError", "MNIST_SHA256", "N_CLASSES", "Sentence", "Split",
           "Vocab", "default_mnist_dir", "load_idx_set", "load_mnist", "read_conllu", "read_idx",
           "write_conllu"]

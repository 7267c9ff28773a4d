"""Parameter, Module and Sequential: the whole graph engine.

There is no autograd: each layer has an explicit `forward(x)` that keeps what its
backward needs, and `backward(dy)` that returns dx and fills its parameters'
gradients. Sequential calls them in order and in reverse order.
"""
import numpy as np

from .backend import K


class Parameter:
    """A weight array and its gradient.

    data: the array, in the backend's memory (float32 unless asked otherwise).
    grad: same shape. After a backward only the rows listed in `rows` are valid;
        the others hold stale values that no optimizer reads.
    rows: sorted (r,) int32 array of the rows that received a gradient in the
        last backward, or None when all rows did (a dense layer, a bias).
    """

    def __init__(self, data):
        self.data = data
        self.grad = K().zeros(data.shape, data.dtype)
        self.rows = None

    @property
    def shape(self):
        return self.data.shape

    def dense_grad(self):
        """The gradient as a dense host array of data's shape, zeros in the rows
        that were not selected. For tests and teaching; not used in training."""
        g = np.array(K().to_host(self.grad))
        if self.rows is not None:
            keep = np.zeros(g.shape[0], bool)
            keep[K().to_host(self.rows)] = True
            g[~keep] = 0
        return g


class Module:
    """Base class: forward/backward, parameters, train/eval."""

    training = True

    def forward(self, x):
        raise NotImplementedError

    def backward(self, dy):
        raise NotImplementedError

    def parameters(self):
        return []

    def children(self):
        return []

    def modules(self):
        """This module and every module inside it, depth first."""
        yield self
        for c in self.children():
            yield from c.modules()

    def train(self, mode=True):
        self.training = mode
        for c in self.children():
            c.train(mode)
        return self

    def eval(self):
        return self.train(False)

    def __call__(self, *args, **kwargs):
        """module(x) is module.forward(x); an LSTM takes module(x, lengths)."""
        return self.forward(*args, **kwargs)


class Sequential(Module):
    """Layers applied in order; backward runs them in reverse and returns dx."""

    def __init__(self, *layers):
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(f"Sequential item {i} is {type(layer).__name__}, not a Module")
        self.layers = list(layers)

    def forward(self, x):
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, dy):
        for layer in reversed(self.layers):
            dy = layer.backward(dy)
        return dy

    def parameters(self):
        return [p for layer in self.layers for p in layer.parameters()]

    def children(self):
        return self.layers

    def __repr__(self):
        inner = "\n".join(f"  ({i}) {layer!r}" for i, layer in enumerate(self.layers))
        return f"Sequential(\n{inner}\n)"

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

    def named_parameters(self, prefix=""):
        """(name, Parameter) pairs: this module's own Parameter attributes by their
        attribute names, then each child's, prefixed by its index in `children()`
        ("0.weight", "2.bias": the names of `state_dict`)."""
        for name, v in vars(self).items():
            if isinstance(v, Parameter):
                yield prefix + name, v
        for i, c in enumerate(self.children()):
            yield from c.named_parameters(f"{prefix}{i}.")

    def state_dict(self):
        """{name: host copy of the parameter's data} (see `named_parameters`);
        `sb.save(model.state_dict(), path)` writes it to a file."""
        named = list(self.named_parameters())
        if {id(p) for _, p in named} != {id(p) for p in self.parameters()}:
            raise TypeError(f"{type(self).__name__}: its parameters() are not all attributes "
                            "of it or of its children(); override named_parameters()")
        return {n: np.array(K().to_host(p.data)) for n, p in named}

    def load_state_dict(self, state):
        """Copy the arrays of `state` (a `state_dict`, or `sb.load(path)`) into the
        parameters, cast to their dtype; every name must match, every shape too."""
        named = dict(self.named_parameters())
        missing, unexpected = sorted(set(named) - set(state)), sorted(set(state) - set(named))
        if missing or unexpected:
            raise ValueError(f"{type(self).__name__}.load_state_dict: the state does not fit "
                             f"this model: missing {missing}, unexpected {unexpected}")
        for n, p in named.items():
            a = np.asarray(state[n])
            if a.shape != tuple(p.shape):
                raise ValueError(f"{type(self).__name__}.load_state_dict: {n} has shape {a.shape} "
                                 f"in the state, {tuple(p.shape)} in the model")
            p.data = K().to_device(a.astype(p.data.dtype))      # a copy: the state stays the caller's

    def buffer(self, name, shape, dtype):
        """This layer's array `name` of shape and dtype, for an output or a gradient.

        On a backend that keeps buffers (`KEEPS_BUFFERS`: cuda) it is the same
        array at every call with this shape, so a training step allocates no
        device memory after the first; what the layer returned from its last call
        is then overwritten by the next (copy it to keep it: `K().to_host`). On
        the CPU backends it is a new array, as NumPy code expects.
        """
        kern = K()
        if not getattr(kern, "KEEPS_BUFFERS", False):
            return kern.empty(shape, dtype)
        bufs = self.__dict__.setdefault("_buffers", {})
        key = (name, tuple(shape), np.dtype(dtype), kern.name)
        a = bufs.get(key)
        if a is None:
            if len(bufs) >= 32:                 # shapes that change every call: keep the memory bounded
                bufs.clear()
            a = bufs[key] = kern.empty(shape, dtype)
        return a

    def saved(self, name):
        """What forward kept for backward under `name`; a clear error if forward has not run."""
        if name not in vars(self):
            raise RuntimeError(f"{self!r}: backward() called before forward(); "
                               "run forward (model(x)) first")
        return vars(self)[name]

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

    def __repr__(self):
        return f"{type(self).__name__}()"


def check_input(layer, x, shape):
    """x must be an array (host or device) of `shape`, None in it meaning any size.

    Lists and other sequences are refused rather than guessed at: the error names
    the layer and the conversion to make."""
    if not (hasattr(x, "shape") and hasattr(x, "dtype")):
        raise TypeError(f"{layer!r}: expected an array of shape {_shape_str(shape)}, got a "
                        f"{type(x).__name__}; convert it first: np.asarray(x, dtype=np.float32)")
    if len(x.shape) != len(shape) or any(s is not None and s != d for s, d in zip(shape, x.shape)):
        raise ValueError(f"{layer!r}: expected input of shape {_shape_str(shape)}, got {tuple(x.shape)}")


def check_dy(layer, dy, shape, dtype):
    """dy must have the shape of the forward's output and the layer's dtype.

    A float64 dy for a float32 layer is refused, not cast: a silent cast would
    hide a gradient computed at the wrong precision somewhere upstream."""
    if not (hasattr(dy, "shape") and hasattr(dy, "dtype")):
        raise TypeError(f"{layer!r}: dy must be an array of shape {tuple(shape)}, got a {type(dy).__name__}")
    if tuple(dy.shape) != tuple(shape):
        raise ValueError(f"{layer!r}: dy must have the shape of the forward's output "
                         f"{tuple(shape)}, got {tuple(dy.shape)}")
    if dy.dtype != dtype:
        raise TypeError(f"{layer!r}: dy is {dy.dtype} but the layer computes in {dtype}; "
                        f"convert it first: dy.astype(np.{dtype})")


def _forward_arguments(layer):
    """The argument names of layer's forward (cached per class)."""
    cls = type(layer)
    if "_forward_args" not in cls.__dict__:
        import inspect
        cls._forward_args = tuple(inspect.signature(cls.forward).parameters)
    return cls._forward_args


def _shape_str(shape):
    return "(" + ", ".join("B" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


class Sequential(Module):
    """Layers applied in order; backward runs them in reverse and returns dx.

    On a backend that fuses activations (`FUSES_ACTIVATIONS`: cuda), a layer whose
    forward takes `act` (Linear) followed by an activation layer (one with an
    `activation` name: ReLU, Tanh) computes both in one call, and its backward
    applies the activation's derivative in the same pass as its bias sums: the
    activation layer is skipped both ways (its `y` is still set). One launch
    fewer each way per pair; the CPU backends run every layer as it is.
    """

    def __init__(self, *layers):
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(f"Sequential item {i} is {type(layer).__name__}, not a Module")
        self.layers = list(layers)

    def forward(self, x):
        fuse = getattr(K(), "FUSES_ACTIVATIONS", False)
        self.fused, i = set(), 0                  # indices of the activation layers computed by the layer before
        while i < len(self.layers):
            layer, after = self.layers[i], self.layers[i + 1] if i + 1 < len(self.layers) else None
            act = getattr(after, "activation", None)
            if fuse and act is not None and "act" in _forward_arguments(layer):
                x = after.y = layer.forward(x, act=act)
                self.fused.add(i + 1)
                i += 2
            else:
                x = layer.forward(x)
                i += 1
        return x

    def backward(self, dy):
        fused = getattr(self, "fused", ())
        for i in reversed(range(len(self.layers))):
            if i not in fused:
                dy = self.layers[i].backward(dy)
        return dy

    def parameters(self):
        return [p for layer in self.layers for p in layer.parameters()]

    def children(self):
        return self.layers

    def __repr__(self):
        inner = "\n".join(f"  ({i}) {layer!r}" for i, layer in enumerate(self.layers))
        return f"Sequential(\n{inner}\n)"

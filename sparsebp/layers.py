"""Layers with explicit forward and backward passes, meProp's Linear first.

Every layer keeps in `forward` what its `backward` needs and calls the current
backend's kernels (`K()`), so the same layer runs on NumPy, Numba or CUDA.
"""
import numpy as np

from .backend import K, random_rows, rng
from .meprop import MODES, meprop_backward
from .module import Module, Parameter, check_dy, check_input


class Linear(Module):
    """y = x W^T + b with meProp's sparsified backward.

    Parameters
    ----------
    n_in, n_out : sizes; weight is (n_out, n_in) so a unit is a contiguous row.
    k : units kept per backward; None means dense. Must satisfy 1 <= k <= n_out.
    mode : "dense"; "topk" (each example keeps the k entries of its dy row of
        largest |value|, the paper's meProp); "unified" (one set of k units for
        the minibatch, by the column sums of |dy|: the official GPU code);
        "random" (k units drawn at random per example: the paper's control).
    dtype : float32 by default; float64 for gradient checks.
    weight, bias : optional arrays to use as the parameters themselves (not copied):
        weight (n_out, n_in), bias (n_out,); see `from_weights`.
    init : the weights' initialisation (`INITS`) when no weight is given; the bias starts at zero.

    The bias gets the full, dense dy, as in both official implementations:
    meProp sparsifies the matrix products only, and db costs O(B n_out) anyway.
    The initialisation is the official C# code's: normal with standard
    deviation sqrt(6 / (n_in + n_out)), zero bias.
    """

    act = y = None         # the forward's fused activation and its output (set by forward)

    # name -> (n_out, n_in) float64 weights from the run's generator
    INITS = {
        # the official C# code: normal, std sqrt(6 / (fan_in + fan_out)), which is
        # sqrt(3) wider than Glorot's normal (its uniform has this bound, not std)
        "csharp": lambda g, n_in, n_out: g.normal(0.0, np.sqrt(6.0 / (n_in + n_out)), (n_out, n_in)),
        "glorot": lambda g, n_in, n_out: g.normal(0.0, np.sqrt(2.0 / (n_in + n_out)), (n_out, n_in)),
        # PyTorch's nn.Linear default (the official PyTorch example): U(-1/sqrt(n_in), 1/sqrt(n_in))
        "pytorch": lambda g, n_in, n_out: g.uniform(-1.0, 1.0, (n_out, n_in)) / np.sqrt(n_in),
    }

    def __init__(self, n_in, n_out, k=None, mode="topk", dtype=np.float32, init="csharp",
                 weight=None, bias=None):
        if mode not in MODES:
            raise ValueError(f"Linear({n_in}->{n_out}): unknown mode {mode!r}; choose one of {MODES}")
        if k is None:
            mode = "dense"
        elif not (isinstance(k, (int, np.integer)) and 1 <= k <= n_out):
            raise ValueError(f"Linear({n_in}->{n_out}): k={k!r} is out of range; "
                             f"need an integer 1 <= k <= n_out = {n_out}")
        if init not in self.INITS:
            raise ValueError(f"Linear({n_in}->{n_out}): unknown init {init!r}; choose one of {sorted(self.INITS)}")
        self.n_in, self.n_out, self.k, self.mode = n_in, n_out, k, mode
        if weight is None:
            weight = K().to_device(self.INITS[init](rng(), n_in, n_out).astype(dtype))
        elif tuple(weight.shape) != (n_out, n_in):
            raise ValueError(f"Linear({n_in}->{n_out}): weight must be ({n_out}, {n_in}), got {tuple(weight.shape)}")
        if bias is None:
            bias = K().zeros((n_out,), weight.dtype)
        elif tuple(bias.shape) != (n_out,):
            raise ValueError(f"Linear({n_in}->{n_out}): bias must be ({n_out},), got {tuple(bias.shape)}")
        self.weight, self.bias = Parameter(weight), Parameter(bias)
        self.selected = None          # the last backward's selection: (B, k), (k,) or None

    @classmethod
    def from_weights(cls, W, b=None, k=None, mode="topk"):
        """A Linear computing with the given arrays themselves, not copies: W (n_out,
        n_in) and b (n_out,) (zeros when None), contiguous, in the backend's memory.
        Layers built from one W share it (e.g. the modes of a speed experiment side
        by side); an update through one layer moves them all."""
        if not (getattr(W, "ndim", 0) == 2 and W.flags["C_CONTIGUOUS"]):
            raise ValueError("Linear.from_weights: W must be a contiguous 2-d array (n_out, n_in)")
        return cls(W.shape[1], W.shape[0], k=k, mode=mode, dtype=W.dtype, weight=W, bias=b)

    def __repr__(self):
        sel = "dense" if self.mode == "dense" else f"{self.mode}, k={self.k}"
        return f"Linear({self.n_in}->{self.n_out}, {sel})"

    def parameters(self):
        return [self.weight, self.bias]

    def forward(self, x, act=None):
        """x: (B, n_in) -> y: (B, n_out), both of the weight's dtype (a host x of
        another dtype is cast to it; a list is refused with a message).

        act: "relu" or "tanh": y = act(x W^T + b), the activation that follows this
        layer computed with it (Sequential asks for it on a backend that fuses:
        one launch on the GPU); backward then takes the gradient of that y."""
        check_input(self, x, (None, self.n_in))
        if isinstance(x, np.ndarray):  # host input: the weight's dtype, one copy into backend memory
            host, x = x, self.buffer("x", x.shape, self.weight.data.dtype)
            K().copy_to(x, host)
        self.x = x
        y = self.buffer("y", (x.shape[0], self.n_out), x.dtype)
        K().linear_forward(y, x, self.weight.data, self.bias.data, act)
        self.act, self.y = act, y
        return y

    def backward(self, dy):
        """dy: (B, n_out) -> dx: (B, n_in); fills weight.grad (selected rows) and bias.grad.

        This is meProp (`meprop_backward`): select k units of dy, then the two
        sparse products touch only those k rows of W and of dW.
        """
        x = self.saved("x")
        check_dy(self, dy, (x.shape[0], self.n_out), x.dtype)
        dx = self.buffer("dx", x.shape, x.dtype)
        self.selected, self.weight.rows = meprop_backward(
            dx, self.weight.grad, self.bias.grad, dy, x, self.weight.data, self.k, self.mode,
            buffer=self.buffer, act=self.act, y=self.y)
        self.bias.rows = None                  # a dense gradient (after zero_grad's empty rows too)
        return dx


class Embedding(Module):
    """A table of vocab vectors of dim numbers: ids -> their rows.

    forward(ids: (N,) int) -> y: (N, dim) of the weight's dtype. backward(dy: (N, dim))
    fills weight.grad in the rows of the batch's ids only and sets weight.rows to
    them, so the lazy optimizers touch only the words of the batch (the same `.rows`
    mechanism as meProp's selected rows). Returns None: ids have no gradient.
    Initialised normal with standard deviation 1 / sqrt(dim) (or `init_std`).
    """

    def __init__(self, vocab, dim, dtype=np.float32, init_std=None):
        if vocab < 1 or dim < 1:
            raise ValueError(f"Embedding: vocab={vocab} and dim={dim} must be >= 1")
        self.vocab, self.dim = vocab, dim
        std = 1.0 / np.sqrt(dim) if init_std is None else init_std
        self.weight = Parameter(K().to_device(rng().normal(0.0, std, (vocab, dim)).astype(dtype)))

    def __repr__(self):
        return f"Embedding({self.vocab}, {self.dim})"

    def parameters(self):
        return [self.weight]

    def forward(self, ids):
        ids = np.asarray(K().to_host(ids)).reshape(-1)
        if ids.size and not np.issubdtype(ids.dtype, np.integer):
            raise TypeError(f"{self!r}: ids must be integers, got {ids.dtype}")
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocab):
            raise ValueError(f"{self!r}: ids must be in [0, {self.vocab}), got {ids.min()}..{ids.max()}")
        self.ids = K().to_device(ids.astype(np.int32))
        y = K().empty((ids.size, self.dim), self.weight.data.dtype)
        K().embedding_forward(y, self.weight.data, self.ids)
        return y

    def backward(self, dy):
        ids = self.saved("ids")
        check_dy(self, dy, (ids.shape[0], self.dim), self.weight.data.dtype)
        K().embedding_backward(self.weight.grad, dy, ids)
        self.weight.rows = K().union_rows(ids.reshape(-1, 1), self.vocab)
        return None


class _Activation(Module):
    """An element-wise activation: forward y = f(x) keeps what its derivative
    needs (`keeps`: its output "y", or its input "x"), backward dx = dy f'(.).
    The subclasses name the two kernels (`_forward`, `_backward`)."""

    keeps = "y"

    def forward(self, x):
        check_input(self, x, (None,) * len(getattr(x, "shape", ())))
        self.x, self.y = x, self.buffer("y", x.shape, x.dtype)
        self._forward(self.y, x)
        return self.y

    def backward(self, dy):
        kept = self.saved(self.keeps)
        check_dy(self, dy, kept.shape, kept.dtype)
        dx = self.buffer("dx", dy.shape, dy.dtype)
        self._backward(dx, dy, kept)
        return dx

    def __repr__(self):
        return f"{type(self).__name__}()"


class ReLU(_Activation):
    """y = max(x, 0); dx = dy where y > 0."""

    activation = "relu"          # the name a Linear before it computes it with (Sequential)

    def _forward(self, y, x):
        K().relu_forward(y, x)

    def _backward(self, dx, dy, y):
        K().relu_backward(dx, dy, y)


class Tanh(_Activation):
    """y = tanh(x); dx = dy (1 - y^2)."""

    activation = "tanh"

    def _forward(self, y, x):
        K().tanh_forward(y, x)

    def _backward(self, dx, dy, y):
        K().tanh_backward(dx, dy, y)


class Cube(_Activation):
    """y = x^3; dx = 3 x^2 dy: Chen & Manning's parser activation, which the paper's
    parser uses. Its derivative needs the input x, so it keeps x, and no Linear
    computes it fused (it has no `activation` name)."""

    keeps = "x"

    def _forward(self, y, x):
        K().cube_forward(y, x)

    def _backward(self, dx, dy, x):
        K().cube_backward(dx, dy, x)


class Dropout(Module):
    """Inverted dropout: in training each unit is kept with probability 1 - p and
    scaled by 1 / (1 - p), so evaluation is the identity. The mask is drawn on
    the host from the seeded generator by `random_rows`, so every backend draws
    the same mask, and data-parallel processes their rows of one process's mask."""

    def __init__(self, p):
        if not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout: p={p!r} must be in [0, 1)")
        self.p = p

    def forward(self, x):
        check_input(self, x, (None,) * len(getattr(x, "shape", ())))
        self.shape, self.dtype = tuple(x.shape), x.dtype
        if not self.training or self.p == 0.0:
            self.mask = None
            return x
        m = (random_rows(x.shape) >= self.p).astype(x.dtype) / x.dtype.type(1.0 - self.p)
        self.mask = self.buffer("mask", x.shape, x.dtype)
        K().copy_to(self.mask, m)
        y = self.buffer("y", x.shape, x.dtype)
        K().mul(y, x, self.mask)
        return y

    def backward(self, dy):
        mask = self.saved("mask")
        check_dy(self, dy, self.shape, self.dtype)
        if mask is None:
            return dy
        dx = self.buffer("dx", dy.shape, dy.dtype)
        K().mul(dx, dy, mask)
        return dx

    def __repr__(self):
        return f"Dropout(p={self.p})"


class SoftmaxCrossEntropy(Module):
    """Mean cross-entropy of softmax(logits) against integer labels.

    forward(logits: (B, C), labels: (B,) int) -> loss (float), also as
    loss_fn(logits, labels); backward() -> dlogits: (B, C) = (softmax - onehot) / B.
    The forward computes both (one kernel call, `softmax_xent`); backward hands
    the gradient over.

    forward(..., read=False) leaves the loss in the backend's memory and returns
    None; `read()` then returns the losses of the calls since the last read, in
    order, with one copy (a GPU training loop reads them only when it prints).
    """

    RING = 64        # losses kept in the backend's memory before they are read anyway

    def forward(self, logits, labels, read=True):
        """logits: (B, C); labels: (B,) host integers (checked), or the backend's own
        int64 array (used as it is: a data set resident on the GPU)."""
        check_input(self, logits, (None, None))
        B, C = logits.shape
        if getattr(labels, "dtype", None) == np.int64 and not isinstance(labels, np.ndarray):
            if tuple(labels.shape) != (B,):
                raise ValueError(f"SoftmaxCrossEntropy: labels must be ({B},), got {tuple(labels.shape)}")
            self.labels = labels
        else:
            y = np.asarray(labels)
            if y.shape != (B,) or not np.issubdtype(y.dtype, np.integer):
                raise ValueError(f"SoftmaxCrossEntropy: labels must be ({B},) integers, "
                                 f"got shape {y.shape} dtype {y.dtype}")
            if B and (y.min() < 0 or y.max() >= C):
                raise ValueError(f"SoftmaxCrossEntropy: labels must be in [0, {C}), "
                                 f"got values from {y.min()} to {y.max()}")
            self.labels = self.buffer("labels", (B,), np.int64)
            K().copy_to(self.labels, y)
        self.dlogits = self.buffer("dlogits", (B, C), logits.dtype)
        K().softmax_xent(self.dlogits, self._slot(), logits, self.labels)
        return self.read()[-1] if read else None

    def _slot(self):
        """The next (1,) slot of the ring of losses not yet read (read first when it is full)."""
        if getattr(self, "_ring_of", None) != K().name:     # the first call, or on another backend
            ring = K().zeros((self.RING,), np.float64)
            self._ring_of, self._ring, self._unread, self._done = K().name, ring, 0, []
            self._slots = [ring[i:i + 1] for i in range(self.RING)]     # views, made once
        if self._unread == self.RING:
            self._done = self.read()
        self._unread += 1
        return self._slots[self._unread - 1]

    def read(self):
        """[loss of each forward since the last read] as floats: one copy to the host."""
        ring = getattr(self, "_ring", None)
        if ring is None:
            return []
        new = [float(v) for v in K().to_host(ring)[:self._unread]] if self._unread else []
        out, self._done, self._unread = self._done + new, [], 0
        return out

    def backward(self):
        return self.saved("dlogits")

"""The LSTM with meProp's backward, and BiLSTM built from two of them.

    lstm = sb.LSTM(n_in, H, k=5, mode="topk")
    y = lstm(x, lengths)        # x: (B, T, n_in), lengths: (B,) ints -> y: (B, T, H)
    dx = lstm.backward(dy)      # dy: (B, T, H) -> dx: (B, T, n_in); fills the grads

Sequences are padded at the end: sequence b holds steps [0, lengths[b]). Padded
steps change no state, output zeros, and get no gradient (dx is 0 there, and dy
there is ignored).

Where meProp goes (the paper's rule: sparsify the gradient at the output of each
matrix product): an LSTM step computes its four gates' pre-activations

    z_t = x_t W_ih^T + h_{t-1} W_hh^T + b          (B, 4H), gates i, f, g, o

so the sparsified gradient is dz_t, at every step: each sequence keeps the k
entries of its dz_t of largest magnitude (`mode="topk"`), and only those flow
back into h_{t-1} (through k rows of W_hh), into x_t (through k rows of W_ih)
and into the two weight gradients. The bias gets the full dz_t, as in `Linear`.
k counts over the whole 4H vector by default; `per_gate=True` keeps k units of
each gate instead (4k in all). With as many units kept, the whole vector trained
as well or better on a small EWT run (benchmarks/README.md, `benchmarks.lstm_k`).
Modes, as in `sparsebp.meprop.select`:
- "topk": per sequence and per step;
- "unified": one set of k units per step for the whole minibatch (by the column
  sums of |dz_t| over the sequences still running at t). A selection for the whole
  minibatch and all steps at once is impossible: dz_{t-1} depends on the units kept
  at t. With one sentence per minibatch "unified" is "topk";
- "random": k units drawn at random per sequence and step (the paper's control);
- "dense": ordinary backpropagation through time.

The backward runs the recurrence in one kernel call (`lstm_backward`: dz at every
step, the selections, dh carried back through the kept rows of W_hh, and dW_hh),
then the input side x_t W_ih^T over all steps at once through `meprop_backward`
with those same selections. `weight_ih.rows` and `weight_hh.rows` are the union of
the units any step selected, so the lazy optimizers touch only those rows.
"""
import numpy as np

from .backend import K, rng
from .meprop import MODES, meprop_backward, select
from .module import Module, Parameter


class LSTM(Module):
    """One LSTM layer over padded batches, with meProp's backward.

    Parameters
    ----------
    n_in, n_hidden : input size and H. Weights: weight_ih (4H, n_in), weight_hh
        (4H, H), bias (4H,), gates stacked i, f, g, o (one unit per row).
    k : entries of dz kept per step (per gate with per_gate); None means dense.
        1 <= k <= 4H (k <= H with per_gate); k = 4H is exactly the dense gradient.
    mode : "topk" (default), "unified", "random" or "dense"; see the module docstring.
    per_gate : keep k units of each gate instead of k of the whole 4H vector.
    dtype : float32 by default; float64 for gradient checks.

    Initialised uniform in +-1/sqrt(H) (PyTorch's rule); the forget gate's bias
    starts at 1 so that early gradients flow through the cell state.

    After a backward, `selected` holds the selections: (B, T, kk) int32 for
    "topk"/"random", (T, kk) for "unified", -1 at padded steps (kk = k, or 4k
    per gate); None for "dense".
    """

    def __init__(self, n_in, n_hidden, k=None, mode="topk", per_gate=False, dtype=np.float32):
        if mode not in MODES:
            raise ValueError(f"LSTM({n_in}->{n_hidden}): unknown mode {mode!r}; choose one of {MODES}")
        if n_in < 1 or n_hidden < 1:
            raise ValueError(f"LSTM: n_in={n_in} and n_hidden={n_hidden} must be >= 1")
        top = n_hidden if per_gate else 4 * n_hidden
        if k is None:
            mode = "dense"
        elif not (isinstance(k, (int, np.integer)) and 1 <= k <= top):
            raise ValueError(f"LSTM({n_in}->{n_hidden}): k={k!r} is out of range; need an integer "
                             f"1 <= k <= {top} ({'H per gate' if per_gate else '4H'})")
        self.n_in, self.H, self.k, self.mode, self.per_gate = n_in, n_hidden, k, mode, per_gate
        s = 1.0 / np.sqrt(n_hidden)
        H4 = 4 * n_hidden
        self.weight_ih = Parameter(K().to_device(rng().uniform(-s, s, (H4, n_in)).astype(dtype)))
        self.weight_hh = Parameter(K().to_device(rng().uniform(-s, s, (H4, n_hidden)).astype(dtype)))
        b = np.zeros(H4, dtype)
        b[n_hidden:2 * n_hidden] = 1.0
        self.bias = Parameter(K().to_device(b))
        self.selected = None

    def __repr__(self):
        sel = "dense" if self.mode == "dense" else \
            f"{self.mode}, k={self.k}{' per gate' if self.per_gate else ''}"
        return f"LSTM({self.n_in}->{self.H}, {sel})"

    def parameters(self):
        return [self.weight_ih, self.weight_hh, self.bias]

    def forward(self, x, lengths=None):
        """x: (B, T, n_in) float; lengths: (B,) ints in [1, T] (None: all T).
        Returns y: (B, T, H) of the weights' dtype, 0 at padded steps."""
        x = np.asarray(K().to_host(x))
        if x.ndim != 3 or x.shape[2] != self.n_in:
            raise ValueError(f"{self!r}: expected input of shape (B, T, {self.n_in}), got {x.shape}")
        B, T, _ = x.shape
        self.lengths = check_lengths(lengths, B, T, repr(self))
        dt = self.weight_hh.data.dtype
        H, H4 = self.H, 4 * self.H
        xt = np.ascontiguousarray(x.transpose(1, 0, 2), dtype=dt)      # (T, B, n_in) time-major
        self.x = K().to_device(xt.reshape(T * B, self.n_in))
        Zx = K().empty((T * B, H4), dt)
        K().linear_forward(Zx, self.x, self.weight_ih.data, self.bias.data)   # all steps at once
        self.Hs, self.Cs = K().zeros((T + 1, B, H), dt), K().zeros((T + 1, B, H), dt)
        self.Gs = K().empty((T, B, H4), dt)
        K().lstm_forward(self.Hs, self.Cs, self.Gs, Zx.reshape(T, B, H4), self.weight_hh.data,
                         K().to_device(self.lengths))
        self.live = np.arange(T)[:, None] < self.lengths[None, :]    # (T, B): not padding
        self.padded = not self.live.all()
        y = np.asarray(K().to_host(self.Hs))[1:]
        if self.padded:
            y = y * self.live[:, :, None]                              # zero when padded
        return y.transpose(1, 0, 2).copy()                             # (B, T, H), its own memory

    def _rows(self, a):
        """a: (T B, m), time-major rows -> (N, m) contiguous: the live (t, b) rows
        (a itself when nothing is padded)."""
        a = np.asarray(K().to_host(a))
        return np.ascontiguousarray(a[self.live.reshape(-1)] if self.padded else a)

    def backward(self, dy):
        """dy: (B, T, H) -> dx: (B, T, n_in), 0 at padded steps. Fills the three
        gradients; weight_ih.rows = weight_hh.rows = the units any step selected."""
        T, B, H = self.Hs.shape[0] - 1, self.Hs.shape[1], self.H
        dy = np.asarray(K().to_host(dy))
        if dy.shape != (B, T, H):
            raise ValueError(f"{self!r}: expected dy of shape {(B, T, H)}, got {dy.shape}")
        dt = self.weight_hh.data.dtype
        dHs = K().to_device(np.ascontiguousarray(dy.transpose(1, 0, 2), dtype=dt))
        dZ = K().empty((T, B, 4 * H), dt)
        sel = self._selection_buffer(T, B)
        K().lstm_backward(dZ, self.weight_hh.grad, sel, dHs, self.Hs, self.Cs, self.Gs,
                          self.weight_hh.data, K().to_device(self.lengths), self.mode, self.per_gate)
        # the input side x_t W_ih^T + b, over the live steps at once, with the steps' selections
        dZv, xv = self._rows(dZ.reshape(T * B, -1)), self._rows(self.x)
        picked = None if self.mode == "dense" else self._per_row(sel, T, B)
        dxv = K().empty(xv.shape, dt)
        _, rows = meprop_backward(dxv, self.weight_ih.grad, self.bias.grad, dZv, xv,
                                  self.weight_ih.data, self.k, self.mode, selected=picked)
        self.weight_ih.rows = self.weight_hh.rows = rows
        self.bias.rows = None                  # a dense gradient (after zero_grad's empty rows too)
        self.selected = None if self.mode == "dense" else (
            sel if self.mode == "unified" else np.ascontiguousarray(sel.transpose(1, 0, 2)))
        dxv = np.asarray(K().to_host(dxv))
        if self.padded:
            dx = np.zeros((T * B, self.n_in), dt)
            dx[self.live.reshape(-1)] = dxv
            dxv = dx
        return np.ascontiguousarray(dxv.reshape(T, B, -1).transpose(1, 0, 2))

    def _selection_buffer(self, T, B):
        """The sel argument of lstm_backward: (T, B, kk) or (T, kk) int32; for
        "random" drawn here (by `select`, the seeded generator), -1 when padded."""
        if self.mode == "dense":
            return np.empty((0, 0, 0), np.int32)
        kk = 4 * self.k if self.per_gate else self.k
        if self.mode == "unified":
            return np.empty((T, kk), np.int32)
        sel = np.full((T, B, kk), -1, np.int32)
        if self.mode == "random":
            # one row of draws per live step, sequence by sequence (not time-major):
            # a data-parallel process's sequences are then consecutive rows of the
            # whole minibatch's draw (backend.random_rows)
            live = self.live.T                                       # (B, T)
            n = int(live.sum())
            if self.per_gate:
                H = self.H
                draws = [select(np.zeros((n, H), np.float32), self.k, "random") + q * H
                         for q in range(4)]
                drawn = np.concatenate([np.asarray(K().to_host(d)) for d in draws], axis=1)
            else:
                drawn = K().to_host(select(np.zeros((n, 4 * self.H), np.float32), self.k, "random"))
            sel.transpose(1, 0, 2)[live] = drawn                     # a view: fills sel
        return sel

    def _per_row(self, sel, T, B):
        """The selection of every live (t, b) row, (N, kk) int32: a unified step's
        selection is repeated for each sequence of that step."""
        if self.mode == "unified":
            sel = np.broadcast_to(sel[:, None, :], (T, B, sel.shape[1]))
        return K().to_device(self._rows(sel.reshape(T * B, -1)))


def check_lengths(lengths, B, T, who):
    """lengths as a (B,) int32 array with every entry in [1, T]; a clear error otherwise."""
    if B < 1 or T < 1:
        raise ValueError(f"{who}: expected at least one sequence of at least one step, got B={B}, T={T}")
    if lengths is None:
        return np.full(B, T, np.int32)
    ln = np.asarray(lengths)
    if ln.shape != (B,) or not np.issubdtype(ln.dtype, np.integer):
        raise ValueError(f"{who}: lengths must be ({B},) integers, got shape {ln.shape} dtype {ln.dtype}")
    if B and (ln.min() < 1 or ln.max() > T):
        raise ValueError(f"{who}: lengths must be in [1, T={T}], got {ln.min()}..{ln.max()}")
    return ln.astype(np.int32)


def reverse_steps(a, lengths):
    """a: (B, T, ...) -> each sequence's live steps in reverse order, padding left in
    place: out[b, t] = a[b, lengths[b] - 1 - t] for t < lengths[b]. Its own inverse."""
    B, T = a.shape[:2]
    if (lengths == T).all():
        return a[:, ::-1]
    t = np.arange(T)[None, :]
    src = np.where(t < lengths[:, None], lengths[:, None] - 1 - t, t)    # (B, T)
    return a[np.arange(B)[:, None], src]


class BiLSTM(Module):
    """Two LSTMs, one reading each sequence forwards and one backwards (over its live
    steps only); y = [y_fwd, y_bwd]: (B, T, 2H). Arguments as `LSTM`'s; the children
    `fwd` and `bwd` are ordinary LSTMs (each timed and counted on its own)."""

    def __init__(self, n_in, n_hidden, k=None, mode="topk", per_gate=False, dtype=np.float32):
        self.fwd = LSTM(n_in, n_hidden, k, mode, per_gate, dtype)
        self.bwd = LSTM(n_in, n_hidden, k, mode, per_gate, dtype)
        self.n_in, self.H = n_in, n_hidden

    def __repr__(self):
        return f"BiLSTM({self.fwd!r}, {self.bwd!r})"

    def parameters(self):
        return self.fwd.parameters() + self.bwd.parameters()

    def children(self):
        return [self.fwd, self.bwd]

    def forward(self, x, lengths=None):
        """x: (B, T, n_in); lengths: (B,) -> y: (B, T, 2H), 0 at padded steps."""
        x = np.asarray(K().to_host(x))
        if x.ndim != 3:
            raise ValueError(f"{self!r}: expected input of shape (B, T, {self.n_in}), got {x.shape}")
        self.lengths = check_lengths(lengths, x.shape[0], x.shape[1], repr(self))
        yf = self.fwd(x, self.lengths)
        yb = reverse_steps(self.bwd(reverse_steps(x, self.lengths), self.lengths), self.lengths)
        return np.concatenate([yf, yb], axis=2)

    def backward(self, dy):
        """dy: (B, T, 2H) -> dx: (B, T, n_in)."""
        H = self.H
        dxf = self.fwd.backward(np.ascontiguousarray(dy[:, :, :H]))
        dxb = self.bwd.backward(reverse_steps(dy[:, :, H:], self.lengths))
        return dxf + reverse_steps(dxb, self.lengths)

"""The specification: every kernel of sparsebp in plain NumPy.

`kernels/cpu.py` (Numba) and `kernels/cuda.py` (numba.cuda) export the same names
with the same arguments; the tests compare them with these functions. Read this
file first: it is short on purpose, and each function is the definition of what
the fast versions must compute.

Conventions (the same in every backend)
- Outputs come first, then inputs, then sizes and scalars. Outputs are filled in
  place; a kernel returns nothing unless it says so.
- `W` is `(n_out, n_in)`: one output unit is one contiguous row, so a meProp
  selection of k units is k rows of W and k rows of dW.
- `idx` arrays hold int32 unit indices. Per-example selections are `(B, k)`,
  each row sorted ascending; a unified selection is `(k,)`, sorted ascending.
- Tie rule of every top-k: larger |value| first; among equal |value|, the lower
  index wins. The selected set is therefore unique, and so are the results.
"""
import sys

import numpy as np

name = "numpy"


# ---------------------------------------------------------------- arrays
def empty(shape, dtype=np.float32):
    return np.empty(shape, dtype)


def zeros(shape, dtype=np.float32):
    return np.zeros(shape, dtype)


def to_device(a):
    """Host array -> this backend's array (a no-op on the CPU backends)."""
    return np.ascontiguousarray(a)


def to_host(a):
    """This backend's array -> host ndarray (a no-op on the CPU backends)."""
    return np.asarray(a)


def copy_to(dst, a):
    """Copy host array a into this backend's array dst of the same shape (a buffer
    kept between steps: on the GPU, a copy without an allocation)."""
    dst[...] = a


# ---------------------------------------------------------------- selection
def _topk_one(idx, a, k):
    """idx: (k,) int32 out; a: (n,) magnitudes. Linear-time select with the tie rule."""
    n = a.shape[0]
    t = np.partition(a, n - k)[n - k]            # the k-th largest magnitude
    above = np.flatnonzero(a > t)                # all of these are in
    ties = np.flatnonzero(a == t)[: k - above.size]  # lower index first
    idx[:] = np.sort(np.concatenate([above, ties]))


def topk_rows(idx, dy, k):
    """Per-example top-k by magnitude.

    idx: (B, k) int32 out, each row ascending; dy: (B, n) float; 1 <= k <= n.
    """
    for b in range(dy.shape[0]):
        _topk_one(idx[b], np.abs(dy[b]), k)


def topk_unified(idx, dy, k):
    """One top-k for the whole minibatch, by the column sums of |dy|.

    idx: (k,) int32 out, ascending; dy: (B, n) float; 1 <= k <= n.
    """
    _topk_one(idx, np.abs(dy).sum(axis=0), k)


def union_rows(idx, n_out, out=None):
    """The rows a per-example selection updates; returns (r,) int32, ascending.

    idx: (B, k) int32, every entry in [0, n_out). The union over the minibatch:
    dW sums over examples, so a row is updated when any example selected it.
    out: an (n_out,) int32 buffer the GPU writes the rows into and returns a view
    of (no allocation per step); the CPU backends return a new array.
    """
    return np.unique(idx).astype(np.int32)


def zero_unselected(G, rows):
    """G[r] = 0 for every row r not in rows. G: (n_rows, n_cols); rows: (r,) int.

    Only the paper code's dense Adam needs this: it updates every row, so the
    rows meProp did not select must hold a zero gradient, not a stale one.
    """
    keep = np.zeros(G.shape[0], bool)
    keep[rows] = True
    G[~keep] = 0


# ---------------------------------------------------------------- linear layer
def linear_forward(y, x, W, b, act=None):
    """y = act(x W^T + b).   y: (B, n_out); x: (B, n_in); W: (n_out, n_in); b: (n_out,).

    act: None, "relu" or "tanh" (ACTIVATIONS): the activation that follows the
    layer, fused into it (the GPU applies it as the product is stored).
    """
    np.matmul(x, W.T, out=y)
    y += b
    if act is not None:
        getattr(sys.modules[__name__], f"{act}_forward")(y, y)


ACTIVATIONS = ("relu", "tanh")


def _composed_prepare_dy(kern):
    """prepare_dy made of the kernels of module kern (the CPU backends' version)."""
    def prepare_dy(g, db, idx, dy, y, act, k):
        """What a Linear backward needs from the whole of dy, in one call (one pass
        over dy on the GPU). dy, y: (B, n), y the output of the fused activation act
        (None: no activation, y and g unused); k: units for idx.

        g: (B, n) out = dy * act'(y) (relu: 1 where y > 0; tanh: 1 - y^2), the
           gradient of the product; with act None g is not written (dy is it).
        db: (n,) out = column sums of g (bias_grad); None: not wanted.
        idx: (k,) int32 out = topk_unified(g, k); None: not wanted.
        """
        if act is not None:
            getattr(kern, f"{act}_backward")(g, dy, y)
            dy = g
        if db is not None:
            kern.bias_grad(db, dy)
        if idx is not None:
            kern.topk_unified(idx, dy, k)
    return prepare_dy


def dense_backward(dx, dW, dy, x, W, db=None):
    """The dense backward of y = x W^T (+ b).

    dx: (B, n_in) out = dy W; dW: (n_out, n_in) out = dy^T x; dy: (B, n_out);
    db: (n_out,) out = bias_grad(db, dy), or None (the GPU sums it with dW).
    """
    if db is not None:
        bias_grad(db, dy)
    np.matmul(dy, W, out=dx)
    np.matmul(dy.T, x, out=dW)


def bias_grad(db, dy):
    """db: (n_out,) out = sum over the batch of the full (unsparsified) dy: (B, n_out)."""
    np.sum(dy, axis=0, out=db)


def topk_backward(dx, dW, dy, x, W, idx):
    """meProp backward with a per-example selection, from the k kept entries only.

    dx: (B, n_in) out;  dx[b] = sum_j dy[b, idx[b, j]] * W[idx[b, j]]
    dW: (n_out, n_in) out; only the rows in the union of idx are written:
        dW[r] = sum over examples b that selected r of dy[b, r] * x[b].
        Other rows are left untouched (the optimizer never reads them).
    dy: (B, n_out); x: (B, n_in); W: (n_out, n_in); idx: (B, k) int32.
    Cost O(B k n_in): a dense matmul on a zero-filled dy would cost O(B n_out n_in).
    """
    rows = np.unique(idx)
    dW[rows] = 0
    dx[:] = 0
    for b in range(dy.shape[0]):
        sel = idx[b]
        v = dy[b, sel]                       # (k,) the kept gradient entries
        dx[b] = v @ W[sel]                   # (k,) @ (k, n_in)
        dW[sel] += np.outer(v, x[b])         # sel has no repeats within a row


def unified_backward(dx, dW, dy, x, W, idx):
    """meProp backward with one selection for the batch: gather, small GEMMs, scatter.

    dx: (B, n_in) out = dy[:, idx] W[idx];  dW[idx] = dy[:, idx]^T x (other rows
    untouched); dy: (B, n_out); x: (B, n_in); W: (n_out, n_in); idx: (k,) int32.
    """
    dyk = dy[:, idx]                         # (B, k) the gathered columns
    dx[:] = dyk @ W[idx]
    dW[idx] = dyk.T @ x


# ---------------------------------------------------------------- embedding
def embedding_forward(y, W, ids):
    """y = W[ids]: a lookup.  y: (N, dim) out; W: (vocab, dim); ids: (N,) int32."""
    np.take(W, ids, axis=0, out=y)


def embedding_backward(dW, dy, ids):
    """dW[r] = sum of dy[i] over the i with ids[i] == r, for every r in ids.

    dW: (vocab, dim) out, only the rows in ids are written (the others are left
    untouched: the optimizer updates only `union_rows(ids)`); dy: (N, dim);
    ids: (N,) int32. A word seen twice in the batch sums its two gradients.
    """
    dW[np.unique(ids)] = 0
    np.add.at(dW, ids, dy)


def gather_rows(x, y, X, Y, ids):
    """A minibatch from a data set in the backend's memory: x = X[ids], y = Y[ids].
    x: (B, d) out; y: (B,) out; X: (N, d); Y: (N,); ids: (B,) int."""
    np.take(X, ids, axis=0, out=x)
    np.take(Y, ids, out=y)


# ---------------------------------------------------------------- element-wise
def relu_forward(y, x):
    np.maximum(x, 0, out=y)


def relu_backward(dx, dy, y):
    """dx = dy where the output y > 0, else 0.  All (B, n)."""
    np.multiply(dy, y > 0, out=dx)


def tanh_forward(y, x):
    np.tanh(x, out=y)


def cube_forward(y, x):
    """y = x^3 (Chen & Manning's parser activation).  y, x: (B, n)."""
    np.multiply(x * x, x, out=y)


def cube_backward(dx, dy, x):
    """dx = 3 x^2 dy, x the cube's *input* (relu and tanh take their output:
    x is not a function of y = x^3 that is cheap to take).  All (B, n)."""
    np.multiply(x * x, dy, out=dx)
    dx *= dx.dtype.type(3)


def tanh_backward(dx, dy, y):
    """dx = dy (1 - y^2), y the tanh output.  All (B, n)."""
    np.multiply(dy, 1 - y * y, out=dx)


prepare_dy = _composed_prepare_dy(sys.modules[__name__])


def mul(out, a, m):
    """out = a * m element-wise (dropout's forward and backward with its mask)."""
    np.multiply(a, m, out=out)


def softmax_xent_forward(probs, logits, labels):
    """Softmax and the mean cross-entropy; returns the loss as a Python float.

    probs: (B, C) out; logits: (B, C); labels: (B,) int.
    """
    z = logits - logits.max(axis=1, keepdims=True)   # shift: exp never overflows
    e = np.exp(z)
    probs[:] = e / e.sum(axis=1, keepdims=True)
    B = logits.shape[0]
    logp = z[np.arange(B), labels] - np.log(e.sum(axis=1))
    return float(-logp.mean())


def softmax_xent_backward(dlogits, probs, labels):
    """dlogits: (B, C) out = (probs - onehot(labels)) / B."""
    B = probs.shape[0]
    dlogits[:] = probs
    dlogits[np.arange(B), labels] -= 1
    dlogits /= B


def softmax_xent(dlogits, loss, logits, labels):
    """The loss and its gradient in one call (what a training step needs).

    dlogits: (B, C) out = (softmax(logits) - onehot(labels)) / B; loss: (1,)
    float64 out = the mean cross-entropy, left in the backend's memory (a GPU
    step reads it back only when it is printed); logits: (B, C); labels: (B,) int.
    """
    loss[0] = softmax_xent_forward(dlogits, logits, labels)
    softmax_xent_backward(dlogits, dlogits, labels)


# ---------------------------------------------------------------- optimizers
# W, G and every state array are 2-D (n_rows, n_cols); a bias is passed as
# (n, 1). `rows` lists the rows to update (int); every other row of W and of the
# state stays bit-identical. `clip` > 0 clips each gradient entry to [-clip, clip]
# first; clip = 0 means no clipping.
def _clipped(G, rows, clip):
    g = G[rows]
    return np.clip(g, -clip, clip) if clip > 0 else g


def sgd_rows(W, G, rows, lr, clip):
    """W[r] -= lr * g[r]."""
    W[rows] -= lr * _clipped(G, rows, clip)


def adagrad_rows(W, H, G, rows, lr, eps, clip):
    """H[r] += g^2;  W[r] -= lr * g / (sqrt(H[r]) + eps)."""
    g = _clipped(G, rows, clip)
    H[rows] += g * g
    W[rows] -= lr * g / (np.sqrt(H[rows]) + eps)


def adam_rows(W, M, V, T, G, rows, lr, beta1, beta2, eps, clip):
    """Adam on the selected rows, with a step count per row.

    T: (n_rows,) int64, how many times each row has been updated. The bias
    correction of a row uses its own count, so a row updated for the 3rd time
    after 1000 steps is corrected as at step 3, not step 1000.
    """
    g = _clipped(G, rows, clip)
    T[rows] += 1
    t = T[rows][:, None].astype(np.float64)
    M[rows] = beta1 * M[rows] + (1 - beta1) * g
    V[rows] = beta2 * V[rows] + (1 - beta2) * g * g
    mhat = M[rows] / (1 - beta1 ** t)
    vhat = V[rows] / (1 - beta2 ** t)
    W[rows] -= (lr * mhat / (np.sqrt(vhat) + eps)).astype(W.dtype)


# One optimizer step over every parameter in one call: the sequences hold one
# entry per parameter (Ws[i]: (n_rows_i, n_cols_i), Ts[i]: (n_rows_i,) int64,
# rows[i]: (r_i,) int, possibly empty), all parameters of one dtype. The fast
# backends pay their call overhead once per step instead of once per parameter.
def sgd_step(Ws, Gs, rows, lr, clip):
    """sgd_rows on each parameter's selected rows."""
    for W, G, r in zip(Ws, Gs, rows):
        sgd_rows(W, G, r, lr, clip)


def adagrad_step(Ws, Hs, Gs, rows, lr, eps, clip):
    """adagrad_rows on each parameter's selected rows."""
    for W, H, G, r in zip(Ws, Hs, Gs, rows):
        adagrad_rows(W, H, G, r, lr, eps, clip)


def adam_step(Ws, Ms, Vs, Ts, Gs, rows, lr, beta1, beta2, eps, clip, global_t):
    """adam_rows on each parameter's selected rows.

    global_t = 0: each row's own step count (T[r] += 1, corrected as at T[r]).
    global_t > 0: the optimizer's step count: every selected row is corrected as
    at step global_t, and T[r] = global_t afterwards.
    """
    for W, M, V, T, G, r in zip(Ws, Ms, Vs, Ts, Gs, rows):
        if global_t > 0:
            T[r] = global_t - 1
        adam_rows(W, M, V, T, G, r, lr, beta1, beta2, eps, clip)


# ---------------------------------------------------------------- weight averaging
def moving_average(S, W, a):
    """S += a (W - S): the running average S of a parameter moves the fraction a
    toward its weights W (sparsebp/average.py).  S, W: the same shape (a weight
    (n_out, n_in), a bias (n,), ...) and dtype; a: a float in (0, 1] (with S all
    zeros, a = 1 copies W)."""
    S += S.dtype.type(a) * (W - S)


# ---------------------------------------------------------------- LSTM recurrence
# Time-major arrays: step t of every sequence is the contiguous block [t]. Gates
# are stacked i, f, g, o along the 4H axis (input, forget, cell, output), so
# W_hh: (4H, H) holds one gate unit per row, like W of a Linear layer. A step t
# is live for sequence b when t < lengths[b]; padded steps (t >= lengths[b])
# change no state and get no gradient.
def _sigmoid(z):
    """1 / (1 + exp(-z)), written through tanh so that no exp overflows."""
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def lstm_forward(Hs, Cs, Gs, Zx, W_hh, lengths):
    """The recurrence over T steps of B sequences.

    Hs, Cs: (T+1, B, H) in/out: [0] is the initial state (read), [t+1] the state
        after step t. A padded step copies the state: Hs[T] is each sequence's last h.
    Gs: (T, B, 4H) out: the gates i, f, g, o after their nonlinearities; 0 when padded.
    Zx: (T, B, 4H): the input side x_t W_ih^T + b, computed before for all steps.
    W_hh: (4H, H); lengths: (B,) int32, each in [1, T].
    Step: z = Zx[t] + h W_hh^T; i, f, o = sigmoid; g = tanh; c' = f c + i g;
    h' = o tanh(c').
    """
    T, B, H4 = Zx.shape
    H = H4 // 4
    for t in range(T):
        live = (t < lengths)[:, None]                # (B, 1)
        z = Zx[t] + Hs[t] @ W_hh.T                   # (B, 4H)
        i, f, o = _sigmoid(z[:, :H]), _sigmoid(z[:, H:2 * H]), _sigmoid(z[:, 3 * H:])
        g = np.tanh(z[:, 2 * H:3 * H])
        c = f * Cs[t] + i * g
        h = o * np.tanh(c)
        Gs[t] = np.where(live, np.concatenate([i, f, g, o], axis=1), 0)
        Cs[t + 1] = np.where(live, c, Cs[t])
        Hs[t + 1] = np.where(live, h, Hs[t])


def _gate_grads(dh, dc, Gs_t, c_prev, c):
    """One step's gradients: dz (B, 4H) of the pre-activations and dc through the
    tanh of the output (returned as dc, before the forget gate)."""
    H = dh.shape[1]
    i, f, g, o = Gs_t[:, :H], Gs_t[:, H:2 * H], Gs_t[:, 2 * H:3 * H], Gs_t[:, 3 * H:]
    tc = np.tanh(c)
    dc = dc + dh * o * (1 - tc * tc)
    dz = np.concatenate([dc * g * i * (1 - i), dc * c_prev * f * (1 - f),
                         dc * i * (1 - g * g), dh * tc * o * (1 - o)], axis=1)
    return dz, dc


def _select_step(sel_t, dz, mode, per_gate):
    """meProp's selection at one step, by the same kernels as `meprop.select`.

    sel_t: (B, kk) for "topk"/"random", (kk,) for "unified"; filled for "topk" and
    "unified", read for "random" (drawn before). dz: (B, 4H), the live examples
    only. per_gate: k units of each gate (kk = 4k) instead of k of the 4H."""
    if mode == "random":
        return
    if not per_gate:
        (topk_rows if mode == "topk" else topk_unified)(sel_t, dz, sel_t.shape[-1])
        return
    B, H4 = dz.shape
    H, k = H4 // 4, sel_t.shape[-1] // 4
    for q in range(4):                             # gate q: its units are [qH, (q+1)H)
        part = sel_t[..., q * k:(q + 1) * k]
        got = np.empty(part.shape, np.int32)
        (topk_rows if mode == "topk" else topk_unified)(got, dz[:, q * H:(q + 1) * H], k)
        part[...] = got + q * H


def lstm_backward(dZ, dW_hh, sel, dHs, Hs, Cs, Gs, W_hh, lengths, mode, per_gate):
    """Backpropagation through time with meProp at every step.

    dZ: (T, B, 4H) out: dL/dz at every step, in full (before the selection; the
        bias takes it whole); 0 at padded steps.
    dW_hh: (4H, H) out: sum over steps of dz_kept^T h_prev; only the rows some step
        selected are written (all rows when mode is "dense").
    sel: (T, B, kk) int32 for "topk" and "random", (T, kk) for "unified"; unused
        (any shape) for "dense". Out for "topk"/"unified", in for "random"; -1 at
        padded steps (and, unified, at steps no sequence reaches).
    dHs: (T, B, H): dL/dh_t from above; ignored at padded steps.
    Hs, Cs, Gs, W_hh, lengths: as lstm_forward left them.
    mode: "dense", "topk", "unified" or "random"; per_gate: see `_select_step`.

    At step t (from the last): dh = dHs[t] + the recurrent dh; dz from the gates;
    meProp keeps kk entries of each live example's dz (unified: kk units for the
    live examples together, by their column sums); only those flow into dh_prev =
    dz_kept W_hh and into dW_hh. dc_prev = dc f flows in full (no product there).
    """
    T, B, H4 = dZ.shape
    H = H4 // 4
    dh, dc = np.zeros((B, H), dZ.dtype), np.zeros((B, H), dZ.dtype)
    kept = np.zeros_like(dZ)                         # (T, B, 4H) dz with the kept entries only
    if mode in ("topk", "unified"):
        sel[...] = -1
    for t in range(T - 1, -1, -1):
        live = t < lengths                          # (B,) bool
        dh = dh + np.where(live[:, None], dHs[t], 0)
        dz, dc = _gate_grads(dh, dc, Gs[t], Cs[t], Cs[t + 1])
        dz[~live] = 0
        dZ[t] = dz
        if mode == "dense":
            kept[t] = dz
        elif live.any():
            lv = np.flatnonzero(live)
            if mode == "unified":
                _select_step(sel[t], dz[lv], mode, per_gate)
                kept[t][np.ix_(lv, sel[t])] = dz[np.ix_(lv, sel[t])]
            else:
                s = sel[t][lv]
                _select_step(s, dz[lv], mode, per_gate)
                sel[t][lv] = s
                rows_b = np.repeat(lv, s.shape[1])
                kept[t][rows_b, s.ravel()] = dz[rows_b, s.ravel()]
        dh = kept[t] @ W_hh                          # (B, H): only the kept rows of W_hh
        dc = dc * Gs[t][:, H:2 * H]                  # through the forget gate; 0 when padded
    full = np.einsum("tbr,tbh->rh", kept, Hs[:-1])   # (4H, H)
    if mode == "dense":
        dW_hh[:] = full
    else:
        rows = np.unique(sel[sel >= 0])
        dW_hh[rows] = full[rows]

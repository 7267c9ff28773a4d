"""meProp's backward of one matrix product, in one place.

Every layer with a weight matrix computes y = x W^T (+ b) in its forward:
`Linear` once per minibatch, `LSTM` once for its input side and once per time
step for its recurrent side. Its backward calls `meprop_backward`, which is the
whole method of the paper (Sun et al., 2017, section 2):

    1. select: keep k entries of each example's output gradient dy (or one set of
       k units for the minibatch), by magnitude;
    2. the two sparse products: dx from k rows of W, and k rows of dW;
    3. the bias from the full dy (both official implementations do this).

The kernels are those of the current backend (`K()`): `kernels/reference.py` is
their specification in plain NumPy.
"""
import numpy as np

from .backend import K, random_rows

MODES = ("dense", "topk", "unified", "random")

# Unified mode picks k units by the column sums of |dy| over the minibatch. In
# data-parallel training (sparsebp/distributed.py) each process holds a shard of
# the minibatch, so its column sums must be summed over the processes first:
# that function, (n_out,) host array -> (n_out,) host array, is set here.
# None (one process): the fused kernel topk_unified sums and selects at once.
_column_sums_reducer = None


def set_column_sums_reducer(fn):
    """Install fn (or None) as unified mode's reducer of column sums (see above)."""
    global _column_sums_reducer
    _column_sums_reducer = fn


def _new(name, shape, dtype):
    return K().empty(shape, dtype)


def select(dy, k, mode, buffer=_new):
    """The units meProp keeps of dy: (B, n_out).

    Returns (B, k) int32 for "topk" and "random" (one sorted selection per
    example), (k,) int32 for "unified" (one for the minibatch), None for "dense".
    buffer(name, shape, dtype): where the selection is written (a layer passes
    its `Module.buffer`: no allocation per step on the GPU); a new array by default.
    """
    B, n_out = dy.shape
    if mode == "dense":
        return None
    if mode == "topk":                   # the paper: the k largest |dy| of each example
        idx = buffer("selected", (B, k), np.int32)
        K().topk_rows(idx, dy, k)
        return idx
    if mode == "unified":                # the official GPU code: by the column sums of |dy|
        idx = buffer("selected", (k,), np.int32)
        if _column_sums_reducer is None:
            K().topk_unified(idx, dy, k)
        else:                            # the top k of the global minibatch's sums
            sums = _column_sums_reducer(np.abs(K().to_host(dy)).sum(axis=0))
            K().topk_unified(idx, K().to_device(sums.reshape(1, n_out)), k)
        return idx
    if mode == "random":                 # the paper's control: k units at random, fresh each pass
        keys = random_rows((B, n_out))   # a process's rows of the minibatch's (backend.random_rows)
        idx = np.sort(np.argpartition(keys, k - 1, axis=1)[:, :k], axis=1)
        out = buffer("selected", (B, k), np.int32)
        K().copy_to(out, idx)
        return out
    raise ValueError(f"unknown meProp mode {mode!r}; choose one of {MODES}")


def meprop_backward(dx, dW, db, dy, x, W, k, mode, selected=None, buffer=_new, act=None, y=None):
    """The backward of y = x W^T + b with meProp's sparsified dy.

    dx: (B, n_in) out; dW: (n_out, n_in) out, valid only in the returned rows;
    db: (n_out,) out, or None for a product without bias; dy: (B, n_out);
    x: (B, n_in); W: (n_out, n_in); k: units kept (ignored when mode is "dense").
    selected: a selection made already, (B, k) or (k,) int32 as `select` returns
        (the LSTM's recurrence selects at each step and its input side reuses
        those); None: select here.
    buffer: where the selection and the rows go, as in `select`.
    act, y: an activation fused into the forward (None, "relu", "tanh") and its
        output y = act(x W^T + b): (B, n_out); dy is then the gradient of y, and
        its derivative is applied first (in the same pass as the bias sums).

    Returns (selected, rows): the selection (see `select`) and the sorted (r,)
    int32 rows of dW that were written (None: all rows, a dense backward).
    """
    one_pass = mode == "unified" and selected is None and _column_sums_reducer is None
    if act is not None or one_pass:
        # One pass over dy: the activation's derivative, the bias sums, the unified selection.
        g = buffer("dy_product", dy.shape, dy.dtype) if act is not None else None
        if one_pass:
            selected = buffer("selected", (k,), np.int32)
        K().prepare_dy(g, db, selected if one_pass else None, dy, y, act, k)
        dy, db = dy if g is None else g, None          # dy: now the gradient of x W^T + b
    elif mode != "dense" and db is not None:
        K().bias_grad(db, dy)                          # the full dy, every mode
        db = None
    idx = select(dy, k, mode, buffer) if selected is None else selected
    if idx is None:                                    # normal backprop (db, if not summed yet, with dW)
        K().dense_backward(dx, dW, dy, x, W, db)
        return None, None
    if idx.ndim == 1:                                  # unified (k,): gather, two small GEMMs, scatter
        K().unified_backward(dx, dW, dy, x, W, idx)
        return idx, idx
    K().topk_backward(dx, dW, dy, x, W, idx)           # (B, k): per-example selections
    return idx, K().union_rows(idx, W.shape[0], buffer("rows", (W.shape[0],), np.int32))

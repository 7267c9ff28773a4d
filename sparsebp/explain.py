"""`sparsebp explain`: one meProp training step of a tiny layer, printed in the paper's notation.

    python -m sparsebp.explain [--mode topk|unified|random|dense] [--k 2] [--seed 0]
                               [--backend numpy|cpu|cuda]

A `Linear(8, 6, k=2)` sees a minibatch of B = 2 examples, a softmax cross-entropy
gives its output gradient dy, and its backward and one Adam step run exactly as in
training (`Linear.backward` -> `meprop.meprop_backward` -> the backend's kernels ->
`optim.Adam.step`). Each quantity is printed with its name in the paper (Sun et al.,
ICML 2017, section 2) and in the code, and every result of the sparse backward is
printed beside the same quantity computed plainly from its definition (the masked
dy times x or W, with NumPy's `@`), with the largest difference between them.

The layer is float64, so "equal" means equal to rounding (differences ~1e-16), and
it runs on the NumPy reference kernels by default: no Numba compile wait.
`walkthrough()` returns every printed array and every claimed equality, which
tests/test_explain.py checks.
"""
import argparse
import sys

import numpy as np

B, N_IN, N_OUT, K_DEFAULT = 2, 8, 6, 2
EQUAL_TOL = 1e-12       # float64: the two ways of computing differ by rounding only


def _fmt(a):
    """Rows of a 1-D or 2-D array as text, 4 decimals, sign always shown."""
    a = np.atleast_2d(np.asarray(a, dtype=np.float64))
    return [" ".join(f"{v:+.4f}" for v in row) for row in a]


class _Printer:
    """Prints arrays and the side-by-side comparisons, and records both."""

    def __init__(self, out):
        self.out, self.arrays, self.checks = out, {}, []

    def say(self, text=""):
        self.out(text)

    def array(self, key, title, a, labels=None):
        self.arrays[key] = np.array(a)
        self.say(title)
        for i, line in enumerate(_fmt(a)):
            self.say(f"  {labels[i] if labels is not None else '':>10}  {line}")

    def beside(self, key, left_title, got, right_title, want, labels):
        """got (what sparsebp computed) and want (the plain definition), row by row."""
        got, want = np.atleast_2d(got), np.atleast_2d(want)
        diff = float(np.max(np.abs(got - want))) if got.size else 0.0
        self.checks.append((key, got.copy(), want.copy()))
        self.arrays[key] = got.copy()
        left, right = _fmt(got), _fmt(want)
        width = max(len(left_title), len(left[0]) if left else 0)
        self.say(f"  {'':>10}  {left_title:<{width}}  |  {right_title}")
        for lab, a, b in zip(labels, left, right):
            self.say(f"  {lab:>10}  {a:<{width}}  |  {b}")
        mark = "equal" if diff <= EQUAL_TOL else "DIFFERENT"
        self.say(f"  {'':>10}  {mark}: largest |difference| {diff:.1e}")


def _masked(dy, selected, mode):
    """dy with only the kept entries (the rest 0): the paper's sparsified gradient."""
    if mode == "dense":
        return dy.copy()
    m = np.zeros_like(dy)
    if mode == "unified":                       # one set of columns for every example
        m[:, selected] = dy[:, selected]
    else:                                       # (B, k): each example its own units
        np.put_along_axis(m, selected, np.take_along_axis(dy, selected, 1), 1)
    return m


def _forward(p, layer, x, labels):
    """Steps 1-2: the forward pass and the loss's gradient dy. Returns (dy, loss_fn)."""
    import sparsebp as sb
    from sparsebp.backend import K
    W, b = K().to_host(layer.weight.data), K().to_host(layer.bias.data)
    p.array("x", f"x: the input, (B={B} examples, n_in={N_IN})   [Linear.forward's x]", x,
            [f"example {i}" for i in range(B)])
    p.array("W", f"W: the weight, (n_out={N_OUT}, n_in={N_IN}): one row per output unit   "
            "[layer.weight.data]", W, [f"unit {r}" for r in range(N_OUT)])
    p.array("b", "b: the bias, (n_out,)   [layer.bias.data]", b, ["b"])
    p.say("\n1. forward   y = x W^T + b   [Linear.forward -> kernels linear_forward]")
    y_dev = layer.forward(x)
    y = K().to_host(y_dev)
    p.beside("y", "y (sparsebp)", y, "x @ W.T + b (plain NumPy)", x @ W.T + b,
             [f"example {i}" for i in range(B)])
    loss_fn = sb.SoftmaxCrossEntropy()
    loss = loss_fn(y_dev, labels)
    p.say(f"\n2. the loss: softmax cross-entropy against labels {labels.tolist()}: {loss:.4f}")
    dy = K().to_host(loss_fn.backward())
    p.array("dy", "   dy = dL/dy = (softmax(y) - onehot(label)) / B, (B, n_out): the output "
            "gradient   [SoftmaxCrossEntropy.backward]", dy, [f"example {i}" for i in range(B)])
    p.array("abs_dy", "   |dy|: meProp ranks the entries by magnitude", np.abs(dy),
            [f"example {i}" for i in range(B)])
    return dy


def _selection(p, layer, dy, mode, k):
    """Steps 3-4: which units each example keeps, and the masked dy."""
    from sparsebp.backend import K
    sel = None if layer.selected is None else np.asarray(K().to_host(layer.selected))
    where = dict(topk="kernels topk_rows", unified="kernels topk_unified",
                 random="a seeded draw on the host", dense="returns None: no selection")[mode]
    p.say(f"\n3. select   [meprop.select: {where}]")
    if mode == "dense":
        p.say("   dense: nothing is dropped; every unit of every example is kept (normal backprop)")
    elif mode == "unified":
        p.array("colsum", "   unified: one set of k units for the whole minibatch, by the "
                "column sums of |dy| (the official GPU code)", np.abs(dy).sum(0), ["sum_b |dy|"])
        p.say(f"   the k={k} units kept by every example: idx = {sel.tolist()}   [layer.selected, (k,)]")
    else:
        how = ("the k entries of largest |dy| in its row (top-k; ties: lower index)" if mode == "topk"
               else "k units drawn at random, ignoring |dy| (the paper's control)")
        p.say(f"   {mode}: each example keeps {how}   [layer.selected, (B, k)]")
        for i in range(B):
            p.say(f"   example {i} keeps units {sel[i].tolist()}")
        if mode == "random":                    # the contrast: what top-k would have kept
            top = np.sort(np.argsort(-np.abs(dy), axis=1, kind="stable")[:, :k], axis=1)
            same = " (the same by chance: try another --seed)" if np.array_equal(top, sel) else ""
            p.say(f"   (top-k would keep {top.tolist()}){same}")
    if sel is not None:
        p.arrays["selected"] = sel
    masked = _masked(dy, sel, mode)
    p.array("masked_dy", "\n4. masked_dy: dy with only the kept entries, 0 elsewhere (the paper's "
            "sparsified gradient; the kernels never build it, it is shown here to compare)",
            masked, [f"example {i}" for i in range(B)])
    return sel, masked


def _products(p, layer, x, dy, masked, dx):
    """Steps 5-8: the rows of dW, dx, the bias gradient, the union of rows."""
    from sparsebp.backend import K
    W = K().to_host(layer.weight.data)
    rows = np.arange(N_OUT) if layer.weight.rows is None else np.asarray(K().to_host(layer.weight.rows))
    p.arrays["rows"] = rows
    grad = np.asarray(K().to_host(layer.weight.grad))
    p.say("\n5. dW = masked_dy^T x: only the rows of the kept units get a gradient   "
          "[meprop_backward -> kernels topk_backward / unified_backward / dense_backward]")
    p.beside("dW_rows", "dW[r] (layer.weight.grad)", grad[rows], "(masked_dy.T @ x)[r] (plain)",
             (masked.T @ x)[rows], [f"row {r}" for r in rows])
    others = np.setdiff1d(np.arange(N_OUT), rows)
    p.say(f"   rows {others.tolist()} were not written: weight.grad holds stale values there that no "
          "optimizer reads; weight.dense_grad() returns the full gradient with zeros in them"
          if others.size else "   every row got a gradient")
    p.beside("dense_grad", "weight.dense_grad()", layer.weight.dense_grad(), "masked_dy.T @ x (plain)",
             masked.T @ x, [f"row {r}" for r in range(N_OUT)])
    p.say("\n6. dx = masked_dy W: the input gradient from the k kept rows of W per example")
    p.beside("dx", "dx (Linear.backward's result)", K().to_host(dx), "masked_dy @ W (plain)",
             masked @ W, [f"example {i}" for i in range(B)])
    p.say("\n7. db: the bias gradient from the FULL dy (not masked), as both official codes do   "
          "[kernels bias_grad]")
    p.beside("db", "db (layer.bias.grad)", K().to_host(layer.bias.grad), "dy.sum(axis=0) (plain)",
             dy.sum(0), ["db"])
    p.say(f"\n8. the union of rows: the units any example kept, the rows the optimizer will update "
          f"[layer.weight.rows, kernels union_rows]: {rows.tolist()}")
    return rows


def _update(p, layer, opt, rows):
    """Step 9: one lazy Adam step; which rows of W and of its state changed."""
    from sparsebp.backend import K
    host = lambda a: np.array(K().to_host(a))      # noqa: E731  (a copy)
    before = [host(layer.weight.data)] + [host(opt.state[0][n]) for n in ("M", "V", "T")]
    opt.step()
    after = [host(layer.weight.data)] + [host(opt.state[0][n]) for n in ("M", "V", "T")]
    p.say("\n9. one Adam step (lazy: the selected rows only)   "
          "[optim.Adam.step -> kernels adam_step, all parameters in one call]")
    others = np.setdiff1d(np.arange(N_OUT), rows)
    for name, a, b in zip(("W", "Adam's M", "Adam's V", "Adam's step count T"), before, after):
        changed = np.flatnonzero((a != b).reshape(N_OUT, -1).any(1))
        same = bool(np.array_equal(a[others], b[others]))
        p.arrays[f"changed {name}"] = changed
        p.checks.append((f"unchanged {name}", np.float64(not same), np.float64(0)))
        p.say(f"   {name:<20} rows changed {changed.tolist()}; the others {others.tolist()} "
              f"{'bit-identical' if same else 'CHANGED'}")
    p.arrays["W_before"], p.arrays["W_after"] = before[0], after[0]


def walkthrough(mode="topk", k=K_DEFAULT, seed=0, backend="numpy", out=print):
    """Print one training step of Linear(8, 6, k, mode); returns (arrays, checks).

    arrays: {name: ndarray} of every printed quantity; checks: [(name, got, want)],
    the pairs printed as equal (sparsebp's result, the plain definition).
    """
    import sparsebp as sb
    p = _Printer(out)
    with sb.using(backend):
        sb.seed(seed)
        layer = sb.Linear(N_IN, N_OUT, k=None if mode == "dense" else k, mode=mode, dtype=np.float64)
        opt = sb.Adam(layer.parameters(), lr=1e-3)
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((B, N_IN))
        labels = rng.integers(0, N_OUT, B)
        p.say(f"sparsebp explain: one training step of {layer!r} on the {backend} backend "
              f"(float64, seed {seed})\n")
        dy = _forward(p, layer, x, labels)
        dx = layer.backward(dy)
        _, masked = _selection(p, layer, dy, mode, k)
        rows = _products(p, layer, x, dy, masked, dx)
        _update(p, layer, opt, rows)
    bad = [name for name, got, want in p.checks if np.max(np.abs(got - want), initial=0) > EQUAL_TOL]
    p.say(f"\n{len(p.checks) - len(bad)} of {len(p.checks)} comparisons hold"
          + (f"; these do not: {bad}" if bad else "."))
    return p.arrays, p.checks


def add_arguments(ap):
    """The flags of `sparsebp explain` (shared by the CLI and `python -m sparsebp.explain`)."""
    from sparsebp.kernels import BACKENDS
    from .meprop import MODES
    ap.add_argument("--mode", choices=MODES, default="topk")
    ap.add_argument("--k", type=int, default=K_DEFAULT, help=f"units kept, 1..{N_OUT}")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--backend", choices=sorted(BACKENDS), default="numpy",
                    help="numpy: the reference kernels, no compile wait")
    return ap


def run(args):
    """Run the walkthrough for parsed arguments; returns the exit status."""
    if not 1 <= args.k <= N_OUT:
        print(f"sparsebp explain: error: --k must be in 1..{N_OUT}, got {args.k}", file=sys.stderr)
        return 2
    try:
        _, checks = walkthrough(args.mode, args.k, args.seed, args.backend)
    except RuntimeError as e:              # e.g. --backend cuda without a GPU
        print(f"sparsebp explain: error: {e}", file=sys.stderr)
        return 1
    return 0 if all(np.max(np.abs(g - w), initial=0) <= EQUAL_TOL for _, g, w in checks) else 1


def main(argv=None):
    ap = add_arguments(argparse.ArgumentParser(prog="python -m sparsebp.explain",
                                               description=__doc__.splitlines()[0]))
    return run(ap.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

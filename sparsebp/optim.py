"""Optimizers that update only the rows a meProp backward selected.

After a backward, a Parameter's `rows` lists the rows that received a gradient
(None: all). `step()` hands exactly those rows to a row-sparse kernel: every other
row of the weight and of every state array stays bit-identical (a lazy update,
as row-sparse optimizers elsewhere do). With all rows selected each optimizer is
the ordinary dense one.

This differs on purpose from the paper's code, whose Adam updates every weight
each step, so momentum keeps moving rows whose gradient was zero. `Adam(...,
lazy=False)` is that dense Adam, for comparison.

Gradients are not accumulated: each backward overwrites them, so no
`zero_grad()` is needed between steps (it exists, for PyTorch habits).

One step is one kernel call for all parameters of a dtype (`K().adam_step` and
the like take tuples, one array per parameter): on a GPU a launch costs 10-25 us
of host time whatever it does, more than a small layer's update (on the CPU a
call costs under a microsecond; there it changes little, benchmarks/README.md).
The tuples are built once (`_groups`) and again only when a parameter's array
was replaced (a loaded model, `zero_grad`) or the state was loaded.

The defaults are the paper's MNIST settings, the same as the command line's
(`sparsebp train`): lr 1e-3 for Adam, 0.1 for AdaGrad and SGD, and each
gradient entry clipped to [-5, 5] (the official C# code's clipping).
"""
import numpy as np

from .backend import K


CLIP = 5.0     # the official C# code's clipping, every optimizer's default
# The step kernels take tuples, and Numba compiles a kernel once per tuple length
# (2-6 s for Adam; cached on disk after). The optimizer pads its tuples to a
# multiple of this with empty parameters, so one compile (the one `sb.warm_up`
# and the training's warm-up make) serves every model of up to 8 parameters;
# padding costs about 1 us a step (the empty entries' arrays handed to Numba).
STEP_TUPLE = 8


def _as_rows(a):
    """A 1-D parameter (a bias) as an (n, 1) view: every kernel sees rows."""
    return a.reshape(a.shape[0], 1) if len(a.shape) == 1 else a


class Optimizer:
    """Base: holds the parameters, their per-parameter state and the clip value.

    clip : if > 0, each gradient entry is clipped to [-clip, clip] before the
        update (the official C# code clips at 5, the default); 0 disables clipping.
    """

    state_names = ()

    def __init__(self, params, lr, clip=CLIP):
        self.params = list(params)
        if not self.params:
            raise ValueError(f"{type(self).__name__}: got no parameters")
        if not lr > 0:
            raise ValueError(f"{type(self).__name__}: lr must be > 0, got {lr!r}")
        if clip < 0:
            raise ValueError(f"{type(self).__name__}: clip must be >= 0, got {clip!r}")
        self.lr, self.clip = float(lr), float(clip)
        self.state = [self._init_state(p) for p in self.params]
        self._all_rows = [K().to_device(np.arange(p.shape[0], dtype=np.int32)) for p in self.params]
        self._packed, self._packed_from = None, None

    def _init_state(self, p):
        return {n: K().zeros(_as_rows(p.data).shape, p.data.dtype) for n in self.state_names}

    def _groups(self):
        """The parameters by dtype, each group's arrays as the tuples the step
        kernels take: [_Group]. Built at the first step, and again only when a
        parameter's data or grad is another array than then (checked by identity)."""
        arrays = [a for p in self.params for a in (p.data, p.grad)]
        if self._packed is None or any(a is not b for a, b in zip(arrays, self._packed_from)):
            by_dtype = {}
            for i, p in enumerate(self.params):
                by_dtype.setdefault(np.dtype(p.data.dtype), []).append(i)
            self._packed = [_Group(self, idx) for idx in by_dtype.values()]
            self._packed_from = arrays
        return self._packed

    def step(self):
        """Update each parameter's selected rows from its gradient: one kernel call
        for all parameters (per dtype)."""
        for g in self._groups():
            rows = tuple(all_rows if p.rows is None else p.rows
                         for p, all_rows in zip(g.params, g.all_rows))
            self._update(g, rows + g.all_rows[len(rows):])     # the padding: no rows

    def zero_grad(self):
        """Zero every gradient and mark no row selected, so a `step()` before the
        next backward changes nothing. Not needed between steps: each backward
        overwrites the gradients (there is no accumulation)."""
        for p in self.params:
            p.grad = K().zeros(p.grad.shape, p.grad.dtype)
            p.rows = K().to_device(np.zeros(0, np.int32))

    def rows_updated(self):
        """(rows updated in the last step, rows in all) summed over the parameters."""
        done = sum(p.shape[0] if p.rows is None else len(p.rows) for p in self.params)
        return done, sum(p.shape[0] for p in self.params)

    def state_dict(self):
        """{"I.NAME": host copy} of every state array ("0.M": Adam's first moment
        of parameter 0); the settings (lr, clip, ...) are the constructor's."""
        return {f"{i}.{n}": np.array(K().to_host(a)) for i, st in enumerate(self.state)
                for n, a in st.items()}

    def load_state_dict(self, d):
        """Restore the state arrays of `state_dict` (same parameters, same order)."""
        want = {f"{i}.{n}" for i, st in enumerate(self.state) for n in st}
        missing, unexpected = sorted(want - set(d)), sorted(set(d) - want)
        if missing or unexpected:
            raise ValueError(f"{type(self).__name__}.load_state_dict: the state does not fit "
                             f"these parameters: missing {missing}, unexpected {unexpected}")
        for i, st in enumerate(self.state):
            for n in st:
                src = np.asarray(d[f"{i}.{n}"])
                if src.shape != tuple(st[n].shape):
                    raise ValueError(f"{type(self).__name__}.load_state_dict: {i}.{n} has shape "
                                     f"{src.shape} in the state, {tuple(st[n].shape)} here")
                st[n] = K().to_device(src.astype(st[n].dtype))
        self._packed = None                    # the state arrays are new ones


class _Group:
    """Parameters of one dtype, as the tuples the step kernels take: W, G (each 2-D:
    a bias as (n, 1)), all_rows (an arange per parameter), state[name] (one state
    array per parameter); padded to a multiple of STEP_TUPLE with an empty
    parameter (a (1, 1) array, no rows) that no step changes."""

    def __init__(self, opt, idx):
        self.params = tuple(opt.params[i] for i in idx)
        pad = -len(idx) % STEP_TUPLE

        def padded(arrays):
            arrays = tuple(arrays)              # an empty entry: one element of the same kind
            return arrays + (K().zeros((1,) * len(arrays[0].shape), arrays[0].dtype),) * pad
        self.W = padded(_as_rows(p.data) for p in self.params)
        self.G = padded(_as_rows(p.grad) for p in self.params)
        self.all_rows = tuple(opt._all_rows[i] for i in idx) + (K().to_device(np.zeros(0, np.int32)),) * pad
        self.state = {n: padded(opt.state[i][n] for i in idx) for n in opt.state[idx[0]]}


class SGD(Optimizer):
    """W[r] -= lr * g[r] on the selected rows."""

    def __init__(self, params, lr=0.1, clip=CLIP):
        super().__init__(params, lr, clip)

    def _update(self, g, rows):
        K().sgd_step(g.W, g.G, rows, self.lr, self.clip)


class AdaGrad(Optimizer):
    """AdaGrad (the paper's eps 1e-6) on the selected rows."""

    state_names = ("H",)

    def __init__(self, params, lr=0.1, eps=1e-6, clip=CLIP):
        self.eps = float(eps)
        super().__init__(params, lr, clip)

    def _update(self, g, rows):
        K().adagrad_step(g.W, g.state["H"], g.G, rows, self.lr, self.eps, self.clip)


class Adam(Optimizer):
    """Adam on the selected rows (the paper's settings by default).

    bias_correction : how a row's moments are corrected for their zero start.
        "row" (default): a step count per row (state "T"): a row's first update
        is corrected as a first step however late it comes. "global": the
        optimizer's step count, as lazy Adam elsewhere (a rarely selected row is
        under-corrected; "T" holds the step of each row's last update). "none":
        no correction, M and V used as they are.
    lazy=False is the paper code's dense Adam: every row is updated every step,
    unselected rows with a zero gradient, so their momentum keeps moving them.
    """

    state_names = ("M", "V")
    BIAS_CORRECTIONS = ("row", "global", "none")
    # A count so large that beta ** count is 0 in float64: 1 / (1 - beta ** t) = 1,
    # so the kernels' per-row correction becomes no correction.
    _NO_CORRECTION = 2 ** 40

    def __init__(self, params, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, clip=CLIP, lazy=True,
                 bias_correction="row"):
        if bias_correction not in self.BIAS_CORRECTIONS:
            raise ValueError(f"Adam: bias_correction must be one of {self.BIAS_CORRECTIONS}, "
                             f"got {bias_correction!r}")
        if not eps > 0:
            raise ValueError(f"Adam: eps must be > 0, got {eps!r}")
        self.beta1, self.beta2, self.eps, self.lazy = float(beta1), float(beta2), float(eps), lazy
        self.bias_correction, self.steps = bias_correction, 0
        super().__init__(params, lr, clip)

    def _init_state(self, p):
        st = super()._init_state(p)
        t0 = self._NO_CORRECTION if self.bias_correction == "none" else 0
        st["T"] = K().to_device(np.full((p.shape[0],), t0, np.int64))
        return st

    def step(self):
        self.steps += 1
        super().step()

    def load_state_dict(self, d):
        super().load_state_dict(d)
        if self.bias_correction == "global":     # the step count is what "T" holds after a step
            self.steps = max(int(K().to_host(st["T"]).max()) for st in self.state)

    def _update(self, g, rows):
        if not self.lazy:
            rows = self._every_row(g, rows)
        global_t = self.steps if self.bias_correction == "global" else 0
        K().adam_step(g.W, g.state["M"], g.state["V"], g.state["T"], g.G, rows, self.lr,
                      self.beta1, self.beta2, self.eps, self.clip, global_t)

    @staticmethod
    def _every_row(g, rows):
        """lazy=False: a parameter with selected rows gets all rows, its unselected
        rows' gradient zeroed (one with none selected, after zero_grad, stays so)."""
        out = []
        for G, sel, all_rows in zip(g.G, rows, g.all_rows):
            if len(sel) and sel is not all_rows:
                K().zero_unselected(G, sel)
                sel = all_rows
            out.append(sel)
        return tuple(out)

"""Optimizers touch only the selected rows; with all rows selected they are dense."""
import numpy as np
import pytest

import sparsebp as sb
from conftest import assert_close


def _mlp(mode, k, dtype=np.float32):
    return sb.Sequential(sb.Linear(12, 16, k=k, mode=mode, dtype=dtype), sb.ReLU(),
                         sb.Linear(16, 16, k=k, mode=mode, dtype=dtype), sb.ReLU(),
                         sb.Linear(16, 4, dtype=dtype))


def _batch(seed=0, B=3):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((B, 12)).astype(np.float32), rng.integers(0, 4, B)


def _step(model, opt, x, y):
    lf = sb.SoftmaxCrossEntropy()
    loss = lf.forward(model.forward(x), y)
    model.backward(lf.backward())
    opt.step()
    return loss


# On cuda (the simulator is slow) each test runs with Adam only: the other optimizers'
# kernels are checked against the reference on cuda in test_kernels.py.
BIG = pytest.mark.big
OPTS = [pytest.param(lambda ps: sb.SGD(ps, lr=0.1), id="sgd", marks=BIG),
        pytest.param(lambda ps: sb.AdaGrad(ps, lr=0.1), id="adagrad", marks=BIG),
        pytest.param(lambda ps: sb.Adam(ps, lr=1e-2), id="adam"),
        pytest.param(lambda ps: sb.Adam(ps, lr=1e-2, clip=0.01), id="adam-clip", marks=BIG)]


@pytest.mark.parametrize("make_opt", OPTS)
@pytest.mark.parametrize("mode", ["topk", "unified", "random"])
def test_unselected_rows_and_state_stay_bit_identical(backend, make_opt, mode):
    sb.seed(0)
    model = _mlp(mode, 3)
    opt = make_opt(model.parameters())
    x, y = _batch(1, B=2)
    _step(model, opt, x, y)                    # fill the state with something non-zero
    before = [p.data.copy() for p in model.parameters()]
    state = [{n: a.copy() for n, a in st.items()} for st in opt.state]
    _step(model, opt, *_batch(2, B=2))
    for p, old, st, st_old in zip(model.parameters(), before, opt.state, state):
        if p.rows is None:
            continue
        assert len(p.rows) < p.shape[0]       # meProp selected a strict subset
        others = np.setdiff1d(np.arange(p.shape[0]), p.rows)
        assert np.array_equal(p.data[others], old[others])
        if mode != "random":                  # random-k may pick units whose dy is 0
            assert not np.array_equal(p.data[p.rows], old[p.rows])
        for n in st:
            assert np.array_equal(st[n][others], st_old[n][others]), n


@pytest.mark.parametrize("make_opt", OPTS)
@pytest.mark.parametrize("mode", ["topk", "unified"])
def test_all_rows_selected_equals_dense(backend, make_opt, mode):
    weights = []
    for m, k in [("dense", None), (mode, 16)]:
        sb.seed(0)
        model = _mlp(m, k)
        opt = make_opt(model.parameters())
        for s in range(3):
            _step(model, opt, *_batch(s))
        weights.append([p.data.copy() for p in model.parameters()])
    for a, b in zip(*weights):
        assert_close(a, b, 1e-6, 1e-5)


def test_dense_adam_moves_unselected_rows_with_momentum(backend):
    sb.seed(0)
    model = _mlp("topk", 2)
    opt = sb.Adam(model.parameters(), lr=1e-2, lazy=False)
    _step(model, opt, *_batch(0, B=1))
    W = model.layers[0].weight
    before = W.data.copy()
    _step(model, opt, *_batch(1, B=1))
    others = np.setdiff1d(np.arange(16), W.rows)
    # a zero gradient, but the first step's momentum still moves the rows it had touched
    assert not np.array_equal(W.data[others], before[others])
    assert (opt.state[0]["T"] == 2).all()      # every row counted every step


@BIG
def test_dense_adam_equals_adam_on_a_zero_filled_gradient(backend):
    # lazy=False is exactly Adam on the dense gradient with zeros in the unselected rows
    sb.seed(0)
    model = _mlp("topk", 2)
    sb.seed(0)
    twin = _mlp("dense", None)
    opt = sb.Adam(model.parameters(), lr=1e-2, lazy=False)
    M = [np.zeros(p.shape) for p in twin.parameters()]
    V = [np.zeros(p.shape) for p in twin.parameters()]
    for t in range(1, 4):
        x, y = _batch(t, B=2)
        _step(model, opt, x, y)
        for i, (p, q) in enumerate(zip(model.parameters(), twin.parameters())):
            g = p.dense_grad().astype(np.float64)
            M[i] = 0.9 * M[i] + 0.1 * g
            V[i] = 0.999 * V[i] + 0.001 * g * g
            q.data -= (1e-2 * (M[i] / (1 - 0.9 ** t)) /
                       (np.sqrt(V[i] / (1 - 0.999 ** t)) + 1e-8)).astype(np.float32)
    for p, q in zip(model.parameters(), twin.parameters()):
        assert_close(p.data, q.data, 1e-5, 1e-4)


def test_rows_updated_counts_the_union():
    sb.seed(0)
    model = _mlp("topk", 2)
    opt = sb.SGD(model.parameters(), lr=0.1)
    _step(model, opt, *_batch(0, B=1))
    done, total = opt.rows_updated()
    # per example k=2 rows in each hidden weight; biases and the output layer are dense
    assert (done, total) == (2 + 16 + 2 + 16 + 4 + 4, 16 * 4 + 4 * 2)


@BIG
def test_seeded_training_is_reproducible(backend):
    runs = []
    for _ in range(2):
        sb.seed(42)
        model = sb.Sequential(sb.Linear(12, 16, k=3, mode="random"), sb.Dropout(0.2), sb.ReLU(),
                              sb.Linear(16, 4))
        opt = sb.Adam(model.parameters())
        losses = [_step(model, opt, *_batch(s)) for s in range(4)]
        runs.append((losses, [p.data.copy() for p in model.parameters()]))
    assert runs[0][0] == runs[1][0]
    for a, b in zip(runs[0][1], runs[1][1]):
        assert np.array_equal(a, b)


def test_optimizer_rejects_bad_settings():
    ps = sb.Linear(2, 2).parameters()
    with pytest.raises(ValueError, match="lr must be > 0"):
        sb.SGD(ps, lr=0)
    with pytest.raises(ValueError, match="clip must be >= 0"):
        sb.Adam(ps, clip=-1)
    with pytest.raises(ValueError, match="got no parameters"):
        sb.Adam([])


@pytest.mark.parametrize("correction", ["row", "global", "none"])
def test_adam_bias_corrections_follow_their_formula(backend, correction):
    # lazy Adam over 4 steps of top-k; each row's correction count: its own updates
    # ("row"), the optimizer's steps ("global") or none at all
    sb.seed(0)
    model = _mlp("topk", 2)
    params = model.parameters()
    want = [p.data.astype(np.float64) for p in params]
    M = [np.zeros(p.shape) for p in params]
    V = [np.zeros(p.shape) for p in params]
    T = [np.zeros(p.shape[0]) for p in params]
    opt = sb.Adam(params, lr=1e-2, eps=1e-6, bias_correction=correction)
    for step in range(1, 5):
        _step(model, opt, *_batch(step, B=2))
        for i, p in enumerate(params):
            rows = np.arange(p.shape[0]) if p.rows is None else np.asarray(p.rows)
            g = p.dense_grad().astype(np.float64)[rows]
            M[i][rows] = 0.9 * M[i][rows] + 0.1 * g
            V[i][rows] = 0.999 * V[i][rows] + 0.001 * g * g
            T[i][rows] += 1
            t = {"row": T[i][rows], "global": np.full(len(rows), step), "none": np.full(len(rows), np.inf)}[correction]
            t = t.reshape((-1,) + (1,) * (p.data.ndim - 1))
            mhat, vhat = M[i][rows] / (1 - 0.9 ** t), V[i][rows] / (1 - 0.999 ** t)
            want[i][rows] -= 1e-2 * mhat / (np.sqrt(vhat) + 1e-6)
    assert any(p.rows is not None and len(p.rows) < p.shape[0] for p in params)   # sparse steps
    for p, w in zip(params, want):
        assert_close(p.data, w, 1e-5, 1e-4)


def test_adam_global_correction_resumes_its_step_count():
    sb.seed(0)
    model = _mlp("topk", 2)
    opt = sb.Adam(model.parameters(), bias_correction="global")
    for s in range(3):
        _step(model, opt, *_batch(s))
    twin = sb.Adam(model.parameters(), bias_correction="global")
    twin.load_state_dict(opt.state_dict())
    assert twin.steps == opt.steps == 3


def test_adam_rejects_bad_settings():
    ps = sb.Linear(2, 2).parameters()
    with pytest.raises(ValueError, match="bias_correction must be one of"):
        sb.Adam(ps, bias_correction="per-row")
    with pytest.raises(ValueError, match="eps must be > 0"):
        sb.Adam(ps, eps=0)


def test_step_is_one_kernel_call_per_dtype(monkeypatch):
    # the float32 MLP and a float64 layer: two step calls (one per dtype), no per-parameter ones
    from sparsebp import kernels, optim
    R = kernels.get("numpy")
    calls = []
    monkeypatch.setattr(R, "adam_step", lambda *a, f=R.adam_step: (calls.append(len(a[0])), f(*a)))
    with sb.using("numpy"):
        sb.seed(0)
        model, twin = _mlp("topk", 2), sb.Linear(3, 2, dtype=np.float64)
        opt = sb.Adam(model.parameters() + twin.parameters())
        _step(model, opt, *_batch(0))
        twin.forward(np.ones((1, 3)))
        twin.backward(np.ones((1, 2)))
        calls.clear()
        opt.step()
    assert calls == [optim.STEP_TUPLE] * 2     # 6 parameters, then 2: each padded to 8


@pytest.mark.parametrize("dtypes", [(np.float32,), (np.float32, np.float64)])
def test_fused_step_equals_each_parameter_alone(backend, dtypes):
    # parameters of one or two dtypes, some with no row selected: one Adam over all of
    # them does what the reference's adam_rows does to each parameter on its own
    from sparsebp import kernels
    from sparsebp.module import Parameter
    R = kernels.get("numpy")
    rng = np.random.default_rng(1)
    shapes = [(6, 4), (6,), (3, 6), (3,), (5, 2)]
    params, want = [], []
    for i, s in enumerate(shapes):
        a = rng.standard_normal(s).astype(dtypes[i % len(dtypes)])
        p = Parameter(sb.backend.K().to_device(a))
        params.append(p)
        want.append(dict(W=a.reshape(s[0], -1).copy(), M=np.zeros_like(a.reshape(s[0], -1)),
                         V=np.zeros_like(a.reshape(s[0], -1)), T=np.zeros(s[0], np.int64)))
    opt = sb.Adam(params, lr=1e-2, clip=1.0)
    for step in range(3):
        for i, (p, s) in enumerate(zip(params, shapes)):
            g = (3 * rng.standard_normal(s)).astype(p.data.dtype)
            p.grad = sb.backend.K().to_device(g)
            rows = [None, np.zeros(0, np.int32), np.array([0, 2], np.int32)][(i + step) % 3]
            p.rows = None if rows is None else sb.backend.K().to_device(rows)
            rows = np.arange(s[0], dtype=np.int32) if rows is None else rows
            w = want[i]
            R.adam_rows(w["W"], w["M"], w["V"], w["T"], g.reshape(s[0], -1), rows, 1e-2, 0.9, 0.999,
                        1e-8, 1.0)
        opt.step()
    for p, w, st in zip(params, want, opt.state):
        assert_close(np.asarray(sb.backend.K().to_host(p.data)).reshape(w["W"].shape), w["W"], 1e-6, 1e-5)
        assert np.array_equal(sb.backend.K().to_host(st["T"]), w["T"])


def test_step_follows_replaced_arrays():
    # the optimizer packs the parameters' arrays once; a model loaded into new arrays
    # (load_state_dict) and gradients made anew (zero_grad) are picked up
    sb.seed(0)
    a = _mlp("topk", 2)
    sb.seed(0)
    b = _mlp("topk", 2)
    opt_a, opt_b = sb.Adam(a.parameters()), sb.Adam(b.parameters())
    for m, o in ((a, opt_a), (b, opt_b)):
        _step(m, o, *_batch(0))
    a.load_state_dict(a.state_dict())          # same values, new arrays
    opt_a.zero_grad()                          # new gradient arrays too
    for s in (1, 2):
        for m, o in ((a, opt_a), (b, opt_b)):
            _step(m, o, *_batch(s))
    for n, w in b.state_dict().items():
        assert np.array_equal(a.state_dict()[n], w), n

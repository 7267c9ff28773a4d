"""Finite-difference gradient checks of every layer (float64), on every CPU backend.

For a layer f we check L(x) = sum(f(x) * R) for a fixed random R, so dy = R. A
meProp Linear computes on purpose not the gradient of L but the gradient for the
masked dy (R with only the selected entries kept): that is what is checked.
"""
import numpy as np
import pytest

import sparsebp as sb
from conftest import assert_close

F64 = dict(atol=1e-6, rtol=1e-5)


def numeric_grad(f, a, eps=1e-6):
    """Central differences of the scalar f() with respect to every entry of a (in place)."""
    g = np.zeros_like(a)
    for i in np.ndindex(a.shape):
        old = a[i]
        a[i] = old + eps
        up = f()
        a[i] = old - eps
        down = f()
        a[i] = old
        g[i] = (up - down) / (2 * eps)
    return g


def masked(dy, layer):
    """dy with only the entries the layer's last backward selected."""
    if layer.selected is None:
        return dy
    m = np.zeros_like(dy)
    if layer.selected.ndim == 1:
        m[:, layer.selected] = dy[:, layer.selected]
    else:
        np.put_along_axis(m, layer.selected, np.take_along_axis(dy, layer.selected, 1), 1)
    return m


CASES = [("dense", None), ("topk", 1), ("topk", 3), ("topk", 6), ("unified", 2),
         ("unified", 6), ("random", 2)]


@pytest.mark.parametrize("mode,k", CASES)
@pytest.mark.parametrize("B", [1, 4])
def test_linear_gradcheck(backend, mode, k, B):
    sb.seed(B)
    layer = sb.Linear(5, 6, k=k, mode=mode, dtype=np.float64)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((B, 5))
    R = rng.standard_normal((B, 6))
    layer.forward(x)
    dx = layer.backward(R)
    Rk = masked(R, layer)
    if k is not None and mode != "dense":
        assert layer.selected.shape == ((k,) if mode == "unified" else (B, k))
    W, b = layer.weight.data, layer.bias.data
    loss = lambda: float(np.sum(layer.forward(x) * Rk))  # noqa: E731
    assert_close(dx, numeric_grad(loss, x), **F64)
    assert_close(layer.weight.dense_grad(), numeric_grad(loss, W), **F64)
    full = lambda: float(np.sum(layer.forward(x) * R))  # noqa: E731
    assert_close(layer.bias.dense_grad(), numeric_grad(full, b), **F64)  # bias: full dy
    if layer.weight.rows is not None:
        assert np.array_equal(layer.weight.rows, np.unique(layer.selected))
        unselected = np.setdiff1d(np.arange(6), layer.weight.rows)
        assert (layer.weight.dense_grad()[unselected] == 0).all()


@pytest.mark.parametrize("mode", ["topk", "unified"])
def test_linear_k_equal_n_out_is_dense(backend, mode):
    rng = np.random.default_rng(1)
    x, R = rng.standard_normal((3, 4)), rng.standard_normal((3, 5))
    grads = []
    for m, k in [("dense", None), (mode, 5)]:
        sb.seed(0)
        layer = sb.Linear(4, 5, k=k, mode=m, dtype=np.float64)
        layer.forward(x)
        grads.append((layer.backward(R), layer.weight.dense_grad(), layer.bias.dense_grad()))
    for a, b in zip(*grads):
        assert_close(a, b, 1e-12, 1e-12)


def test_topk_keeps_the_largest_entries(backend):
    sb.seed(0)
    layer = sb.Linear(3, 4, k=2, mode="topk", dtype=np.float64)
    layer.forward(np.ones((1, 3)))
    layer.backward(np.array([[1.0, 2.0, 3.0, -4.0]]))    # the paper's top_2 example
    assert layer.selected.tolist() == [[2, 3]]
    assert layer.weight.rows.tolist() == [2, 3]


@pytest.mark.parametrize("make", [sb.ReLU, sb.Tanh, sb.Cube, lambda: sb.Dropout(0.3)],
                         ids=["relu", "tanh", "cube", "dropout"])
def test_elementwise_gradcheck(backend, make):
    layer = make()
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 7))
    x[np.abs(x) < 1e-3] = 0.5                  # keep ReLU's kink away from the step
    R = rng.standard_normal((4, 7))

    def loss():
        sb.seed(5)                             # dropout: the same mask every call
        return float(np.sum(layer.forward(x) * R))

    loss()
    dx = layer.backward(R)
    assert_close(dx, numeric_grad(loss, x), **F64)


def test_softmax_cross_entropy_gradcheck(backend):
    rng = np.random.default_rng(4)
    logits = rng.standard_normal((5, 3)) * 3
    y = np.array([0, 2, 1, 1, 0])
    lf = sb.SoftmaxCrossEntropy()
    loss = lf.forward(logits, y)
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    assert_close(loss, -np.mean(np.log(p[np.arange(5), y])), 1e-12, 1e-12)
    d = lf.backward()
    assert_close(d, numeric_grad(lambda: lf.forward(logits, y), logits), **F64)


def test_softmax_cross_entropy_is_stable_for_huge_logits(backend):
    lf = sb.SoftmaxCrossEntropy()
    loss = lf.forward(np.array([[1000.0, 0.0], [0.0, -1000.0]]), np.array([0, 0]))
    assert_close(loss, 0.0, 1e-12, 0)


def test_sequential_gradcheck_through_a_deep_model(backend):
    sb.seed(2)
    model = sb.Sequential(sb.Linear(4, 6, dtype=np.float64), sb.Tanh(),
                          sb.Linear(6, 5, dtype=np.float64), sb.ReLU(),
                          sb.Linear(5, 3, dtype=np.float64))
    lf = sb.SoftmaxCrossEntropy()
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((3, 4)), np.array([2, 0, 1])
    lf.forward(model.forward(x), y)
    dx = model.backward(lf.backward())
    loss = lambda: lf.forward(model.forward(x), y)  # noqa: E731
    assert_close(dx, numeric_grad(loss, x), **F64)
    for p in model.parameters():
        assert_close(p.dense_grad(), numeric_grad(loss, p.data), **F64)


def test_dropout_train_and_eval():
    sb.seed(0)
    d = sb.Dropout(0.5)
    x = np.ones((200, 50), np.float32)
    y = d.forward(x)
    assert set(np.unique(y).tolist()) == {0.0, 2.0}
    assert abs(y.mean() - 1.0) < 0.05          # inverted: the mean is kept
    d.eval()
    assert d.forward(x) is x


def test_train_eval_reach_every_layer():
    model = sb.Sequential(sb.Linear(2, 2), sb.Dropout(0.1), sb.Sequential(sb.Dropout(0.2)))
    model.eval()
    assert not model.layers[1].training and not model.layers[2].layers[0].training
    model.train()
    assert model.layers[2].layers[0].training


@pytest.mark.parametrize("k", [0, -1, 7, 2.5, "3"])
def test_linear_rejects_bad_k(k):
    with pytest.raises(ValueError, match=r"Linear\(4->6\).*1 <= k <= n_out = 6"):
        sb.Linear(4, 6, k=k)


def test_linear_rejects_bad_mode_and_input():
    with pytest.raises(ValueError, match="unknown mode 'top'"):
        sb.Linear(4, 6, k=2, mode="top")
    layer = sb.Linear(4, 6, k=2)
    with pytest.raises(ValueError, match=r"expected input of shape \(B, 4\), got \(3, 5\)"):
        layer.forward(np.zeros((3, 5), np.float32))
    with pytest.raises(ValueError, match="expected input"):
        layer.forward(np.zeros(4, np.float32))


def test_linear_casts_host_input_to_its_dtype():
    layer = sb.Linear(3, 2)
    assert layer.forward(np.ones((1, 3))).dtype == np.float32


def test_bad_labels_and_dropout_p():
    lf = sb.SoftmaxCrossEntropy()
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\)"):
        lf.forward(np.zeros((2, 3), np.float32), np.array([0, 3]))
    with pytest.raises(ValueError, match=r"labels must be \(2,\) integers"):
        lf.forward(np.zeros((2, 3), np.float32), np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="labels must be"):
        lf.forward(np.zeros((2, 3), np.float32), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match=r"p=1.0 must be in \[0, 1\)"):
        sb.Dropout(1.0)
    with pytest.raises(TypeError, match="not a Module"):
        sb.Sequential(sb.ReLU(), "relu")


def test_unknown_backend():
    with pytest.raises(ValueError, match="unknown backend 'gpu'"):
        sb.set_backend("gpu")


@pytest.mark.parametrize("init,std", [("csharp", np.sqrt(6 / 1100)), ("glorot", np.sqrt(2 / 1100)),
                                      ("pytorch", 1 / np.sqrt(3 * 600))])
def test_linear_init_has_its_scale(init, std):
    # (500, 600) weights: the sample std is within 2% of the formula's
    sb.seed(0)
    lin = sb.Linear(600, 500, init=init)
    W = np.asarray(lin.weight.data)
    assert W.dtype == np.float32 and abs(W.mean()) < 1e-3
    assert abs(W.std() / std - 1) < 0.02
    assert not np.asarray(lin.bias.data).any()
    if init == "pytorch":
        assert np.abs(W).max() <= 1 / np.sqrt(600)


def test_linear_rejects_unknown_init():
    with pytest.raises(ValueError, match="unknown init 'he'"):
        sb.Linear(3, 2, init="he")

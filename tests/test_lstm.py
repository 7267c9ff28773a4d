"""LSTM and BiLSTM: finite-difference gradient checks (float64) in every mode, with
and without padding, on every CPU backend; padding invariants; k = 4H is dense.

meProp's LSTM backward is on purpose not the gradient of the loss: at every step
only the kept entries of dz_t flow back. It is the exact gradient of a function in
which the unkept entries of each step's pre-activations are frozen at their values
in the unperturbed forward, z_t = where(kept, x_t W_ih^T + h W_hh^T, frozen) + b
(the bias outside: it takes the full dz_t). `run` below is that function, written
here in plain NumPy, independently of the kernels; with nothing frozen it is the
LSTM itself.
"""
import numpy as np
import pytest

import sparsebp as sb
from conftest import assert_close
from sparsebp.lstm import reverse_steps
from test_layers import numeric_grad

F64 = dict(atol=1e-7, rtol=1e-5)


def sig(z):
    return 1 / (1 + np.exp(-z))


def run(x, lengths, Wih, Whh, b, kept=None, frozen=None):
    """y: (B, T, H), and the products z_t without bias: (T, B, 4H). kept: (T, B, 4H)
    bool, frozen: (T, B, 4H) values for the entries not kept."""
    B, T, _ = x.shape
    H = Whh.shape[1]
    h, c = np.zeros((B, H)), np.zeros((B, H))
    y, zs = np.zeros((B, T, H)), np.zeros((T, B, 4 * H))
    for t in range(T):
        z = x[:, t] @ Wih.T + h @ Whh.T
        zs[t] = z
        if kept is not None:
            z = np.where(kept[t], z, frozen[t])
        z = z + b
        i, f, g, o = sig(z[:, :H]), sig(z[:, H:2 * H]), np.tanh(z[:, 2 * H:3 * H]), sig(z[:, 3 * H:])
        c2 = f * c + i * g
        h2 = o * np.tanh(c2)
        live = (t < lengths)[:, None]
        c, h = np.where(live, c2, c), np.where(live, h2, h)
        y[:, t] = np.where(live, h, 0)
    return y, zs


def kept_mask(layer, B, T, lengths):
    """(T, B, 4H) bool: the entries of dz_t the layer's last backward kept."""
    m = np.zeros((T, B, 4 * layer.H), bool)
    live = np.arange(T)[:, None] < lengths[None, :]
    if layer.selected is None:
        m[live] = True
        return m
    for t in range(T):
        for b in range(B):
            if live[t, b]:
                s = layer.selected[t] if layer.mode == "unified" else layer.selected[b, t]
                assert (s >= 0).all()
                m[t, b, s] = True
            elif layer.mode != "unified":
                assert (layer.selected[b, t] == -1).all()
    return m


def host(a):
    return np.array(sb.backend.K().to_host(a))


CASES = [("dense", None, False), ("topk", 1, False), ("topk", 3, False), ("topk", 16, False),
         ("unified", 2, False), ("random", 3, False), ("topk", 2, True), ("unified", 1, True),
         ("random", 1, True)]


@pytest.mark.parametrize("mode,k,per_gate", CASES)
@pytest.mark.parametrize("B,T,lengths", [(1, 4, None), (3, 4, None), (3, 5, [5, 1, 3])])
def test_lstm_gradcheck(host_backend, mode, k, per_gate, B, T, lengths):
    sb.seed(B + T)
    layer = sb.LSTM(3, 4, k=k, mode=mode, per_gate=per_gate, dtype=np.float64)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((B, T, 3))
    R = rng.standard_normal((B, T, 4))
    ln = np.full(B, T) if lengths is None else np.array(lengths)
    Wih, Whh, b = host(layer.weight_ih.data), host(layer.weight_hh.data), host(layer.bias.data)
    y = layer(x, None if lengths is None else ln)
    y0, z0 = run(x, ln, Wih, Whh, b)
    assert_close(y, y0, 1e-12, 1e-12)                        # the forward is the LSTM
    dx = layer.backward(R)
    kept = kept_mask(layer, B, T, ln)
    if layer.selected is not None:
        kk = 4 * k if per_gate else k
        assert layer.selected.shape == ((T, kk) if mode == "unified" else (B, T, kk))
        if per_gate:                                         # k units of each gate
            s = layer.selected if mode == "unified" else layer.selected[0]
            assert ((s // layer.H).reshape(-1, 4, k) == np.arange(4)[None, :, None]).all()

    def loss():
        return float(np.sum(run(x, ln, Wih, Whh, b, kept, z0)[0] * R))
    assert_close(dx, numeric_grad(loss, x), **F64)
    assert_close(layer.weight_ih.dense_grad(), numeric_grad(loss, Wih), **F64)
    assert_close(layer.weight_hh.dense_grad(), numeric_grad(loss, Whh), **F64)
    assert_close(layer.bias.dense_grad(), numeric_grad(loss, b), **F64)   # outside the freezing
    if mode != "dense":
        rows = np.unique(layer.selected[layer.selected >= 0])
        for p in (layer.weight_ih, layer.weight_hh):
            assert np.array_equal(host(p.rows), rows)
            assert (p.dense_grad()[np.setdiff1d(np.arange(16), rows)] == 0).all()
    for b_ in range(B):                                     # padded steps: no gradient
        assert (dx[b_, ln[b_]:] == 0).all()


@pytest.mark.parametrize("mode", ["topk", "unified"])
@pytest.mark.parametrize("per_gate", [False, True])
def test_lstm_k_full_is_dense(host_backend, mode, per_gate):
    rng = np.random.default_rng(2)
    x, R = rng.standard_normal((3, 6, 5)), rng.standard_normal((3, 6, 7))
    ln = np.array([6, 2, 4])
    grads = []
    for m, k in [("dense", None), (mode, 7 if per_gate else 28)]:
        sb.seed(0)
        layer = sb.LSTM(5, 7, k=k, mode=m, per_gate=per_gate, dtype=np.float64)
        layer(x, ln)
        grads.append([layer.backward(R)] + [p.dense_grad() for p in layer.parameters()])
    for a, d in zip(*grads):
        assert_close(a, d, 1e-12, 1e-10)


def test_padding_changes_no_state(host_backend):
    """Whatever sits at padded steps, the live outputs and gradients are the same."""
    sb.seed(1)
    layer = sb.LSTM(4, 5, k=3, mode="topk")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 6, 4)).astype(np.float32)
    R = rng.standard_normal((2, 6, 5)).astype(np.float32)
    ln = np.array([3, 6])
    out = []
    for fill in (0.0, 100.0):
        xp, Rp = x.copy(), R.copy()
        xp[0, 3:], Rp[0, 3:] = fill, fill
        y = layer(xp, ln)
        out.append((y, layer.backward(Rp), layer.weight_hh.dense_grad(), host(layer.Hs)[-1]))
    for a, b in zip(*out):
        assert np.array_equal(a, b)
    y, dx, _, last = out[0]
    assert (y[0, 3:] == 0).all() and (dx[0, 3:] == 0).all()
    assert np.array_equal(last[0], y[0, 2])                  # the final state is step 2's


def test_one_step_and_one_sequence_agree_with_a_batch(host_backend):
    """A sequence gives the same output alone as inside a padded batch."""
    sb.seed(3)
    layer = sb.LSTM(3, 4, dtype=np.float64)
    x = np.random.default_rng(1).standard_normal((3, 5, 3))
    ln = np.array([5, 1, 2])
    y = layer(x, ln)
    for b in range(3):
        assert_close(layer(x[b:b + 1, :ln[b]])[0], y[b, :ln[b]], 1e-12, 1e-12)


@pytest.mark.parametrize("mode,k", [("dense", None), ("topk", 2), ("unified", 3), ("random", 2)])
def test_bilstm_gradcheck(host_backend, mode, k):
    sb.seed(4)
    bi = sb.BiLSTM(3, 2, k=k, mode=mode, dtype=np.float64)
    rng = np.random.default_rng(3)
    x, R = rng.standard_normal((3, 4, 3)), rng.standard_normal((3, 4, 4))
    ln = np.array([4, 2, 1])
    y = bi(x, ln)
    dx = bi.backward(R)
    f, b = bi.fwd, bi.bwd
    P = [host(p.data) for p in bi.parameters()]
    xr = reverse_steps(x, ln)
    _, zf = run(x, ln, *P[:3])
    _, zb = run(xr, ln, *P[3:])
    kf, kb = kept_mask(f, 3, 4, ln), kept_mask(b, 3, 4, ln)

    def loss():
        yf = run(x, ln, *P[:3], kf, zf)[0]
        yb = reverse_steps(run(reverse_steps(x, ln), ln, *P[3:], kb, zb)[0], ln)
        return float(np.sum(np.concatenate([yf, yb], 2) * R))
    assert_close(y, np.concatenate([run(x, ln, *P[:3])[0],
                                    reverse_steps(run(xr, ln, *P[3:])[0], ln)], 2), 1e-12, 1e-12)
    assert_close(dx, numeric_grad(loss, x), **F64)
    for p, a in zip(bi.parameters(), P):
        if a.ndim == 2:
            assert_close(p.dense_grad(), numeric_grad(loss, a), **F64)


def test_reverse_steps_keeps_padding_in_place():
    a = np.arange(8).reshape(2, 4)
    assert reverse_steps(a, np.array([3, 4])).tolist() == [[2, 1, 0, 3], [7, 6, 5, 4]]


@pytest.mark.parametrize("kw,msg", [
    (dict(k=0), "out of range"), (dict(k=17), "out of range"),
    (dict(k=5, per_gate=True), "out of range"), (dict(mode="sparse"), "unknown mode")])
def test_lstm_rejects_bad_settings(kw, msg):
    with pytest.raises(ValueError, match=msg):
        sb.LSTM(3, 4, **kw)


def test_lstm_rejects_bad_input():
    layer = sb.LSTM(3, 4)
    with pytest.raises(ValueError, match=r"shape \(B, T, 3\)"):
        layer(np.zeros((2, 5)))
    with pytest.raises(ValueError, match=r"lengths must be in \[1, T=5\]"):
        layer(np.zeros((2, 5, 3)), [0, 5])
    with pytest.raises(ValueError, match=r"lengths must be \(2,\) integers"):
        layer(np.zeros((2, 5, 3)), [5])
    with pytest.raises(ValueError, match="at least one sequence"):
        layer(np.zeros((0, 5, 3)))


def test_cuda_backend_says_the_lstm_kernels_are_missing():
    pytest.importorskip("numba.cuda", reason="numba-cuda is not installed")
    with sb.using("cuda"):
        layer = sb.LSTM(3, 4, k=2)
        with pytest.raises(NotImplementedError, match="kernels.cuda has no lstm_forward"):
            layer(np.zeros((1, 2, 3), np.float32))

"""The Python API a PyTorch user guesses: state dicts, save/load, zero_grad, one
set of optimizer defaults, and errors that name the layer."""
import inspect
import os

import numpy as np
import pytest

import sparsebp as sb
from sparsebp import train as T


def _mlp(seed=0, dropout=0.1):
    sb.seed(seed)
    return sb.Sequential(sb.Linear(6, 8, k=3, mode="topk"), sb.ReLU(), sb.Dropout(dropout),
                         sb.Linear(8, 3))


def _step(model, opt, seed):
    r = np.random.default_rng(seed)
    x, y = r.standard_normal((4, 6)).astype(np.float32), r.integers(0, 3, 4)
    lf = sb.SoftmaxCrossEntropy()
    loss = lf(model(x), y)
    model.backward(lf.backward())
    opt.step()
    return loss


def test_state_dict_names_and_round_trip_through_a_file(tmp_path):
    model = _mlp()
    state = model.state_dict()
    assert list(state) == ["0.weight", "0.bias", "3.weight", "3.bias"]
    assert state["0.weight"].shape == (8, 6) and state["3.bias"].dtype == np.float32
    sb.save({"model": state}, tmp_path / "m.npz")
    other = _mlp(seed=1)
    assert not np.array_equal(other.state_dict()["0.weight"], state["0.weight"])
    other.load_state_dict(sb.load(tmp_path / "m.npz")["model"])
    for n, a in other.state_dict().items():
        assert np.array_equal(a, state[n]), n
    state["0.weight"][:] = 0                      # a copy: the model is not changed by it
    assert not np.all(other.layers[0].weight.data == 0)
    assert os.listdir(tmp_path) == ["m.npz"]      # and no temporary file


def test_load_state_dict_says_what_does_not_fit():
    model = _mlp()
    state = model.state_dict()
    with pytest.raises(ValueError, match=r"missing \['3.bias'\], unexpected \['9.bias'\]"):
        model.load_state_dict({**{k: v for k, v in state.items() if k != "3.bias"}, "9.bias": state["3.bias"]})
    with pytest.raises(ValueError, match=r"0.weight has shape \(6, 8\) in the state, \(8, 6\) in the model"):
        model.load_state_dict({**state, "0.weight": state["0.weight"].T})


@pytest.mark.parametrize("name", ["adam", "adagrad", "sgd"])
def test_optimizer_state_dict_resumes_training_exactly(name, tmp_path):
    a = _mlp(dropout=0.0)
    opt_a = T.OPTIMIZERS[name](a.parameters())
    _step(a, opt_a, 0)
    sb.save({"model": a.state_dict(), "opt": opt_a.state_dict()}, tmp_path / "c.npz")
    _step(a, opt_a, 1)
    _step(a, opt_a, 2)
    b = _mlp(seed=5, dropout=0.0)
    opt_b = T.OPTIMIZERS[name](b.parameters())
    state = sb.load(tmp_path / "c.npz")
    b.load_state_dict(state["model"])
    opt_b.load_state_dict(state.get("opt", {}))       # SGD has no state arrays
    _step(b, opt_b, 1)
    _step(b, opt_b, 2)
    for n, w in a.state_dict().items():
        assert np.array_equal(w, b.state_dict()[n]), n


def test_optimizer_load_state_dict_names_the_missing_entry():
    opt = sb.Adam(_mlp().parameters())
    state = opt.state_dict()
    del state["1.M"]
    with pytest.raises(ValueError, match=r"missing \['1.M'\]"):
        opt.load_state_dict(state)


def test_zero_grad_makes_a_step_change_nothing():
    model = _mlp()
    opt = sb.Adam(model.parameters())
    _step(model, opt, 0)
    before = model.state_dict()
    opt.zero_grad()
    opt.step()
    for n, a in model.state_dict().items():
        assert np.array_equal(a, before[n]), n
    assert all(not np.any(p.grad) for p in model.parameters())


def test_one_set_of_optimizer_defaults_for_python_and_cli():
    for name, cls in T.OPTIMIZERS.items():
        sig = inspect.signature(cls).parameters
        assert sig["lr"].default == T.DEFAULT_LR[name]
        assert sig["clip"].default == T.Config().clip == 5.0
    assert T.DEFAULT_LR == {"adam": 1e-3, "adagrad": 0.1, "sgd": 0.1}    # the paper's rates
    assert sb.AdaGrad(_mlp().parameters()).lr == 0.1


def test_every_module_is_callable():
    lf = sb.SoftmaxCrossEntropy()
    loss = lf(np.zeros((2, 3), np.float32), np.array([0, 2]))
    assert loss == pytest.approx(np.log(3))
    assert isinstance(lf, sb.Module)


@pytest.mark.parametrize("layer", [sb.Linear(3, 2), sb.ReLU(), sb.Tanh(), sb.Cube(), sb.Dropout(0.5)])
def test_list_input_names_the_layer(layer):
    with pytest.raises(TypeError, match=rf"{type(layer).__name__}\(.*got a list; convert it first: np.asarray"):
        layer([[1.0, 2.0, 3.0]])


def test_list_input_to_a_model_names_its_first_layer():
    with pytest.raises(TypeError, match=r"Linear\(6->8, topk, k=3\): expected an array of shape \(B, 6\)"):
        _mlp()([[0.0] * 6])


@pytest.mark.parametrize("layer", [sb.Linear(3, 2), sb.Linear(3, 2, k=1), sb.ReLU(), sb.Tanh(), sb.Cube(),
                                   sb.Dropout(0.5), sb.Embedding(4, 2)])
def test_backward_before_forward_names_the_layer(layer):
    with pytest.raises(RuntimeError, match=rf"{type(layer).__name__}\(.*\): backward\(\) called before forward\(\)"):
        layer.backward(np.zeros((1, 2), np.float32))


def test_loss_backward_before_forward():
    with pytest.raises(RuntimeError, match=r"SoftmaxCrossEntropy\(\): backward\(\) called before forward"):
        sb.SoftmaxCrossEntropy().backward()


@pytest.mark.parametrize("layer,x,dy_shape", [
    (sb.Linear(3, 2), np.ones((4, 3), np.float32), (4, 3)),
    (sb.Linear(3, 2, k=1), np.ones((4, 3), np.float32), (2, 2)),
    (sb.ReLU(), np.ones((4, 3), np.float32), (3, 4)),
    (sb.Tanh(), np.ones((4, 3), np.float32), (4,)),
    (sb.Cube(), np.ones((4, 3), np.float32), (4, 4)),
    (sb.Dropout(0.5), np.ones((4, 3), np.float32), (4, 2)),
    (sb.Embedding(5, 2), np.array([1, 2, 3]), (3, 3)),
])
def test_wrong_shaped_dy_names_the_layer_and_the_shape(layer, x, dy_shape):
    y = layer(x)
    with pytest.raises(ValueError, match=rf"{type(layer).__name__}\(.*\): dy must have the shape of the "
                                         rf"forward's output \({y.shape[0]}, {y.shape[1]}\), got"):
        layer.backward(np.zeros(dy_shape, np.float32))


@pytest.mark.parametrize("layer,x", [(sb.Linear(3, 2), np.ones((4, 3), np.float32)),
                                     (sb.ReLU(), np.ones((4, 3), np.float32)),
                                     (sb.Embedding(5, 2), np.array([1, 2]))])
def test_float64_dy_for_a_float32_layer_is_refused(layer, x):
    y = layer(x)
    with pytest.raises(TypeError, match=r"dy is float64 but the layer computes in float32; "
                                        r"convert it first: dy.astype\(np.float32\)"):
        layer.backward(np.zeros(y.shape, np.float64))
    layer.backward(np.zeros(y.shape, np.float32))                 # the right dtype works


@pytest.mark.parametrize("bad,msg", [
    (b"", "empty file"),
    (b"hello, world", "not an .npz file"),
    ("truncated", "damaged or cut short"),
    ("flipped", "damaged"),
])
def test_load_names_the_file_and_what_is_wrong(tmp_path, bad, msg):
    good = tmp_path / "good.npz"
    sb.save({"a": np.arange(1000, dtype=np.float32)}, good)
    raw = good.read_bytes()
    if bad == "truncated":
        bad = raw[:len(raw) // 2]
    elif bad == "flipped":
        i = raw.index(np.arange(1000, dtype=np.float32).tobytes()[400:404])
        bad = raw[:i] + bytes([raw[i] ^ 0x10]) + raw[i + 1:]
    p = tmp_path / "x.npz"
    p.write_bytes(bad)
    with pytest.raises(sb.LoadError, match=rf"{p}: .*{msg}"):
        sb.load(p)


class _Marker:
    """Unpickling this creates a file: proof that a load executed pickled code."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_load_never_unpickles(tmp_path):
    p, marker = tmp_path / "evil.npz", tmp_path / "ran"
    np.savez(p, x=np.array([_Marker(str(marker))], dtype=object))
    with pytest.raises(sb.LoadError, match=rf"{p}: holds pickled Python objects, which sparsebp never loads"):
        sb.load(p)
    assert not marker.exists()
    np.save(tmp_path / "evil2.npy", np.array([_Marker(str(marker))], dtype=object))
    with pytest.raises(sb.LoadError, match="not an .npz file"):
        sb.load(tmp_path / "evil2.npy")
    assert not marker.exists()


def test_save_refuses_objects_and_load_a_directory(tmp_path):
    with pytest.raises(TypeError, match="object array"):
        sb.save({"x": np.array([None])}, tmp_path / "o.npz")
    with pytest.raises(sb.LoadError, match="is a directory"):
        sb.load(tmp_path)
    with pytest.raises(FileNotFoundError, match="no such file"):
        sb.load(tmp_path / "none.npz")


def test_a_failed_write_names_the_file_and_leaves_no_temporary_file(tmp_path):
    from sparsebp.serialize import WriteError, atomic_write
    target = tmp_path / "taken"
    target.mkdir()                                  # a directory where the file should go
    with pytest.raises(WriteError, match=rf"could not write {target} \(3 bytes\)"):
        atomic_write(target, b"abc")
    assert os.listdir(tmp_path) == ["taken"] and os.listdir(target) == []

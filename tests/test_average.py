"""Weight averaging (`--average`, sparsebp/average.py): the kernel on every backend
against the reference, the average's arithmetic against a float64 oracle, the swap
in and out of the parameters, its state, and that a run scores the average while
training exactly as without it."""
import numpy as np
import pytest

import sparsebp as sb
from sparsebp import kernels
from sparsebp import train as T
from sparsebp.average import WeightAverage
from sparsebp.data import load_mnist
from sparsebp.tasks import mnist as mnist_task
from conftest import assert_close, host

R = kernels.get("numpy")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1,), (7,), (3, 13), (1, 1), (40, 9)])
@pytest.mark.parametrize("a", [1.0, 0.37, 0.004])
def test_moving_average_kernel_matches_reference(kern, shape, dtype, a):
    rng = np.random.default_rng(hash((shape, a)) % 2**32)
    S, W = rng.standard_normal(shape).astype(dtype), rng.standard_normal(shape).astype(dtype)
    want = S.copy()
    R.moving_average(want, W, a)
    assert_close(want, S.astype(np.float64) + a * (W.astype(np.float64) - S), 1e-6, 1e-6)
    got = kern.to_device(S.copy())
    kern.moving_average(got, kern.to_device(W), a)
    assert_close(host(got), want, 1e-7, 1e-6 if dtype == np.float32 else 1e-14)
    zero = kern.zeros(shape, dtype)                   # a = 1 from zeros copies W exactly
    kern.moving_average(zero, kern.to_device(W), 1.0)
    assert np.array_equal(host(zero), W)


def _params(rng, shapes=((4, 3), (4,))):
    return [sb.Parameter(rng.standard_normal(s).astype(np.float64)) for s in shapes]


def test_average_is_the_mean_then_an_exponential_average():
    rng = np.random.default_rng(0)
    params = _params(rng)
    decay, every = 0.8, 3                 # 1 - decay^3 = 0.488: the plain mean for 2 samples
    avg = WeightAverage(params, decay, every)
    samples = []
    for step in range(1, 23):
        for p in params:                  # what an optimizer step would do
            p.data += rng.standard_normal(p.data.shape)
        avg.update()
        if step % every == 0:
            samples.append([p.data.copy() for p in params])
    assert avg.steps == 22 and avg.samples == len(samples) == 7
    want = [np.zeros_like(p.data) for p in params]
    for n, sample in enumerate(samples, 1):
        a = max(1 - decay ** every, 1 / n)
        want = [w + a * (s - w) for w, s in zip(want, sample)]
    first_two = [(x + y) / 2 for x, y in zip(*samples[:2])]
    check = WeightAverage(_params(np.random.default_rng(0)), decay, every)   # the mean part alone
    for sample in samples[:2]:
        for p, s in zip(check.params, sample):
            p.data[...] = s
        for _ in range(every):
            check.update()
    for got, w in zip(check.averages, first_two):
        assert_close(got, w, 1e-12, 1e-12)
    for got, w in zip(avg.averages, want):
        assert_close(got, w, 1e-12, 1e-12)


def test_applied_swaps_the_average_in_and_the_weights_back_untouched():
    rng = np.random.default_rng(1)
    params = _params(rng)
    avg = WeightAverage(params, 0.5, every=1)
    own = [p.data for p in params]
    with avg.applied():                   # nothing sampled yet: the weights themselves
        assert all(p.data is o for p, o in zip(params, own))
    avg.update()
    for p in params:
        p.data += 1.0                     # the weights move on; the average stays at the sample
    before = [p.data.copy() for p in params]
    with avg.applied():
        for p, b in zip(params, before):
            assert_close(p.data, b - 1.0, 1e-12, 1e-12)
    for p, o, b in zip(params, own, before):
        assert p.data is o and np.array_equal(p.data, b)
    with pytest.raises(RuntimeError):     # an error inside the block still swaps back
        with avg.applied():
            raise RuntimeError
    assert all(p.data is o for p, o in zip(params, own))


def test_state_dict_round_trip_and_mismatch():
    rng = np.random.default_rng(2)
    params = _params(rng)
    avg = WeightAverage(params, 0.9, every=2)
    for _ in range(5):
        for p in params:
            p.data += 1.0
        avg.update()
    other = WeightAverage(_params(rng), 0.9, every=2)
    other.load_state_dict(avg.state_dict())
    assert (other.steps, other.samples) == (5, 2)
    for x, y in zip(other.averages, avg.averages):
        assert np.array_equal(x, y)
    with pytest.raises(ValueError, match="does not fit"):
        WeightAverage(_params(rng, ((4, 3),)), 0.9).load_state_dict(avg.state_dict())
    with pytest.raises(ValueError, match="shape"):
        WeightAverage(_params(rng, ((4, 3), (5,))), 0.9).load_state_dict(avg.state_dict())
    with pytest.raises(ValueError, match="decay"):
        WeightAverage(params, 1.0)


def test_a_run_scores_the_average_and_trains_as_without_it():
    data = load_mnist().head(400)
    quiet = dict(progress=False, log=lambda s: None)
    cfg = T.Config(hidden=24, k=5, epochs=2, batch_size=20, seed=3)
    plain = T.run(cfg, data, **quiet)
    averaged = T.run(T.Config(**{**vars(cfg), "average": 0.9}), data, **quiet)
    assert averaged["config"]["average"] == 0.9
    # the average is only read: the training losses are the same, bit for bit
    assert [e["train_loss"] for e in averaged["epochs"]] == [e["train_loss"] for e in plain["epochs"]]
    # and what is scored is the average: rebuild it by hand and score it
    sb.seed(cfg.seed)
    model = mnist_task.build_model(cfg, data)
    opt = T.build_optimizer(model.parameters(), cfg)
    avg = WeightAverage(model.parameters(), 0.9)
    T.train_epoch(model, opt, mnist_task, data, cfg.batch_size, average=avg)
    raw = mnist_task.accuracy(model, data.dev_x, data.dev_y)
    with avg.applied():
        scored = mnist_task.accuracy(model, data.dev_x, data.dev_y)
    assert scored == averaged["epochs"][0]["dev_acc"]
    assert raw == plain["epochs"][0]["dev_acc"] != scored


def test_average_of_a_model_trained_on_each_backend(backend):
    """The average of real training steps on every backend (the GPU's arrays
    included): the float64 oracle from host snapshots, the swap, the state."""
    sb.seed(4)
    model = sb.Sequential(sb.Linear(5, 4, k=2, mode="topk"), sb.Tanh(), sb.Linear(4, 3))
    opt = sb.Adam(model.parameters(), lr=0.05)
    loss_fn = sb.SoftmaxCrossEntropy()
    avg = WeightAverage(model.parameters(), 0.6, every=2)
    rng = np.random.default_rng(7)
    want = None
    for step in range(1, 9):
        x, y = rng.standard_normal((6, 5)).astype(np.float32), rng.integers(0, 3, 6)
        loss_fn(model(x), y)
        model.backward(loss_fn.backward())
        opt.step()
        avg.update()
        if step % 2 == 0:
            a = max(1 - 0.6 ** 2, 1 / avg.samples)
            now = [host(p.data).astype(np.float64) for p in model.parameters()]
            want = now if want is None else [w + a * (s - w) for w, s in zip(want, now)]
    own = [host(p.data).copy() for p in model.parameters()]
    with avg.applied():
        for p, w in zip(model.parameters(), want):
            assert_close(host(p.data), w, 1e-6, 1e-5)
    for p, o in zip(model.parameters(), own):
        assert np.array_equal(host(p.data), o)
    again = WeightAverage(model.parameters(), 0.6, every=2)
    again.load_state_dict(avg.state_dict())
    for x, y in zip(again.averages, avg.averages):
        assert np.array_equal(host(x), host(y))

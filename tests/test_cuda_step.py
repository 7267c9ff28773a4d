"""What one training step costs the cuda backend, counted (not timed): kernel
launches, device allocations and copies of one MNIST MLP step (784-8-8-10, Adam,
minibatch 2) in each mode, after a warm-up step. Runs in Numba's simulator,
which counts exactly what a GPU would (kernels/cuda_launch.py counts them).

A change that adds a launch or an allocation to the step fails here: lower the
numbers when a step gets cheaper, and say why in the commit.
"""
import numpy as np
import pytest

pytest.importorskip("numba.cuda", reason="numba-cuda is not installed")

import sparsebp as sb  # noqa: E402
from sparsebp import train as T  # noqa: E402
from sparsebp.tasks.mnist import build_mlp  # noqa: E402
from conftest import short_switch_interval  # noqa: E402

# mode -> (launches, of them the optimizer's, copies to the device, to the host) per step,
# the loss left on the device (as train_epoch does). The optimizer (Adam) launches once
# for all 6 parameters (adam_step; one per parameter, 6, before). To the device: the minibatch's x and labels (random mode: and
# each layer's drawn selection); to the host: top-k and random read each layer's union size.
# Before issue 17: 21, 25, 23, 23 launches and 14-18 allocations a step. Unified now:
# forward 4 (two GEMMs with bias + ReLU, the output GEMM, loss + its gradient), backward
# 5 (the output layer's GEMM pair with its bias sums; per hidden layer the ReLU's
# derivative + bias sums + selection in one pass, then the gathered GEMM pair), Adam 1.
STEP = {
    "dense": (10, 1, 2, 0),
    "topk": (14, 1, 2, 2),
    "unified": (10, 1, 2, 0),
    "random": (12, 1, 4, 2),
}


def _counted_steps(mode, steps=2):
    """[(counts of the step, counts of its optimizer step)] of a seeded 784-8-8-10 MLP."""
    with sb.using("cuda"), short_switch_interval():
        sb.seed(0)
        cfg = T.Config(mode=mode, k=3, hidden=8, layers=2, dropout=0.0)
        model = build_mlp(784, 10, cfg)
        opt = T.build_optimizer(model.parameters(), cfg)
        loss_fn = sb.SoftmaxCrossEntropy()
        rng = np.random.default_rng(0)
        out = []
        for _ in range(steps):
            x, y = rng.random((2, 784), dtype=np.float32), rng.integers(0, 10, 2)
            with sb.gpu_counters() as step:
                loss_fn.forward(model(x), y, read=False)
                model.backward(loss_fn.backward())
                with sb.gpu_counters() as update:
                    opt.step()
            out.append((step.as_dict(), update.as_dict()))
        return out


@pytest.mark.parametrize("mode", sorted(STEP))
def test_launches_and_allocations_per_step(mode):
    launches, opt_launches, to_device, to_host = STEP[mode]
    _, (step, update) = _counted_steps(mode)          # the second step: after the warm-up
    assert (step["launches"], update["launches"]) == (launches, opt_launches)
    assert (step["to_device"], step["to_host"]) == (to_device, to_host)
    assert step["allocations"] == 0


def test_counters_count_only_their_block():
    with sb.using("cuda"):
        K = sb.backend.K()
        with sb.gpu_counters() as outer:
            a = K.to_device(np.ones((2, 3), np.float32))
            with sb.gpu_counters() as inner:
                b = K.empty((2, 3))
                K.relu_forward(b, a)
                K.to_host(b)
    assert inner.as_dict() == {"launches": 1, "allocations": 1, "to_device": 0, "to_host": 1}
    assert outer.as_dict() == {"launches": 1, "allocations": 2, "to_device": 1, "to_host": 1}


def test_a_data_set_on_the_device_copies_nothing_per_step():
    """MNIST --on-device: the epoch's order goes over once, each minibatch is gathered
    on the device (one launch, the same examples as on the host), and a training step
    copies nothing either way."""
    from sparsebp.data.mnist import Split
    from sparsebp.tasks import mnist
    rng = np.random.default_rng(1)
    x, y = rng.random((7, 784), dtype=np.float32), rng.integers(0, 10, 7)
    split = Split(x, y, x[:2], y[:2], x[:2], y[:2])
    cfg = T.Config(mode="unified", k=3, hidden=8, layers=2, dropout=0.0, backend="cuda",
                   extra={"on_device": True})
    assert mnist.validate(cfg) == []
    assert mnist.validate(T.Config(extra={"on_device": True})) == ["--on-device needs --backend cuda"]
    with sb.using("cuda"), short_switch_interval():
        data = mnist.OnDevice(split)
        order = rng.permutation(7)
        with sb.gpu_counters() as epoch:
            ids = mnist.epoch_order(data, order)
        assert (epoch.to_device, epoch.allocations) == (1, 0)
        sb.seed(0)
        model = build_mlp(784, 10, cfg)
        opt = T.build_optimizer(model.parameters(), cfg)
        loss_fn = sb.SoftmaxCrossEntropy()
        for s in (0, 3):
            with sb.gpu_counters() as step:
                inputs, targets = mnist.batch(data, ids[s:s + 3])
                loss_fn.forward(model(inputs), targets, read=False)
                model.backward(loss_fn.backward())
                opt.step()
            assert np.array_equal(sb.backend.K().to_host(inputs), x[order[s:s + 3]])
            assert np.array_equal(sb.backend.K().to_host(targets), y[order[s:s + 3]])
        assert step.as_dict() == {"launches": STEP["unified"][0] + 1, "allocations": 0, "to_device": 0,
                                  "to_host": 0}


def test_an_epoch_on_device_data_is_the_epoch_on_host_data():
    """train_epoch with MNIST --on-device: the same seeded order, batches and loss as
    with the training set on the host."""
    from sparsebp.data.mnist import Split
    from sparsebp.tasks import mnist
    rng = np.random.default_rng(2)
    x, y = rng.random((7, 784), dtype=np.float32), rng.integers(0, 10, 7)
    split = Split(x, y, x[:2], y[:2], x[:2], y[:2])
    cfg = T.Config(mode="unified", k=3, hidden=8, layers=2, dropout=0.0, backend="cuda")
    losses = []
    with sb.using("cuda"), short_switch_interval():
        for data in (split, mnist.OnDevice(split)):
            sb.seed(0)
            model = build_mlp(784, 10, cfg)
            opt = T.build_optimizer(model.parameters(), cfg)
            losses.append(T.train_epoch(model, opt, mnist, data, 3)["train_loss"])
    assert np.isfinite(losses[0]) and abs(losses[0] - losses[1]) <= 1e-6 * abs(losses[0])

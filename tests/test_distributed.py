"""Data-parallel training over MPI (sparsebp/distributed.py), run with mpiexec -n 2.

Each test starts a small job (61 MNIST images, a 784-32-32-10 MLP, the NumPy
backend: no compile) through tests/mpi_worker.py or the CLI. Skipped where
mpi4py or mpiexec is missing (pip install ".[mpi]" brings both).
"""
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

import mpi_worker  # tests/ is on the path: pytest puts it there
from conftest import assert_close

MPIEXEC = shutil.which("mpiexec")
needs_mpi = pytest.mark.skipif(importlib.util.find_spec("mpi4py") is None or MPIEXEC is None,
                               reason='needs mpi4py and mpiexec: pip install ".[mpi]"')

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(ROOT, "tests", "mpi_worker.py")
TIMEOUT = 120                     # a hung job fails the test instead of the suite


def mpiexec(n, *args):
    """Run `mpiexec -n n python args...` from the repository root; returns the CompletedProcess."""
    env = dict(os.environ, PYTHONPATH=ROOT, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1",
               NUMBA_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return subprocess.run([MPIEXEC, "-n", str(n), sys.executable, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=TIMEOUT)


def _steps(path):
    """The weights after every step that a worker saved: [[param arrays] per step]."""
    with np.load(path) as z:
        steps = 1 + max(int(n.split(".")[0]) for n in z.files)
        n = 1 + max(int(n.split(".")[1]) for n in z.files if n.startswith("1."))
        return [[z[f"{s}.{i}"] for i in range(n)] for s in range(1, steps)]   # 0: warm-up


def _one_process(mode, dropout):
    """The weights after every step of the same training in this process."""
    import sparsebp as sb
    from sparsebp import train as T
    snapshots = []
    build = T.build_optimizer
    T.build_optimizer = mpi_worker.recording(snapshots)
    try:
        with sb.using("numpy"):
            T.run(mpi_worker.config(mode, dropout), mpi_worker.small_mnist(), progress=False,
                  log=lambda s: None)
    finally:
        T.build_optimizer = build
    return snapshots[1:]                                   # 0: warm-up


@needs_mpi
def test_exchange_sums_every_kind_of_gradient(tmp_path):
    # 3 ranks: dense, row-sparse (different and equal rows), mixed and empty (mpi_worker.rank_grads)
    res = mpiexec(3, WORKER, "exchange", str(tmp_path))
    assert res.returncode == 0, res.stderr
    assert sorted(os.listdir(tmp_path)) == ["ok0", "ok1", "ok2"]


@needs_mpi
@pytest.mark.parametrize("mode,dropout", [("dense", 0.0), ("topk", 0.0), ("random", 0.0),
                                          ("topk", 0.3), ("unified", 0.3), ("random", 0.3)])
def test_two_ranks_train_like_one_process(mode, dropout, tmp_path):
    res = mpiexec(2, WORKER, mode, str(dropout), str(tmp_path))
    assert res.returncode == 0, res.stderr
    r0, r1 = _steps(tmp_path / "rank0.npz"), _steps(tmp_path / "rank1.npz")
    assert len(r0) == len(r1) == 2 * 9                   # 2 epochs of ceil(61 / 7) steps
    for step, (a, b) in enumerate(zip(r0, r1)):          # the same update on every rank
        for i, (x, y) in enumerate(zip(a, b)):
            assert np.array_equal(x, y), f"ranks differ at step {step}, parameter {i}"
    one = _one_process(mode, dropout)       # the same dropout masks and random units too
    assert len(one) == len(r0)
    for step, (a, b) in enumerate(zip(r0, one)):
        for x, y in zip(a, b):
            assert_close(x, y, atol=1e-5, rtol=1e-4)
    assert not np.array_equal(one[0][0], one[-1][0])     # it did train


def test_a_shard_draws_its_rows_of_the_whole_minibatch():
    # backend.random_rows, without MPI: one process's draw for 4 sequences of 3, 1, 4
    # and 2 steps, then the draw of a process holding sequences 1 and 2 (its rows
    # [3, 8) of 10 when the rows are steps, [1, 3) of 4 when they are sequences)
    import sparsebp as sb
    from sparsebp.backend import set_rows_of_draw

    lengths, x = np.array([3, 1, 4, 2]), np.random.default_rng(0).standard_normal((4, 4, 3))
    layers = {"dropout": lambda: sb.Dropout(0.5), "random": lambda: sb.LSTM(3, 4, k=3, mode="random"),
              "per gate": lambda: sb.LSTM(3, 4, k=2, mode="random", per_gate=True)}

    def draw(name, sent):
        sb.seed(1)
        layer = layers[name]()
        if name == "dropout":                          # a mask over examples
            return np.asarray(layer(np.ones((len(sent), 6), np.float32)))
        ln = lengths[sent]
        layer(x[sent, :ln.max()], ln)
        layer.backward(np.ones((len(sent), ln.max(), 4)))
        return layer.selected                          # (B, T, kk), per live step

    with sb.using("numpy"):
        for name in layers:
            one = draw(name, np.arange(4))
            calls = []
            set_rows_of_draw(lambda rows: calls.append(rows) or ((1, 4) if name == "dropout" else (3, 10)))
            try:
                mine = draw(name, np.arange(1, 3))
            finally:
                set_rows_of_draw(None)
            assert calls == [2 if name == "dropout" else 5] * (4 if name == "per gate" else 1)
            assert np.array_equal(mine, one[1:3, :mine.shape[1]]), name
            assert not np.array_equal(one[1:3], one[:2])   # the rows differ: it took the right ones


@needs_mpi
@pytest.mark.parametrize("fault,msg", [("fail", "injected failure at step 3"), ("kill", "")])
def test_a_failing_rank_stops_the_job(fault, msg, tmp_path):
    t0 = time.perf_counter()
    res = mpiexec(2, WORKER, "topk", "0", str(tmp_path), fault)
    assert res.returncode != 0
    assert time.perf_counter() - t0 < TIMEOUT
    if msg:                      # the failing rank says who and why
        assert "rank 1 of 2" in res.stderr and msg in res.stderr, res.stderr
        assert "stopping all 2 ranks" in res.stderr
    else:                        # mpiexec says which rank died of what
        assert "signal 9" in res.stdout + res.stderr, res.stdout + res.stderr
    assert not (tmp_path / "rank0.npz").exists()         # rank 0 did not finish either


@needs_mpi
@pytest.mark.slow
def test_cli_results_and_resume(tmp_path):
    common = ["-m", "sparsebp", "train", "mnist", "--distributed", "--limit", "200", "--hidden", "16",
              "--k", "4", "--backend", "numpy", "--no-progress", "--seed", "2"]
    straight = mpiexec(2, *common, "--epochs", "2", "--out", str(tmp_path / "a.json"),
                       "--checkpoint", str(tmp_path / "a"))
    assert straight.returncode == 0, straight.stderr
    assert straight.stdout.count("epoch   2") == 1         # rank 0 alone prints
    r = json.loads((tmp_path / "a.json").read_text())
    assert r["distributed"]["ranks"] == 2
    for e in r["epochs"]:
        assert e["comm_s"] > 0 and e["comm_bytes_per_step"] > 0
    first = mpiexec(2, *common, "--epochs", "1", "--checkpoint", str(tmp_path / "b"),
                    "--out", str(tmp_path / "b.json"))
    assert first.returncode == 0, first.stderr
    resumed = mpiexec(2, *common, "--epochs", "2", "--checkpoint", str(tmp_path / "b"), "--resume",
                      "--out", str(tmp_path / "b.json"))
    assert resumed.returncode == 0, resumed.stderr
    with np.load(tmp_path / "a" / "checkpoint.npz") as a, np.load(tmp_path / "b" / "checkpoint.npz") as b:
        for n in a.files:
            if n.startswith("param."):
                assert np.array_equal(a[n], b[n]), n
    small = mpiexec(2, *common, "--batch-size", "1")
    assert small.returncode != 0 and "every minibatch needs at least 2 examples" in small.stderr
    wrong = mpiexec(1, *common, "--epochs", "3", "--checkpoint", str(tmp_path / "b"), "--resume")
    assert wrong.returncode != 0 and "resume it with mpiexec -n 2" in wrong.stderr


def test_without_mpi4py_the_cli_says_what_to_install(monkeypatch, capsys):
    from sparsebp import cli
    monkeypatch.setitem(sys.modules, "mpi4py", None)       # import mpi4py now fails
    assert cli.main(["train", "mnist", "--distributed", "--limit", "20", "--no-progress"]) == 1
    assert 'pip install "sparsebp[mpi]"' in capsys.readouterr().err


def test_the_step_time_model_is_the_ring_formulas():
    from benchmarks import mpi as bench
    r = {"bytes": {"allreduce": 1e6, "allgatherv": 0, "indices": 0}}
    beta = 10e9 / 8
    assert bench.model_comm_s(r, 2, 10) == pytest.approx(2 * bench.LATENCY_S + 1e6 / beta
                                                         + 2 * bench.LATENCY_S)
    r = {"bytes": {"allreduce": 0, "allgatherv": 1e5, "indices": 400}}
    P = 8
    want = (2 * (P - 1) * bench.LATENCY_S + 2 * ((P - 1) * bench.LATENCY_S + (P - 1) * 400 / beta)
            + (P - 1) * bench.LATENCY_S + (P - 1) * 1e5 / beta + P * 1e5 / bench.SUM_BYTES_PER_S)
    assert bench.model_comm_s(r, P, 10) == pytest.approx(want)

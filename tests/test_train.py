"""End to end: the CLI, results JSON, checkpoints and resume, a short MNIST training."""
import json
import os

import numpy as np
import pytest

import sparsebp as sb
from sparsebp import checkpoint, cli
from sparsebp import train as T
from sparsebp.data import load_mnist
from sparsebp.tasks import mnist as mnist_task


@pytest.fixture(scope="module")
def mnist():
    return load_mnist()


def _small(mnist, n=1000):
    """n training examples, the first 1000 dev and test examples: quick to evaluate."""
    return type(mnist)(mnist.train_x[:n], mnist.train_y[:n], mnist.dev_x[:1000],
                       mnist.dev_y[:1000], mnist.test_x[:1000], mnist.test_y[:1000])


def test_short_training_reaches_stated_accuracy(mnist):
    # 5,000 examples, one epoch of meProp (top-k, k = 20, AdaGrad as in the paper):
    # measured 91.6% dev accuracy here; 88% leaves room for other BLAS/CPU rounding
    cfg = T.Config(mode="topk", k=20, epochs=1, optimizer="adagrad", lr=0.1)
    res = T.run(cfg, mnist.head(5000), progress=False, log=lambda s: None)
    assert res["best"]["dev_acc"] >= 0.88, res["best"]


def test_cli_writes_results_json(tmp_path, capsys):
    out = tmp_path / "r.json"
    rc = cli.main(["train", "mnist", "--limit", "500", "--epochs", "2", "--hidden", "32",
                   "--k", "4", "--out", str(out), "--no-progress", "--seed", "3"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "epoch   2" in printed and "rows updated" in printed and "best dev epoch" in printed
    r = json.loads(out.read_text())
    assert r["config"]["k"] == 4 and r["config"]["lr"] == 1e-3 and r["config"]["batch_size"] == 10
    assert [e["epoch"] for e in r["epochs"]] == [1, 2]
    for e in r["epochs"]:
        assert {"epoch", "train_loss", "dev_acc", "test_acc", "forward_s", "backward_s",
                "update_s"} <= set(e)
        assert 0 <= e["dev_acc"] <= 1 and 0 <= e["test_acc"] <= 1
        assert 0 < e["rows_frac"] < 1            # meProp: a strict subset of rows per step
    best = max(r["epochs"], key=lambda e: e["dev_acc"])
    assert r["best"] == {k: best[k] for k in ("epoch", "dev_acc", "test_acc")}


@pytest.mark.parametrize("argv,msg", [
    (["--k", "0"], "--k must be in [1, --hidden = 500]"),
    (["--k", "501"], "--k must be in [1, --hidden = 500]"),
    (["--batch-size", "0"], "--batch-size must be >= 1"),
    (["--dropout", "1"], "--dropout must be in [0, 1)"),
    (["--average", "1"], "--average must be in [0, 1) (0: off)"),
    (["--resume"], "--resume needs --checkpoint DIR"),
    (["--lr", "-1"], "--lr must be > 0"),
])
def test_cli_rejects_bad_arguments(argv, msg, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["train", "mnist", *argv])
    assert e.value.code == 2
    assert msg in capsys.readouterr().err


def test_cli_reports_a_bad_data_dir(tmp_path, capsys):
    rc = cli.main(["train", "mnist", "--data", str(tmp_path), "--no-progress", "--out", str(tmp_path / "r.json")])
    assert rc == 1
    assert "train-images-idx3-ubyte" in capsys.readouterr().err


def test_cli_reports_missing_gpu(capsys, monkeypatch):
    from sparsebp import gpu

    def no_device():
        raise gpu.NoCudaDevice("no CUDA device found; use --backend cpu")
    monkeypatch.setattr(gpu, "require_device", no_device)
    rc = cli.main(["train", "mnist", "--backend", "cuda", "--no-progress"])
    assert rc == 1
    assert "no CUDA device found; use --backend cpu" in capsys.readouterr().err


def _weights(ckpt_dir):
    state = sb.load(os.path.join(ckpt_dir, checkpoint.FILE))
    return {f"{part}/{n}": a for part in ("model", "optimizer", "average") for n, a in state.get(part, {}).items()}


@pytest.mark.parametrize("average", [0.0, 0.9])
def test_resume_equals_an_uninterrupted_run(mnist, tmp_path, average):
    # random-k and dropout draw from the generator: resume must restore it too;
    # with --average, the average of the weights too (it is what the scores read)
    data = _small(mnist, 600)
    cfg = T.Config(mode="random", k=5, hidden=24, dropout=0.2, epochs=3, seed=7, average=average)
    quiet = dict(progress=False, log=lambda s: None)
    full = T.run(cfg, data, ckpt_dir=str(tmp_path / "a"), **quiet)
    part = T.run(T.Config(**{**vars(cfg), "epochs": 1}), data, ckpt_dir=str(tmp_path / "b"), **quiet)
    assert len(part["epochs"]) == 1
    resumed = T.run(cfg, data, ckpt_dir=str(tmp_path / "b"), resume=True, **quiet)
    a, b = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert a.keys() == b.keys()
    for n in a:
        assert np.array_equal(a[n], b[n]), n
    strip = lambda r: [{k: v for k, v in e.items() if not k.endswith("_s")} for e in r["epochs"]]  # noqa: E731
    assert strip(resumed) == strip(full)
    assert any(n.startswith("average/") for n in a) == bool(average)


def test_resume_refuses_other_settings_and_missing_checkpoint(mnist, tmp_path):
    data = _small(mnist, 200)
    quiet = dict(progress=False, log=lambda s: None)
    T.run(T.Config(hidden=16, k=4, epochs=1), data, ckpt_dir=str(tmp_path), **quiet)
    with pytest.raises(ValueError, match="k=4 there, 3 here"):
        T.run(T.Config(hidden=16, k=3, epochs=2), data, ckpt_dir=str(tmp_path), resume=True, **quiet)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        T.run(T.Config(), data, ckpt_dir=str(tmp_path / "none"), resume=True, **quiet)


def test_checkpoint_write_is_atomic(mnist, tmp_path, monkeypatch):
    data = _small(mnist, 200)
    quiet = dict(progress=False, log=lambda s: None)
    T.run(T.Config(hidden=16, k=4, epochs=1), data, ckpt_dir=str(tmp_path), **quiet)
    before = (tmp_path / checkpoint.FILE).read_bytes()

    def crash(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(OSError):
        T.run(T.Config(hidden=16, k=4, epochs=1, seed=2), data, ckpt_dir=str(tmp_path), overwrite=True, **quiet)
    assert (tmp_path / checkpoint.FILE).read_bytes() == before   # the old one, whole
    assert os.listdir(tmp_path) == [checkpoint.FILE]             # and no temporary file


def test_divergence_is_reported_not_hidden(mnist):
    sb.seed(0)
    cfg = T.Config(mode="dense", hidden=8, optimizer="sgd", lr=1e30, clip=0)
    model = mnist_task.build_mlp(784, 10, cfg)
    opt = T.build_optimizer(model.parameters(), cfg)
    with pytest.raises(FloatingPointError, match="training diverged"):
        with np.errstate(all="ignore"):
            T.train_epoch(model, opt, mnist_task, mnist.head(200), 10)


def test_report_table(tmp_path, capsys):
    files = []
    for mode in ("dense", "topk"):
        out = tmp_path / f"{mode}.json"
        assert cli.main(["train", "mnist", "--limit", "300", "--epochs", "1", "--hidden", "16", "--k", "4",
                         "--mode", mode, "--out", str(out), "--no-progress", "--paper"]) == 0
        files.append(str(out))
    capsys.readouterr()
    assert cli.main(["report", *files]) == 0
    table = capsys.readouterr().out.strip().splitlines()
    assert len(table) == 4 and table[2].startswith("| dense, adam") and "(1.0x)" in table[2]
    assert table[3].startswith("| topk k=4, adam, batch 10, seed 1 |")


def test_build_mlp_follows_the_config():
    cfg = T.Config(mode="unified", k=3, hidden=8, layers=3, dropout=0.1, activation="tanh")
    model = mnist_task.build_mlp(5, 4, cfg)
    kinds = [type(m).__name__ for m in model.layers]
    assert kinds == ["Linear", "Tanh", "Dropout"] * 3 + ["Linear"]
    lin = [m for m in model.layers if isinstance(m, sb.Linear)]
    assert [(m.mode, m.k) for m in lin] == [("unified", 3)] * 3 + [("dense", None)]
    assert (lin[0].n_in, lin[-1].n_out) == (5, 4)


def test_cli_adam_and_init_flags_reach_the_run(tmp_path, monkeypatch):
    seen = {}
    real = T.build_optimizer

    def spy(params, cfg):
        seen["opt"] = real(params, cfg)
        return seen["opt"]
    monkeypatch.setattr(T, "build_optimizer", spy)
    out = tmp_path / "r.json"
    assert cli.main(["train", "mnist", "--limit", "100", "--epochs", "1", "--hidden", "8", "--k", "2",
                     "--adam-eps", "1e-6", "--bias-correction", "none", "--init", "glorot",
                     "--out", str(out), "--no-progress"]) == 0
    c = json.loads(out.read_text())["config"]
    assert (c["adam_eps"], c["bias_correction"], c["init"]) == (1e-6, "none", "glorot")
    assert (seen["opt"].eps, seen["opt"].bias_correction) == (1e-6, "none")


@pytest.mark.parametrize("argv,want", [
    ([], ("none", 0.1)),                                   # the default: the stable top-k + Adam
    (["--paper"], ("row", 0.0)),                           # the paper's settings
    (["--paper", "--dropout", "0.3"], ("row", 0.3)),       # an explicit flag still wins
    (["--bias-correction", "global"], ("global", 0.1)),
])
def test_mnist_defaults_and_paper_flag(argv, want, monkeypatch):
    seen = {}
    monkeypatch.setattr(T, "run", lambda cfg, data, **kw: seen.setdefault("cfg", cfg) and
                        {"best": {"epoch": 1, "dev_acc": 0.5, "test_acc": 0.5}})
    monkeypatch.setattr(mnist_task, "load", lambda cfg: load_mnist().head(10))
    assert cli.main(["train", "mnist", "--no-progress", "--out", os.devnull, *argv]) == 0
    cfg = seen["cfg"]
    assert (cfg.bias_correction, cfg.dropout) == want
    assert (cfg.optimizer, cfg.lr, cfg.k, cfg.batch_size, cfg.init, cfg.adam_eps) == ("adam", 1e-3, 20, 10, "csharp", 1e-8)

"""The POS task: features and index arrays, the tagger's gradients (float64 finite
differences), evaluation, and the task end to end through the CLI on tiny samples."""
import json
import os
import shutil

import numpy as np
import pytest

import sparsebp as sb
from conftest import assert_close
from sparsebp import cli
from sparsebp import train as T
from sparsebp.data import read_conllu
from sparsebp.layers import SoftmaxCrossEntropy
from sparsebp.tasks import pos as P
from test_layers import numeric_grad

TINY = os.path.join(os.path.dirname(__file__), "data", "tiny.conllu")
# dev/test with words and a tag the training set never saw
UNSEEN = """\
1\tZorblax\tzorblax\tPROPN\tNNP\t_\t2\tnsubj\t_\t_
2\tsat\tsit\tVERB\tVBD\t_\t0\troot\t_\t_
3\there\there\tADV\tRB\t_\t2\tadvmod\t_\t_
4\t!\t!\tPUNCT\tUH\t_\t2\tpunct\t_\t_

"""


@pytest.fixture
def data_dir(tmp_path):
    """The tiny sample as train, dev and test."""
    for split in ("train", "dev", "test"):
        shutil.copy(TINY, tmp_path / f"{split}.conllu")
    return str(tmp_path)


def load(data_dir, **extra):
    return P.load(T.Config(task="pos", data=data_dir, extra={"min_count": 1, **extra}))


def test_features():
    assert P.features("Running") == ("running", "ng", "ing", "Xx")
    assert [P.shape(w) for w in ("the", "USA", "McDonald", "1984", "e-mail", "3-D", ",")] == \
        ["x", "X", "xX", "-|d", "x|-", "X|d|-", "-"]


def test_index_arrays_and_batch(data_dir):
    c = load(data_dir)
    train = read_conllu(TINY)
    sp = c.splits["train"]
    assert len(sp) == len(train) and sp.ids.shape == (sum(map(len, train)), P.N_FEATURES)
    (ids, mask, lengths), y = sp.batch(np.array([2, 0]))
    assert lengths.tolist() == [len(train[2]), len(train[0])]
    assert mask.shape == (2, max(lengths)) and mask.sum() == len(y) == len(ids)
    want = train[2].xpos + train[0].xpos                 # sentence-major, real words only
    assert [c.tags[t] for t in y] == want
    words = train[2].form + train[0].form
    assert [c.vocabs[0].itos[i] for i in ids[:, 0]] == [w.lower() for w in words]
    for f in range(1, P.N_FEATURES):                     # each feature in its own range of the table
        assert (ids[:, f] >= c.offsets[f]).all() and (ids[:, f] < c.offsets[f] + len(c.vocabs[f])).all()
    assert ids.max() < c.n_ids


def test_tagset_switch(data_dir):
    x, u = load(data_dir), load(data_dir, tagset="upos")
    train = read_conllu(TINY)
    assert set(x.tags) == {t for s in train for t in s.xpos} and "NN" in x.tags
    assert set(u.tags) == {t for s in train for t in s.upos} and "NOUN" in u.tags
    assert [u.tags[t] for t in u.splits["dev"].tags[:4]] == train[0].upos


def test_unknown_words_and_tags(data_dir, tmp_path):
    for split in ("dev", "test"):
        (tmp_path / f"{split}.conllu").write_text(UNSEEN)
    c = load(data_dir)
    dev = c.splits["dev"]
    assert dev.ids[0, 0] == 0 and dev.ids[1, 0] != 0     # "zorblax" unknown, "sat" known
    assert dev.ids[0, 3] == c.offsets[3] + c.vocabs[3]["Xx"]   # its shape still says Title case
    assert dev.tags[3] == -1                              # UH: never in training, never right
    # min_count 2: words seen once in training are unknown (the unknown vector is trained)
    c2 = load(data_dir, min_count=2)
    assert "coffee" not in c2.vocabs[0] and "the" in c2.vocabs[0]
    assert (c2.splits["train"].ids[:, 0] == 0).any()
    cfg = T.Config(task="pos", hidden=8, k=4, extra={"embed": 4})
    sb.seed(1)
    m = P.build_model(cfg, c)
    acc = P.evaluate(m, c, "dev")["acc"]
    assert 0 <= acc <= 0.75                                # the UH word is always wrong


def _tagger(mode, k, dropout=0.0, layers=1):
    sb.seed(3)
    return P.Tagger(n_ids=11, n_features=2, embed=3, hidden=4, n_tags=5, k=k, mode=mode,
                    dropout=dropout, layers=layers, dtype=np.float64)


def _inputs():
    rs = np.random.default_rng(0)
    lengths = np.array([4, 1, 3], np.int32)
    mask = np.arange(4)[None, :] < lengths[:, None]
    ids = rs.integers(0, 11, (int(mask.sum()), 2)).astype(np.int32)
    ids[1] = ids[0]                                        # a repeated id: its gradient sums
    y = rs.integers(0, 5, len(ids))
    return (ids, mask, lengths), y


@pytest.mark.parametrize("backend_name,layers", [("numpy", 1), ("cpu", 1), ("cpu", 2)])
def test_tagger_gradcheck(backend_name, layers):
    """Dense backward of the whole tagger (embedding, scatter into padding, BiLSTMs,
    gather, output layer) against central differences, with padding."""
    with sb.using(backend_name):
        m = _tagger("dense", None, layers=layers)
        inputs, y = _inputs()
        loss_fn = SoftmaxCrossEntropy()

        def f():
            return float(loss_fn(m(inputs), y))
        f()
        m.backward(loss_fn.backward())
        for p in m.parameters():
            analytic = p.dense_grad() if hasattr(p, "dense_grad") else p.grad
            analytic = np.array(sb.backend.K().to_host(analytic))
            assert_close(analytic, numeric_grad(f, p.data), atol=1e-7, rtol=1e-5)


def test_tagger_k_full_is_dense_and_pads_untouched():
    inputs, y = _inputs()
    grads = []
    for mode, k in [("dense", None), ("topk", 16)]:          # 4H = 16
        m = _tagger(mode, k)
        loss_fn = SoftmaxCrossEntropy()
        loss_fn(m(inputs), y)
        m.backward(loss_fn.backward())
        grads.append([np.array(p.dense_grad()) for p in m.parameters()])
    for a, b in zip(*grads):
        assert_close(a, b, atol=1e-12, rtol=1e-10)
    m = _tagger("topk", 2)                                    # padding is never embedded
    m(inputs)
    assert len(m.embedding.saved("ids")) == 2 * inputs[1].sum()


def test_timed_once_each():
    """The loop's backward timer wraps the two LSTMs and the output layer once each
    (BiLSTM has no `mode`: its time is its children's, not counted twice)."""
    m = _tagger("topk", 2, layers=2)
    timed = T.timed_layers(m)
    assert timed == [m.lstm.fwd, m.lstm.bwd, m.more[0].fwd, m.more[0].bwd, m.out]


def test_predict_batching_does_not_change_predictions(data_dir):
    c = load(data_dir)
    sb.seed(2)
    m = P.build_model(T.Config(task="pos", hidden=8, k=4, dropout=0.5, extra={"embed": 4}), c)
    sp = c.splits["dev"]
    one, many = P.predict(m, sp, batch_size=1), P.predict(m, sp, batch_size=3)
    assert (one == many).all() and len(one) == len(sp.tags)
    assert P.evaluate(m, c, "dev")["acc"] == pytest.approx(float(np.mean(one == sp.tags)))


@pytest.mark.parametrize("mode", ["dense", "topk"])
def test_cli_end_to_end(data_dir, tmp_path, capsys, mode):
    out = tmp_path / "r.json"
    rc = cli.main(["train", "pos", "--data", data_dir, "--epochs", "4", "--hidden", "16", "--k", "4",
                   "--embed", "8", "--min-count", "1", "--lr", "0.02", "--dropout", "0", "--mode", mode,
                   "--out", str(out), "--no-progress"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "xpos tags" in printed and "best dev epoch" in printed
    r = json.loads(out.read_text())
    assert r["config"]["task"] == "pos" and r["config"]["extra"]["tagset"] == "xpos"
    assert r["config"]["data"] == data_dir
    losses = [e["train_loss"] for e in r["epochs"]]
    assert losses[-1] < losses[0]
    need = {"epoch", "train_loss", "dev_acc", "test_acc", "forward_s", "backward_s",
            "linear_backward_s", "update_s", "rows_frac"}
    for e in r["epochs"]:
        assert need <= set(e) and 0 <= e["dev_acc"] <= 1 and e["linear_backward_s"] <= e["backward_s"]
    assert r["best"]["dev_acc"] == max(e["dev_acc"] for e in r["epochs"])
    assert (r["epochs"][-1]["rows_frac"] < 1) == (mode == "topk")


def test_cli_upos(data_dir, tmp_path, capsys):
    out = tmp_path / "r.json"
    assert cli.main(["train", "pos", "--data", data_dir, "--tagset", "upos", "--epochs", "1",
                     "--hidden", "8", "--k", "2", "--embed", "4", "--out", str(out), "--no-progress"]) == 0
    assert "upos tags" in capsys.readouterr().out


def test_cli_bad_data(tmp_path, capsys, monkeypatch):
    assert cli.main(["train", "pos", "--data", str(tmp_path), "--no-progress"]) == 1
    assert "train.conllu not found" in capsys.readouterr().err
    (tmp_path / "train.conllu").write_text("1\tword\n")
    for split in ("dev", "test"):
        shutil.copy(TINY, tmp_path / f"{split}.conllu")
    assert cli.main(["train", "pos", "--data", str(tmp_path), "--no-progress"]) == 1
    assert "train.conllu, line 1" in capsys.readouterr().err
    monkeypatch.delenv(P.DATA_ENV, raising=False)
    with pytest.raises(SystemExit):
        cli.main(["train", "pos", "--no-progress"])
    err = capsys.readouterr().err
    assert "pos needs --data DIR" in err and P.DATA_ENV in err
    with pytest.raises(SystemExit):
        cli.main(["train", "pos", "--data", str(tmp_path), "--layers", "0", "--k", "999"])
    err = capsys.readouterr().err
    assert "--layers must be >= 1" in err and "--k must be in [1, 256]" in err


def test_data_from_environment(data_dir, tmp_path, monkeypatch):
    root = tmp_path / "root"
    shutil.copytree(data_dir, root / P.DATA_NAME, ignore=shutil.ignore_patterns("root"))
    monkeypatch.setenv(P.DATA_ENV, str(root))
    cfg = T.Config(task="pos", hidden=8, k=2, layers=1)
    assert P.validate(cfg) == []
    c = P.load(cfg)
    assert cfg.data == str(root / P.DATA_NAME) and len(c.splits["test"]) == len(read_conllu(TINY))

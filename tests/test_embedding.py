"""Embedding: the kernels against the reference, a finite-difference check, and
that only the batch's rows get a gradient (and an update)."""
import numpy as np
import pytest

import sparsebp as sb
from sparsebp import kernels
from conftest import assert_close
from test_layers import numeric_grad

R = kernels.get("numpy")


@pytest.mark.parametrize("vocab,dim,N", [(1, 1, 1), (7, 3, 1), (7, 3, 12), (50, 17, 33)])
def test_embedding_kernels_match_reference(backend, vocab, dim, N):
    rng = np.random.default_rng(vocab * 31 + N)
    W = rng.normal(size=(vocab, dim)).astype(np.float32)
    ids = rng.integers(0, vocab, N).astype(np.int32)         # repeats: a word twice in a batch
    dy = rng.normal(size=(N, dim)).astype(np.float32)
    K = sb.backend.K()
    y = K.empty((N, dim), np.float32)
    K.embedding_forward(y, K.to_device(W), K.to_device(ids))
    assert_close(K.to_host(y), W[ids], 0, 0)
    want = np.full((vocab, dim), 7.0, np.float32)
    got = K.to_device(want.copy())
    R.embedding_backward(want, dy, ids)
    K.embedding_backward(got, K.to_device(dy), K.to_device(ids))
    assert_close(K.to_host(got), want)
    untouched = np.setdiff1d(np.arange(vocab), ids)
    assert (K.to_host(got)[untouched] == 7.0).all()          # other rows left as they were
    dense = np.zeros((vocab, dim))
    np.add.at(dense, ids, dy.astype(np.float64))
    assert_close(want[np.unique(ids)], dense[np.unique(ids)])


def test_embedding_gradcheck(backend):
    sb.seed(3)
    emb = sb.Embedding(6, 4, dtype=np.float64)
    ids = np.array([2, 5, 2, 0, 5, 5])
    R_ = np.random.default_rng(1).normal(size=(6, 4))
    emb(ids)
    emb.backward(sb.backend.K().to_device(R_))
    W = sb.backend.K().to_host(emb.weight.data)
    Wh = np.array(W)

    def f():
        return float((Wh[ids] * R_).sum())
    assert_close(emb.weight.dense_grad(), numeric_grad(f, Wh), atol=1e-6, rtol=1e-5)
    assert sb.backend.K().to_host(emb.weight.rows).tolist() == [0, 2, 5]


def test_embedding_update_touches_only_the_batch_words(backend):
    sb.seed(0)
    emb = sb.Embedding(10, 3)
    opt = sb.Adam(emb.parameters())
    before = np.array(sb.backend.K().to_host(emb.weight.data))
    y = emb(np.array([1, 4, 4]))
    emb.backward(sb.backend.K().to_device(np.ones((3, 3), np.float32)))
    opt.step()
    after = sb.backend.K().to_host(emb.weight.data)
    changed = np.flatnonzero((after != before).any(1)).tolist()
    assert changed == [1, 4] and y.shape == (3, 3)


def test_embedding_rejects_ids_out_of_range():
    emb = sb.Embedding(5, 2)
    with pytest.raises(ValueError, match=r"ids must be in \[0, 5\)"):
        emb(np.array([0, 5]))

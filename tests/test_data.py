"""The IDX loader: real MNIST, and every malformed file gives an error naming it."""
import gzip
import struct

import numpy as np
import pytest

from sparsebp.data import FILES, IDXError, load_mnist, read_idx
from sparsebp.data import mnist as M

CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C,
         np.float32: 0x0D, np.float64: 0x0E}


def idx_bytes(a):
    """The IDX encoding of a: header, then big-endian data."""
    a = np.asarray(a)
    head = bytes([0, 0, CODES[a.dtype.type], a.ndim]) + b"".join(struct.pack(">I", d) for d in a.shape)
    return head + a.astype(a.dtype.newbyteorder(">")).tobytes()


def write_set(d, n_train=12, n_test=5, gz=True, labels_train=None):
    rng = np.random.default_rng(0)
    arrays = {"train_images": rng.integers(0, 256, (n_train, 4, 3), dtype=np.uint8),
              "train_labels": np.arange(n_train, dtype=np.uint8) % 10 if labels_train is None else labels_train,
              "test_images": rng.integers(0, 256, (n_test, 4, 3), dtype=np.uint8),
              "test_labels": np.arange(n_test, dtype=np.uint8) % 10}
    for key, a in arrays.items():
        raw = idx_bytes(a)
        if gz:
            (d / (FILES[key] + ".gz")).write_bytes(gzip.compress(raw))
        else:
            (d / FILES[key]).write_bytes(raw)
    return arrays


@pytest.mark.parametrize("dtype", list(CODES))
@pytest.mark.parametrize("gz", [True, False])
def test_round_trip_every_dtype(tmp_path, dtype, gz):
    a = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
    raw = idx_bytes(a)
    p = tmp_path / "x.idx"                       # gzip is detected by content, not by name
    p.write_bytes(gzip.compress(raw) if gz else raw)
    b = read_idx(p)
    assert b.dtype == np.dtype(dtype) and np.array_equal(a, b)


@pytest.mark.parametrize("gz", [True, False])
def test_load_small_set_split_and_scaling(tmp_path, gz):
    arrays = write_set(tmp_path, gz=gz)
    s = load_mnist(tmp_path, dev_size=4)
    assert s.train_x.shape == (8, 12) and s.dev_x.shape == (4, 12) and s.test_x.shape == (5, 12)
    assert s.train_x.dtype == np.float32 and s.train_y.dtype == np.int64 and s.train_x.flags.c_contiguous
    flat = arrays["train_images"].reshape(12, -1) / np.float32(255)
    assert np.array_equal(s.dev_x, flat[8:])      # the LAST dev_size images are dev
    assert np.array_equal(s.train_x, flat[:8])
    assert s.dev_y.tolist() == [8, 9, 0, 1]
    assert s.train_x.min() >= 0 and s.train_x.max() <= 1


def test_bad_magic(tmp_path):
    p = tmp_path / "bad"
    p.write_bytes(b"\x01\x02\x08\x01" + b"\0" * 8)
    with pytest.raises(IDXError, match=r"bad: bad IDX magic number 0x01020801"):
        read_idx(p)


def test_unknown_dtype_code(tmp_path):
    p = tmp_path / "bad"
    p.write_bytes(b"\0\0\x07\x01" + struct.pack(">I", 1) + b"\0")
    with pytest.raises(IDXError, match="unknown IDX dtype code 0x07"):
        read_idx(p)


def test_truncated_and_trailing(tmp_path):
    raw = idx_bytes(np.zeros((10, 2, 2), np.uint8))
    p = tmp_path / "t.gz"
    p.write_bytes(gzip.compress(raw[:-7]))
    with pytest.raises(IDXError, match=r"t.gz: truncated: expected 40 bytes .* found 33"):
        read_idx(p)
    p.write_bytes(raw + b"xx")
    with pytest.raises(IDXError, match="trailing bytes: expected 40 bytes .* found 42"):
        read_idx(p)
    p.write_bytes(raw[:9])
    with pytest.raises(IDXError, match="truncated header"):
        read_idx(p)


def test_count_mismatch_names_both_files(tmp_path):
    write_set(tmp_path, labels_train=np.zeros(11, np.uint8))
    with pytest.raises(IDXError, match=r"train-images-idx3-ubyte.gz has 12 images but .*"
                                       r"train-labels-idx1-ubyte.gz has 11 labels"):
        load_mnist(tmp_path)


def test_missing_file_and_dir(tmp_path):
    write_set(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        load_mnist(tmp_path)
    with pytest.raises(FileNotFoundError, match="no such directory"):
        load_mnist(tmp_path / "nope")


def test_bad_dev_size(tmp_path):
    write_set(tmp_path)
    with pytest.raises(ValueError, match=r"dev_size=12 must be in \[1, 11\]"):
        load_mnist(tmp_path, dev_size=12)


def test_sha256_mismatch_is_caught_for_the_default_set(tmp_path, monkeypatch):
    write_set(tmp_path)
    monkeypatch.setenv("SPARSEBP_MNIST", str(tmp_path))
    with pytest.raises(IDXError, match="sha256 mismatch, the file is corrupt or not the original MNIST"):
        load_mnist()                           # the default set is verified
    assert len(load_mnist(tmp_path, dev_size=2).train_x) == 10   # a user's set is not


def test_real_mnist():
    s = load_mnist()
    assert (len(s.train_x), len(s.dev_x), len(s.test_x)) == (55000, 5000, 10000)
    assert s.train_x.shape[1] == 784
    assert np.bincount(np.r_[s.train_y, s.dev_y]).tolist() == \
        [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert np.bincount(s.test_y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    mean = np.r_[s.train_x, s.dev_x].mean(dtype=np.float64) * 255
    assert mean == pytest.approx(33.318, rel=1e-4)


def test_sha_table_covers_every_file():
    assert set(M.MNIST_SHA256) == set(FILES.values())

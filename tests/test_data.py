"""The IDX loader: real MNIST, and every malformed file gives an error naming it."""
import dataclasses
import gzip
import hashlib
import struct

import numpy as np
import pytest

from sparsebp.data import (FILES, MNIST_SHA256, IDXError, default_mnist_dir, load_idx_set,
                           load_mnist, read_idx)

CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C,
         np.float32: 0x0D, np.float64: 0x0E}


def idx_bytes(a):
    """The IDX encoding of a: header, then big-endian data."""
    a = np.asarray(a)
    head = bytes([0, 0, CODES[a.dtype.type], a.ndim]) + b"".join(struct.pack(">I", d) for d in a.shape)
    return head + a.astype(a.dtype.newbyteorder(">")).tobytes()


def write_idx(path, a, gz):
    raw = idx_bytes(a)
    path.write_bytes(gzip.compress(raw) if gz else raw)


def write_set(d, n_train=12, n_test=5, gz=True, **override):
    """Four small MNIST-layout files in d; override replaces any of the arrays.

    Image i of the training set is filled with the value i, so the split is visible.
    """
    rng = np.random.default_rng(0)
    arrays = {"train_images": np.repeat(np.arange(n_train, dtype=np.uint8), 12).reshape(n_train, 4, 3),
              "train_labels": np.arange(n_train, dtype=np.uint8) % 10,
              "test_images": rng.integers(0, 256, (n_test, 4, 3), dtype=np.uint8),
              "test_labels": np.arange(n_test, dtype=np.uint8) % 10}
    arrays.update(override)
    for key, a in arrays.items():
        write_idx(d / (FILES[key] + (".gz" if gz else "")), a, gz)
    return arrays


@pytest.mark.parametrize("dtype", list(CODES))
@pytest.mark.parametrize("gz", [True, False])
def test_round_trip_every_dtype(tmp_path, dtype, gz):
    a = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
    p = tmp_path / "x.idx"
    write_idx(p, a, gz)
    b = read_idx(p)
    assert b.dtype == np.dtype(dtype) and b.dtype.isnative and np.array_equal(a, b)
    b[0, 0, 0] = 1                               # a writable array, not a view of the bytes


def test_gzip_is_detected_by_content_not_name(tmp_path):
    a = np.arange(6, dtype=np.uint8)
    write_idx(tmp_path / "raw.gz", a, gz=False)          # a raw file with a .gz name
    write_idx(tmp_path / "packed.idx", a, gz=True)       # a gzip file without one
    assert np.array_equal(read_idx(tmp_path / "raw.gz"), a)
    assert np.array_equal(read_idx(tmp_path / "packed.idx"), a)


def test_scalar_and_empty(tmp_path):
    write_idx(tmp_path / "s", np.array(7, np.int32), gz=False)     # 0-D: no dimensions
    assert read_idx(tmp_path / "s").shape == () and read_idx(tmp_path / "s") == 7
    write_idx(tmp_path / "e", np.zeros((0, 5), np.uint8), gz=True)
    assert read_idx(tmp_path / "e").shape == (0, 5)


@pytest.mark.parametrize("gz", [True, False])
def test_load_small_set_split_and_scaling(tmp_path, gz):
    arrays = write_set(tmp_path, gz=gz)
    s = load_mnist(tmp_path, dev_size=4)
    assert s.train_x.shape == (8, 12) and s.dev_x.shape == (4, 12) and s.test_x.shape == (5, 12)
    for x, y in [(s.train_x, s.train_y), (s.dev_x, s.dev_y), (s.test_x, s.test_y)]:
        assert x.dtype == np.float32 and x.flags.c_contiguous and y.dtype == np.int64
        assert x.min() >= 0 and x.max() <= 1
    # image i holds the value i: the FIRST dev_size images are dev, in order
    assert s.dev_x[:, 0].tolist() == pytest.approx([i / 255 for i in range(4)])
    assert s.train_x[:, 5].tolist() == pytest.approx([i / 255 for i in range(4, 12)])
    assert s.dev_y.tolist() == [0, 1, 2, 3] and s.train_y.tolist() == [4, 5, 6, 7, 8, 9, 0, 1]
    assert np.array_equal(s.test_x, arrays["test_images"].reshape(5, -1) / np.float32(255))
    assert np.array_equal(s.test_y, arrays["test_labels"])
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.train_x = None
    assert len(s.head(3).train_x) == 3 and len(s.head(3).dev_x) == 4


def test_scaling_hits_both_ends(tmp_path):
    img = np.zeros((1, 4, 3), np.uint8)
    img[0, 0] = [0, 255, 51]
    write_set(tmp_path, test_images=img, test_labels=np.array([3], np.uint8))
    assert load_mnist(tmp_path, dev_size=1).test_x[0, :3].tolist() == [0.0, 1.0, np.float32(0.2)]


def test_mixed_gz_and_raw_and_load_idx_set(tmp_path):
    arrays = write_set(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", arrays["test_labels"], gz=False)
    got = load_idx_set(tmp_path)
    assert len(got) == 4
    for key, a in zip(FILES, got):
        assert a.dtype == np.uint8 and np.array_equal(a, arrays[key])


def test_bad_magic(tmp_path):
    p = tmp_path / "train-images-idx3-ubyte.gz"
    p.write_bytes(gzip.compress(b"\x01\x02\x08\x01" + b"\0" * 8))
    with pytest.raises(IDXError, match=r"train-images-idx3-ubyte.gz: bad IDX magic number "
                                       r"0x01020801 \(expected 0x000008NN"):
        read_idx(p)
    p.write_bytes(b"")                                   # an empty file is bad magic too
    with pytest.raises(IDXError, match="bad IDX magic number 0x00000000"):
        read_idx(p)


def test_unknown_dtype_code(tmp_path):
    p = tmp_path / "bad"
    p.write_bytes(b"\0\0\x07\x01" + struct.pack(">I", 1) + b"\0")
    with pytest.raises(IDXError, match="bad: unknown IDX dtype code 0x07"):
        read_idx(p)


def test_truncated_and_trailing(tmp_path):
    raw = idx_bytes(np.zeros((10, 2, 2), np.uint8))
    p = tmp_path / "t.gz"
    p.write_bytes(gzip.compress(raw[:-7]))
    with pytest.raises(IDXError, match=r"t.gz: truncated: expected 40 bytes of data after the "
                                       r"header for shape \(10, 2, 2\), found 33"):
        read_idx(p)
    p.write_bytes(raw + b"xx")
    with pytest.raises(IDXError, match="t.gz: trailing extra bytes: expected 40 bytes .* found 42"):
        read_idx(p)
    p.write_bytes(raw[:9])
    with pytest.raises(IDXError, match="t.gz: truncated header: 3 dimensions need 16 bytes"):
        read_idx(p)


def test_damaged_gzip(tmp_path):
    p = tmp_path / "d.gz"
    p.write_bytes(gzip.compress(idx_bytes(np.zeros(1000, np.uint8)))[:-20])   # cut-off download
    with pytest.raises(IDXError, match="d.gz: damaged gzip data"):
        read_idx(p)


def test_count_mismatch_names_both_files(tmp_path):
    write_set(tmp_path, train_labels=np.zeros(11, np.uint8))
    with pytest.raises(IDXError, match=r"train-images-idx3-ubyte.gz has 12 images but .*"
                                       r"train-labels-idx1-ubyte.gz has 11 labels"):
        load_mnist(tmp_path)


@pytest.mark.parametrize("key, bad, msg", [
    ("train_images", np.zeros((12, 12), np.uint8), r"images must be 3-D .* got 2-D uint8"),
    ("test_images", np.zeros((5, 4, 3), np.float32), r"images must be 3-D .* got 3-D float32"),
    ("train_labels", np.zeros(12, np.int32), r"labels must be 1-D .* got 1-D int32"),
    ("test_labels", np.zeros((5, 1), np.uint8), r"labels must be 1-D .* got 2-D uint8"),
    ("test_images", np.zeros((5, 3, 4), np.uint8), r"images are 3x4 but .* has 4x3"),
])
def test_wrong_rank_dtype_or_size(tmp_path, key, bad, msg):
    write_set(tmp_path, **{key: bad})
    with pytest.raises(IDXError, match=FILES[key] + ".gz.*" + msg):
        load_mnist(tmp_path)


def test_missing_file_and_dir(tmp_path):
    write_set(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match=r"t10k-labels-idx1-ubyte\[.gz\] not found: --data"):
        load_mnist(tmp_path)
    with pytest.raises(FileNotFoundError, match="nope: no such directory"):
        load_mnist(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="absent"):
        read_idx(tmp_path / "absent")


@pytest.mark.parametrize("dev_size", [0, 12, -1])
def test_bad_dev_size(tmp_path, dev_size):
    write_set(tmp_path)
    with pytest.raises(ValueError, match=rf"dev_size={dev_size} \(--dev-size\) must be in \[1, 11\] .* "
                                         r"choose a smaller one, e.g. --dev-size 1"):
        load_mnist(tmp_path, dev_size=dev_size)


def test_default_dir_and_env_override(tmp_path, monkeypatch):
    monkeypatch.delenv("SPARSEBP_MNIST", raising=False)
    assert default_mnist_dir().parts[-2:] == ("data", "mnist")
    monkeypatch.setenv("SPARSEBP_MNIST", str(tmp_path))
    assert default_mnist_dir() == tmp_path


def test_sha256_mismatch_is_caught_for_the_default_set(tmp_path, monkeypatch):
    write_set(tmp_path)
    monkeypatch.setenv("SPARSEBP_MNIST", str(tmp_path))
    with pytest.raises(IDXError, match="sha256 mismatch, the file is corrupt or not the original "
                                       "MNIST: got [0-9a-f]{64}, expected [0-9a-f]{64}"):
        load_mnist()                           # the default set is verified
    with pytest.raises(IDXError, match="sha256 mismatch"):
        load_mnist(tmp_path, verify=True)      # and any set on request
    assert len(load_mnist(tmp_path, dev_size=2).train_x) == 10   # a user's set is not


def test_sha256_match_passes(tmp_path, monkeypatch):
    arrays = write_set(tmp_path)
    fake = {FILES[k]: hashlib.sha256(idx_bytes(a)).hexdigest() for k, a in arrays.items()}
    monkeypatch.setattr("sparsebp.data.mnist.MNIST_SHA256", fake)
    assert len(load_mnist(tmp_path, dev_size=2, verify=True).train_x) == 10


def test_real_mnist(monkeypatch):
    monkeypatch.delenv("SPARSEBP_MNIST", raising=False)
    s = load_mnist()                           # the vendored copy, sha256-verified
    assert (len(s.train_x), len(s.dev_x), len(s.test_x)) == (55000, 5000, 10000)
    assert s.train_x.shape[1] == s.test_x.shape[1] == 784
    assert np.bincount(np.r_[s.train_y, s.dev_y]).tolist() == \
        [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert np.bincount(s.test_y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    mean = np.r_[s.train_x, s.dev_x].mean(dtype=np.float64) * 255
    assert mean == pytest.approx(33.318, rel=1e-4)


def test_sha_table_covers_every_file():
    assert set(MNIST_SHA256) == set(FILES.values())


@pytest.mark.parametrize("key,index", [("train_labels", 7), ("test_labels", 3)])
def test_a_label_outside_the_classes_names_the_file_and_index(tmp_path, key, index):
    n = 12 if key == "train_labels" else 5
    labels = np.arange(n, dtype=np.uint8) % 10
    labels[index], labels[-1] = 200, 10
    write_set(tmp_path, **{key: labels})
    with pytest.raises(IDXError, match=rf"{FILES[key]}.gz: label 200 at index {index} is not in "
                                       rf"\[0, 10\) \(2 such labels\); the data set has 10 classes"):
        load_mnist(tmp_path, dev_size=2)
    s = load_mnist(tmp_path, dev_size=2, n_classes=201)      # stated, not guessed from the labels
    assert s.n_classes == 201 and s.head(3).n_classes == 201


def test_missing_vendored_copy_does_not_blame_data_flag(tmp_path, monkeypatch):
    monkeypatch.setenv("SPARSEBP_MNIST", str(tmp_path / "gone"))
    with pytest.raises(FileNotFoundError, match=r"the vendored MNIST is not at .*gone \(\$SPARSEBP_MNIST"):
        load_mnist()

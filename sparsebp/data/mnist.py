"""MNIST, and any data set in its four-file IDX layout (gzip or raw).

IDX (the format of LeCun's MNIST files): two zero bytes, a dtype code, the number
of dimensions, then each dimension as a big-endian uint32, then the data,
big-endian, row-major. Every check below raises an error that names the file and
says what is wrong, because a bad `--data` directory is the likeliest user error.
"""
import gzip
import hashlib
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# The four files of the layout, by the names of the original distribution. Each may
# be stored as NAME.gz or as the raw NAME.
FILES = {"train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
         "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte"}

# sha256 of the RAW (gunzipped) IDX bytes of the original MNIST files: hashing the
# raw bytes rather than the .gz lets a user gunzip the vendored copy and still pass.
MNIST_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

# IDX dtype codes -> big-endian NumPy dtypes
_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_GZIP_MAGIC = b"\x1f\x8b"


class IDXError(ValueError):
    """A file that is not a well-formed IDX file, or a data set whose files disagree."""


ENV = "SPARSEBP_MNIST"       # overrides where the vendored MNIST is looked for
N_CLASSES = 10               # the MNIST layout's classes: the digits 0-9


def default_mnist_dir():
    """The vendored MNIST directory, wherever the working directory is.

    Returns
    -------
    Path
        ``$SPARSEBP_MNIST`` if set; else the copy an install ships inside the
        package (setup.cfg maps the repository's ``data/mnist`` to
        ``sparsebp/data/mnist_files``); else, in a source checkout,
        ``<repo>/data/mnist`` beside the package.
    """
    env = os.environ.get(ENV)
    if env:
        return Path(env)
    installed = Path(__file__).resolve().parent / "mnist_files"
    if installed.is_dir():
        return installed
    return Path(__file__).resolve().parents[2] / "data" / "mnist"


def _read_bytes(path):
    """The raw IDX bytes of path, gunzipped if its content starts with the gzip magic."""
    data = Path(path).read_bytes()
    if data[:2] != _GZIP_MAGIC:                 # detected by content, not by file name
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as e:   # a cut-off download lands here
        raise IDXError(f"{path}: damaged gzip data ({e})") from None


def parse_idx(raw, name):
    """Decode the bytes of one IDX file.

    Parameters
    ----------
    raw : bytes
        The whole (uncompressed) file.
    name : str
        The file's name, for error messages.

    Returns
    -------
    ndarray
        Shape from the header, dtype from the header's code in native byte order
        (uint8, int8, int16, int32, float32 or float64).
    """
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        magic = int.from_bytes(raw[:4].ljust(4, b"\0"), "big")
        raise IDXError(f"{name}: bad IDX magic number 0x{magic:08x} (expected 0x000008NN "
                       "for uint8 data with NN dimensions)")
    code, ndim = raw[2], raw[3]
    if code not in _DTYPES:
        raise IDXError(f"{name}: unknown IDX dtype code 0x{code:02x} (known: "
                       + ", ".join(f"0x{c:02x}" for c in _DTYPES) + ")")
    head = 4 + 4 * ndim
    if len(raw) < head:
        raise IDXError(f"{name}: truncated header: {ndim} dimensions need {head} bytes, "
                       f"the file has {len(raw)}")
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_DTYPES[code])
    need = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    have = len(raw) - head
    if have != need:
        what = "truncated" if have < need else "trailing extra bytes"
        raise IDXError(f"{name}: {what}: expected {need} bytes of data after the header "
                       f"for shape {shape}, found {have}")
    # frombuffer is a read-only view of raw; astype copies into a writable native array
    return np.frombuffer(raw, dtype, offset=head).reshape(shape).astype(dtype.newbyteorder("="))


def read_idx(path, sha256=None):
    """Read one IDX file, gzip-compressed or raw.

    Parameters
    ----------
    path : str or Path
    sha256 : str, optional
        If given, the expected sha256 (hex) of the raw, uncompressed bytes.

    Returns
    -------
    ndarray
        As `parse_idx`: the header's shape and dtype, native byte order.

    Raises
    ------
    FileNotFoundError
        No such file.
    IDXError
        Damaged gzip data, a malformed IDX file, or a sha256 mismatch.
    """
    raw = _read_bytes(path)
    if sha256 is not None:
        got = hashlib.sha256(raw).hexdigest()
        if got != sha256:
            raise IDXError(f"{path}: sha256 mismatch, the file is corrupt or not the original "
                           f"MNIST: got {got}, expected {sha256}")
    return parse_idx(raw, str(path))


def _find(data_dir, stem):
    """data_dir/stem.gz, or data_dir/stem raw: the first that exists."""
    for name in (stem + ".gz", stem):
        p = Path(data_dir) / name
        if p.is_file():
            return p
    raise FileNotFoundError(f"{Path(data_dir) / stem}[.gz] not found: --data DIR must hold "
                            f"the four IDX files {sorted(FILES.values())}, gzipped or raw")


def load_idx_set(data_dir, verify_sha256=False):
    """Read and check the four IDX files of an MNIST-layout directory.

    Parameters
    ----------
    data_dir : str or Path
    verify_sha256 : bool
        Check each file's raw bytes against `MNIST_SHA256` (only right for MNIST
        itself: Fashion-MNIST and others share the layout, not the hashes).

    Returns
    -------
    train_images, train_labels, test_images, test_labels : ndarray
        Images (N, rows, cols) uint8, labels (N,) uint8.

    Raises
    ------
    FileNotFoundError
        data_dir or one of the files is missing.
    IDXError
        A malformed file, a sha256 mismatch, wrong dtype or rank, an image count
        that differs from its label count, or test images of another size.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"--data {data_dir}: no such directory")
    paths = {k: _find(data_dir, stem) for k, stem in FILES.items()}
    arr = {k: read_idx(p, MNIST_SHA256[FILES[k]] if verify_sha256 else None)
           for k, p in paths.items()}
    for part in ("train", "test"):
        pi, pl = paths[part + "_images"], paths[part + "_labels"]
        img, lab = arr[part + "_images"], arr[part + "_labels"]
        if img.ndim != 3 or img.dtype != np.uint8:
            raise IDXError(f"{pi}: images must be 3-D (N, rows, cols) uint8, "
                           f"got {img.ndim}-D {img.dtype}")
        if lab.ndim != 1 or lab.dtype != np.uint8:
            raise IDXError(f"{pl}: labels must be 1-D (N,) uint8, got {lab.ndim}-D {lab.dtype}")
        if len(img) != len(lab):
            raise IDXError(f"{pi} has {len(img)} images but {pl} has {len(lab)} labels")
    tr, te = arr["train_images"].shape[1:], arr["test_images"].shape[1:]
    if tr != te:   # the model's input width is fixed by the training images
        raise IDXError(f"{paths['test_images']}: images are {te[0]}x{te[1]} but "
                       f"{paths['train_images']} has {tr[0]}x{tr[1]}")
    return tuple(arr[k] for k in FILES)


@dataclass(frozen=True)
class Split:
    """A train / dev / test split, ready for the model.

    Each x is (N, rows*cols) float32 in [0, 1], C-contiguous; each y is (N,) int64.
    """
    train_x: np.ndarray
    train_y: np.ndarray
    dev_x: np.ndarray
    dev_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray

    n_classes: int = N_CLASSES    # every label is in [0, n_classes)

    def head(self, n):
        """The same split with only the first n training examples (quick runs)."""
        return Split(self.train_x[:n], self.train_y[:n], self.dev_x, self.dev_y,
                     self.test_x, self.test_y, self.n_classes)


def _flat(images):
    """(N, rows, cols) uint8 -> (N, rows*cols) float32 in [0, 1], C-contiguous."""
    x = images.reshape(len(images), -1).astype(np.float32)
    x /= np.float32(255)            # in place: no second 188 MB temporary for MNIST
    return x


def check_labels(labels, n_classes, path):
    """Every label of the file at path must be in [0, n_classes): else an error
    naming the file, the first bad index and its value."""
    bad = np.flatnonzero(labels >= n_classes)        # uint8: never negative
    if bad.size:
        i = int(bad[0])
        raise IDXError(f"{path}: label {labels[i]} at index {i} is not in [0, {n_classes}) "
                       f"({bad.size} such labels); the data set has {n_classes} classes "
                       f"(the MNIST layout's digits), pass --classes N for more")


def load_mnist(data_dir=None, dev_size=5000, verify=None, n_classes=N_CLASSES):
    """Load an MNIST-layout directory as a train / dev / test `Split`.

    As the official meProp code (C# `trn.Take(5000)`, PyTorch `PartDataset(trn, 0,
    5000)`), the FIRST dev_size training images are the dev set and the rest train:
    55,000 / 5,000 / 10,000 for MNIST.

    Parameters
    ----------
    data_dir : str or Path, optional
        The four IDX files; None: the vendored MNIST, `default_mnist_dir()`.
    dev_size : int
        Number of dev images, in [1, N_train - 1] (`--dev-size`).
    verify : bool, optional
        Check sha256 against `MNIST_SHA256`. Default: only when data_dir is None,
        since a user's set (e.g. Fashion-MNIST) has other hashes.
    n_classes : int
        Every label (training and test) must be in [0, n_classes) (`--classes`);
        10 for the MNIST layout's digits.

    Returns
    -------
    Split
    """
    if verify is None:
        verify = data_dir is None
    if data_dir is None:
        data_dir = default_mnist_dir()
        if not data_dir.is_dir():      # not the user's --data: say where it was looked for
            raise FileNotFoundError(f"the vendored MNIST is not at {data_dir} (${ENV} or the "
                                    "install's copy); reinstall sparsebp, or pass --data DIR")
    data_dir = Path(data_dir)
    img, lab, timg, tlab = load_idx_set(data_dir, verify_sha256=verify)
    n = len(img)
    if not 1 <= dev_size <= n - 1:
        raise ValueError(f"dev_size={dev_size} (--dev-size) must be in [1, {n - 1}] for the {n} "
                         f"training images in {data_dir}: the first dev_size images are the dev "
                         f"set; choose a smaller one, e.g. --dev-size {max(1, n // 10)}")
    for labels, stem in ((lab, FILES["train_labels"]), (tlab, FILES["test_labels"])):
        check_labels(labels, n_classes, _find(data_dir, stem))
    x, y = _flat(img), lab.astype(np.int64)
    # slicing along the first axis keeps each part C-contiguous without a copy
    return Split(x[dev_size:], y[dev_size:], x[:dev_size], y[:dev_size], _flat(timg),
                 tlab.astype(np.int64), n_classes)

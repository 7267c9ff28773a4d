"""MNIST and any data set in its four-file IDX layout (gzip or raw).

IDX (the format of LeCun's MNIST files): two zero bytes, a dtype code, the number
of dimensions, then each dimension as a big-endian uint32, then the data,
big-endian, row-major. Every check below names the file and what is wrong.
"""
import gzip
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FILES = {"train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
         "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte"}

# sha256 of the raw (gunzipped) IDX bytes of the original MNIST files
MNIST_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class IDXError(ValueError):
    """A file that is not a well-formed IDX file, or a data set whose files disagree."""


def default_mnist_dir():
    """The vendored MNIST (`data/mnist` in the repository); $SPARSEBP_MNIST overrides it."""
    env = os.environ.get("SPARSEBP_MNIST")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "data" / "mnist"


def _read_bytes(path):
    raw = Path(path).read_bytes()
    return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw   # by content, not name


def parse_idx(raw, name):
    """raw: the bytes of one IDX file -> ndarray in native byte order."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        magic = int.from_bytes(raw[:4].ljust(4, b"\0"), "big")
        raise IDXError(f"{name}: bad IDX magic number 0x{magic:08x} (expected 0x000008NN "
                       "for uint8 data with NN dimensions)")
    code, ndim = raw[2], raw[3]
    if code not in _DTYPES:
        raise IDXError(f"{name}: unknown IDX dtype code 0x{code:02x}")
    head = 4 + 4 * ndim
    if len(raw) < head:
        raise IDXError(f"{name}: truncated header ({len(raw)} bytes, need {head})")
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_DTYPES[code])
    need = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    have = len(raw) - head
    if have != need:
        what = "truncated" if have < need else "has trailing bytes"
        raise IDXError(f"{name}: {what}: expected {need} bytes of data after the header "
                       f"for shape {shape}, found {have}")
    return np.frombuffer(raw, dtype, offset=head).reshape(shape).astype(dtype.newbyteorder("="))


def _find(data_dir, stem):
    for name in (stem + ".gz", stem):
        p = Path(data_dir) / name
        if p.exists():
            return p
    raise FileNotFoundError(f"{Path(data_dir) / stem}[.gz] not found: --data DIR must hold "
                            f"the four IDX files {sorted(FILES.values())}")


def read_idx(path, sha256=None):
    """Read one IDX file (gzip or raw); with sha256, check the raw bytes first."""
    raw = _read_bytes(path)
    if sha256 is not None:
        got = hashlib.sha256(raw).hexdigest()
        if got != sha256:
            raise IDXError(f"{path}: sha256 mismatch, the file is corrupt or not the original "
                           f"MNIST: got {got}, expected {sha256}")
    return parse_idx(raw, str(path))


@dataclass(frozen=True)
class Split:
    """x: (N, rows*cols) float32 in [0, 1], C-contiguous; y: (N,) int64."""
    train_x: np.ndarray
    train_y: np.ndarray
    dev_x: np.ndarray
    dev_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray

    def head(self, n):
        """The same split with only the first n training examples (quick runs)."""
        return Split(self.train_x[:n], self.train_y[:n], self.dev_x, self.dev_y,
                     self.test_x, self.test_y)


def _pair(data_dir, img_key, lab_key, verify):
    paths = {k: _find(data_dir, FILES[k]) for k in (img_key, lab_key)}
    arr = {k: read_idx(p, MNIST_SHA256[FILES[k]] if verify else None) for k, p in paths.items()}
    img, lab = arr[img_key], arr[lab_key]
    if img.ndim != 3 or lab.ndim != 1:
        raise IDXError(f"{paths[img_key]} must be 3-D images and {paths[lab_key]} 1-D labels; "
                       f"got {img.ndim}-D and {lab.ndim}-D")
    if len(img) != len(lab):
        raise IDXError(f"{paths[img_key]} has {len(img)} images but {paths[lab_key]} has "
                       f"{len(lab)} labels")
    x = np.ascontiguousarray(img.reshape(len(img), -1), dtype=np.float32) / np.float32(255)
    return x, lab.astype(np.int64)


def load_mnist(data_dir=None, dev_size=5000, verify=None):
    """Load the four IDX files of data_dir (default: the vendored MNIST) as a Split.

    As the official meProp code, the LAST dev_size training images are the dev set:
    55,000 / 5,000 / 10,000 for MNIST. verify (default: True for the vendored
    MNIST only, since other MNIST-like sets have other hashes) checks sha256.
    """
    if verify is None:
        verify = data_dir is None
    data_dir = default_mnist_dir() if data_dir is None else Path(data_dir)
    if not Path(data_dir).is_dir():
        raise FileNotFoundError(f"--data {data_dir}: no such directory")
    x, y = _pair(data_dir, "train_images", "train_labels", verify)
    tx, ty = _pair(data_dir, "test_images", "test_labels", verify)
    if not 1 <= dev_size < len(x):
        raise ValueError(f"dev_size={dev_size} must be in [1, {len(x) - 1}] for {len(x)} training images")
    cut = len(x) - dev_size
    return Split(x[:cut], y[:cut], x[cut:], y[cut:], tx, ty)

"""Files that never end half-written, and arrays that load without pickle.

`sb.save(state, path)` writes a dict of arrays (a `state_dict`, or dicts of
them, nested) to one .npz file; `sb.load(path)` reads it back. Loading never
unpickles (`allow_pickle=False`), so a file from elsewhere cannot run code, and
every way a file can be bad (empty, truncated, bit-flipped, not an .npz at all)
is one `LoadError` naming the file.

`atomic_write` is how every file of a run is written: to a temporary file in
the same directory, fsync, then rename over the target, so a crash, Ctrl-C or a
full disk leaves either the old file or the new one, and no temporary file.
"""
import io
import os
import zipfile
import zlib

import numpy as np

_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")   # a zip's first entry, or an empty zip
SEP = "/"      # nested dicts are stored flat: {"model": {"0.weight": a}} as "model/0.weight"


class LoadError(ValueError):
    """A file that is not what it should be; the message names it."""


class WriteError(OSError):
    """A file that could not be written (disk full, no permission, ...)."""

    def __init__(self, path, size, reason):
        super().__init__(f"could not write {path} ({size:,} bytes): {reason}")
        self.path, self.size = path, size


def atomic_write(path, data):
    """Write the bytes `data` to path atomically (see the module docstring).

    Raises WriteError naming the file and the size when the write fails; the file
    that was there before is then untouched and no temporary file is left."""
    path = os.fspath(path)
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        raise WriteError(path, len(data), e.strerror or str(e)) from None
    finally:
        if os.path.exists(tmp):                    # also on Ctrl-C: no debris
            os.remove(tmp)


def save(state, path):
    """Write `state`, a dict of arrays (or of such dicts), to path as one .npz,
    atomically. Object arrays are refused: they would need pickle to load."""
    flat = _flatten(state, "")
    buf = io.BytesIO()
    np.savez(buf, **flat)
    atomic_write(path, buf.getvalue())


def load(path):
    """The dict that `save` wrote to path, nested as it was, as host arrays.

    Raises FileNotFoundError if there is no such file and LoadError for a file
    that is not a readable .npz of plain arrays (it is never unpickled)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise LoadError(f"{path}: is a directory, not a saved file")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file")
    with open(path, "rb") as f:
        head = f.read(4)
    if not head:
        raise LoadError(f"{path}: empty file")
    if head not in _ZIP_MAGIC:       # np.load would take anything else for a pickle
        raise LoadError(f"{path}: not an .npz file (a saved file is a zip archive of arrays; "
                        f"this one starts with {head!r})")
    try:
        with np.load(path, allow_pickle=False) as z:
            flat = {n: z[n] for n in z.files}        # reads (and CRC-checks) every array now
    except ValueError as e:
        if "allow_pickle" in str(e):
            raise LoadError(f"{path}: holds pickled Python objects, which sparsebp never "
                            "loads (they could run code); not a sparsebp file") from None
        raise LoadError(f"{path}: damaged, an array in it is unreadable ({e})") from None
    except (OSError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as e:
        raise LoadError(f"{path}: damaged or cut short ({type(e).__name__}: {e})") from None
    return _unflatten(flat)


def _flatten(state, prefix):
    flat = {}
    for k, v in state.items():
        if SEP in str(k):
            raise ValueError(f"save: key {k!r} contains {SEP!r}, which separates nested dicts")
        if isinstance(v, dict):
            flat.update(_flatten(v, f"{prefix}{k}{SEP}"))
            continue
        a = np.asarray(v)
        if a.dtype.hasobject:
            raise TypeError(f"save: {prefix}{k} is an object array; only plain arrays can be saved")
        flat[f"{prefix}{k}"] = a
    return flat


def _unflatten(flat):
    state = {}
    for name, a in flat.items():
        *outer, last = name.split(SEP)
        d = state
        for k in outer:
            d = d.setdefault(k, {})
        d[last] = a
    return state

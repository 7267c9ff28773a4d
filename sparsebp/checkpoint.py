"""Checkpoints: model weights, optimizer state, the random generator's state and
the results so far, in one .npz (`sb.save` of the state dicts), written
atomically, so a crash, Ctrl-C or a full disk leaves either the old checkpoint
or the new one, never half of one and never a temporary file.

Resuming restores all of it, so the run continues exactly as if uninterrupted:
the same shuffles, the same dropout masks and random-k draws, the same weights.
A run never replaces a checkpoint unless asked to (`check_targets`), and a file
that is not a whole sparsebp checkpoint is one `LoadError` naming it.
"""
import json
import os
import tempfile
from dataclasses import asdict

from . import serialize
from .backend import rng
from .serialize import LoadError

FILE = "checkpoint.npz"
FORMAT = "sparsebp checkpoint 1"      # stored in the file: a foreign .npz lacks it


def path_of(ckpt_dir):
    return os.path.join(ckpt_dir, FILE)


def save(ckpt_dir, model, opt, results, average=None):
    """average: the run's `WeightAverage` (--average), saved beside the weights, or None."""
    os.makedirs(ckpt_dir, exist_ok=True)
    state = {"format": FORMAT, "model": model.state_dict(), "optimizer": opt.state_dict(),
             "rng": json.dumps(rng().bit_generator.state), "results": json.dumps(results)}
    if average is not None:
        state["average"] = average.state_dict()
    serialize.save(state, path_of(ckpt_dir))


def read(path):
    """(state, results) of the checkpoint file at path; LoadError if it is not one."""
    state = serialize.load(path)
    if str(state.get("format", "")) != FORMAT or not isinstance(state.get("model"), dict):
        raise LoadError(f"{path}: not a sparsebp checkpoint (no {FORMAT!r} mark and model weights)")
    try:
        results = json.loads(str(state["results"]))
        state["rng"] = json.loads(str(state["rng"]))
    except (KeyError, ValueError) as e:
        raise LoadError(f"{path}: damaged checkpoint, its results or generator state is "
                        f"unreadable ({e})") from None
    if not (isinstance(results, dict) and isinstance(results.get("epochs"), list)
            and isinstance(results.get("config"), dict)):
        raise LoadError(f"{path}: damaged checkpoint, its results have no config and epochs")
    return state, results


def epochs_done(ckpt_dir):
    """How many epochs the checkpoint in ckpt_dir holds; None if there is none."""
    path = path_of(ckpt_dir)
    return len(read(path)[1]["epochs"]) if os.path.isfile(path) else None


def load(ckpt_dir, model, opt, cfg, average=None):
    """Restore model, opt, the generator and the weight average (if the run has
    one) from ckpt_dir; returns the results so far."""
    path = path_of(ckpt_dir or "")
    if not ckpt_dir or not os.path.exists(path):
        raise FileNotFoundError(f"--resume: no checkpoint at {path}; run once with --checkpoint DIR first")
    state, results = read(path)
    _check_config(results["config"], asdict(cfg), path)
    try:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state.get("optimizer", {}))     # SGD has no state arrays
        rng().bit_generator.state = state["rng"]
        if average is not None:
            average.load_state_dict(state["average"])
    except (ValueError, TypeError, KeyError) as e:
        raise LoadError(f"{path}: does not fit this model: {e}") from None
    return results


def _check_config(saved, now, path):
    """Every setting but the epoch count and the threads (speed only) must match the
    checkpoint's; a setting the checkpoint predates counts as its default."""
    from .train import Config
    default = asdict(Config())
    diff = [f"{k}={saved.get(k, default.get(k))!r} there, {v!r} here" for k, v in now.items()
            if k not in ("epochs", "threads") and saved.get(k, default.get(k)) != v]
    if diff:
        raise ValueError(f"{path} was made with other settings: " + "; ".join(diff))


def check_targets(out=None, ckpt_dir=None, resume=False, overwrite=False):
    """Before training: every file the run will write can be written, and no
    checkpoint is replaced by accident. Raises ValueError saying what to do."""
    if out:
        if os.path.isdir(out):
            raise ValueError(f"--out {out}: is a directory; give a file name, e.g. {os.path.join(out, 'run.json')}")
        _check_dir(os.path.dirname(os.path.abspath(out)), f"--out {out}")
    if not ckpt_dir:
        return
    if os.path.exists(ckpt_dir) and not os.path.isdir(ckpt_dir):
        raise ValueError(f"--checkpoint {ckpt_dir}: is a file, not a directory")
    _check_dir(ckpt_dir, f"--checkpoint {ckpt_dir}")
    path = path_of(ckpt_dir)
    if os.path.isdir(path):
        raise ValueError(f"--checkpoint {ckpt_dir}: {path} is a directory; move it away")
    if resume or overwrite or not os.path.exists(path):
        return
    try:
        n = epochs_done(ckpt_dir)
        what = f"a checkpoint after epoch {n}"
    except (LoadError, OSError) as e:
        what = f"a file that is not a readable checkpoint ({e})"
    raise ValueError(f"--checkpoint {ckpt_dir} already holds {what}: continue it with --resume, "
                     "or replace it with --overwrite-checkpoint")


def _check_dir(d, flag):
    """d exists (made if need be) and a file can be created in it."""
    try:
        os.makedirs(d, exist_ok=True)
        with tempfile.TemporaryFile(dir=d):
            pass
    except OSError as e:
        raise ValueError(f"{flag}: cannot write in {d}: {e.strerror or e}") from None

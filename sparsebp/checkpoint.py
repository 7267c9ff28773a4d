"""Checkpoints: model weights, optimizer state, the random generator's state and
the results so far, in one .npz written atomically (temporary file, fsync, then
rename), so a crash leaves either the old checkpoint or the new one, never half.

Resuming restores all of it, so the run continues exactly as if uninterrupted:
the same shuffles, the same dropout masks and random-k draws, the same weights.
"""
import json
import os
from dataclasses import asdict

import numpy as np

from .backend import K, rng

FILE = "checkpoint.npz"


def save(ckpt_dir, model, opt, results):
    os.makedirs(ckpt_dir, exist_ok=True)
    arrays = {f"param.{i}": K().to_host(p.data) for i, p in enumerate(model.parameters())}
    arrays.update({f"opt.{n}": a for n, a in opt.state_dict().items()})
    arrays["rng"] = np.array(json.dumps(rng().bit_generator.state))
    arrays["results"] = np.array(json.dumps(results))
    path = os.path.join(ckpt_dir, FILE)
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):                # a failed write leaves no debris
            os.remove(tmp)


def load(ckpt_dir, model, opt, cfg):
    """Restore model, opt and the generator from ckpt_dir; returns the results so far."""
    path = os.path.join(ckpt_dir or "", FILE)
    if not ckpt_dir or not os.path.exists(path):
        raise FileNotFoundError(f"--resume: no checkpoint at {path}; run once with --checkpoint DIR first")
    with np.load(path) as z:
        results = json.loads(str(z["results"]))
        _check_config(results["config"], asdict(cfg), path)
        params = model.parameters()
        for i, p in enumerate(params):
            a = z[f"param.{i}"]
            if a.shape != tuple(p.shape):
                raise ValueError(f"{path}: parameter {i} has shape {a.shape}, the model {tuple(p.shape)}")
            p.data = K().to_device(a.astype(p.data.dtype))
        opt.load_state_dict({n[4:]: z[n] for n in z.files if n.startswith("opt.")})
        rng().bit_generator.state = json.loads(str(z["rng"]))
    return results


def _check_config(saved, now, path):
    """Every setting but the epoch count and the threads (speed only) must match the checkpoint's."""
    diff = [f"{k}={saved.get(k)!r} there, {v!r} here" for k, v in now.items()
            if k not in ("epochs", "threads") and saved.get(k) != v]
    if diff:
        raise ValueError(f"{path} was made with other settings: " + "; ".join(diff))

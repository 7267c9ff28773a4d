"""Exploration toward issue 11's 87.0 UAS: the parse task's training loop, plus two
things the CLI does not have (yet): an exponential moving average of the weights
(evaluated beside the raw weights every epoch) and Chen & Manning's cube activation.

    python results/parse/explore.py DATA --out FILE.json [--ema 0.999 --every 10]
        [--act cube] [--embed 100] [--dropout 0.3] [--mode topk] [--seed 1] [--epochs 10]
"""
import argparse
import json
import time

import numpy as np

from sparsebp import tasks
from sparsebp.backend import seed
from sparsebp.layers import Tanh
from sparsebp.module import Module
from sparsebp.train import Config, build_optimizer, train_epoch, warm_up


class Cube(Module):
    """y = x^3; dx = 3 x^2 dy (numpy, the CPU backends)."""

    def forward(self, x):
        self.x = x
        return x * x * x

    def backward(self, dy):
        return 3.0 * self.x * self.x * dy


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("--out", required=True)
    ap.add_argument("--mode", default="dense")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--embed", type=int, default=50)
    ap.add_argument("--dropout", type=float, default=0.0)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--act", default="tanh")
    ap.add_argument("--ema", type=float, default=0.0, help="decay per step (0: none)")
    ap.add_argument("--every", type=int, default=10, help="steps between EMA updates")
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--limit", type=int, default=0)
    a = ap.parse_args()
    cfg = Config(task="parse", mode=a.mode, k=20, hidden=500, layers=a.layers, batch_size=100,
                 epochs=a.epochs, lr=a.lr, dropout=a.dropout, activation="tanh", seed=a.seed,
                 data=a.data, limit=a.limit, extra={"embed": a.embed, "tags": "xpos", "min_count": 2})
    task = tasks.get("parse")
    data = task.load(cfg)
    warm_up(cfg, task, data)
    seed(cfg.seed)
    model = task.build_model(cfg, data)
    if a.act == "cube":
        mlp = model.layers[1]
        mlp.layers = [Cube() if isinstance(l, Tanh) else l for l in mlp.layers]
    print(model, flush=True)
    opt = build_optimizer(model.parameters(), cfg)
    params = [p.data for p in model.parameters()]
    shadow = [p.copy() for p in params]
    count = [0]
    step = opt.step
    d = a.ema ** a.every

    def step_and_average():
        step()
        count[0] += 1
        if a.ema and count[0] % a.every == 0:
            for s, p in zip(shadow, params):
                s *= d
                s += (1.0 - d) * p

    opt.step = step_and_average
    rows = []
    for epoch in range(1, a.epochs + 1):
        t0 = time.perf_counter()
        stats = train_epoch(model, opt, task, data, cfg.batch_size)
        row = {"epoch": epoch, "loss": stats["train_loss"], "train_s": time.perf_counter() - t0}
        for split in ("dev", "test"):
            row[split] = task.evaluate(model, data, split)["acc"]
        if a.ema:
            saved = [p.copy() for p in params]
            for p, s in zip(params, shadow):
                p[...] = s
            for split in ("dev", "test"):
                row["ema_" + split] = task.evaluate(model, data, split)["acc"]
            for p, s in zip(params, saved):
                p[...] = s
        rows.append(row)
        print(json.dumps(row), flush=True)
        with open(a.out, "w") as f:
            json.dump({"args": vars(a), "epochs": rows}, f, indent=1)


if __name__ == "__main__":
    main()

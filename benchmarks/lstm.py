"""The LSTM section of the CPU lab: one training step of a POS tagger's shape.

    python -m benchmarks.lstm [--quick] [--out FILE.json]

Model (the paper's tagger, issue 10): word embedding 20,000 x 100 -> BiLSTM, h = 500
each way -> Linear 1000 -> 50 tags -> softmax cross-entropy -> Adam. Sentences of
25 words; a minibatch of 1 sentence (the paper's) and of 32. sparsebp in modes
dense, topk and unified (k = 5 of the 4H = 2000 gate units per step, over the
whole vector), and PyTorch's CPU `nn.LSTM` tagger as a user would write it
(`nn.Embedding`, `nn.LSTM(bidirectional=True)`, `nn.Linear`, `nn.CrossEntropyLoss`,
`torch.optim.Adam`), skipped when torch is not importable.

How it measures (the machine is shared and loaded; see the load averages printed):
- one thread everywhere (OpenBLAS, Numba, torch), in a process started with
  OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset (the machine's shell sets them; they
  change OpenBLAS's kernels), so `main` re-executes itself in a clean environment;
- each phase (forward, backward, the LSTM's backward inside it, update) is timed in
  CPU seconds of this process (time.process_time), not wall-clock: on an
  oversubscribed machine wall-clock times of a long call include the time other
  processes held the core, and that share grows with the call's length, which
  would bias every ratio against the longer step. Wall-clock medians are kept too;
- the implementations run interleaved, one step each per round, and each number
  is the median over the rounds;
- before timing, the models are checked: sparsebp's cpu backend against its numpy
  reference (loss and every gradient, dense and topk), and PyTorch's dense step
  against ours from the same weights (loss and gradients).
"""
import argparse
import json
import os
import subprocess
import sys
import time

ENV_DROP = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
THREAD_VARS = ("OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def clean_env():
    """This environment without ENV_DROP and with one thread for every library."""
    env = {k: v for k, v in os.environ.items() if k not in ENV_DROP}
    env.update({v: "1" for v in THREAD_VARS})
    return env


def run_clean(quick, out_json):
    """Runs this module in a fresh process with clean_env(); returns its results."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    cmd = [sys.executable, "-m", "benchmarks.lstm", "--json", out_json] + (["--quick"] if quick else [])
    subprocess.run(cmd, cwd=root, env=clean_env(), check=True)
    with open(out_json) as f:
        return json.load(f)


def _env_is_clean():
    return not any(v in os.environ for v in ENV_DROP) and all(os.environ.get(v) == "1" for v in THREAD_VARS)


if __name__ == "__main__" and not _env_is_clean():      # before numpy loads OpenBLAS
    os.execve(sys.executable, [sys.executable, "-m", "benchmarks.lstm"] + sys.argv[1:], clean_env())

import numpy as np  # noqa: E402

try:                 # before Numba's OpenMP pool (see benchmarks/run.py)
    import torch  # noqa: E402
    from torch import nn  # noqa: E402
except ImportError:
    torch = None

import sparsebp as sb  # noqa: E402

VOCAB, EMB, H, TAGS, T, K = 20_000, 100, 500, 50, 25, 5


# ---------------------------------------------------------------- sparsebp's tagger
class Tagger:
    """Embedding -> BiLSTM -> Linear -> cross-entropy, with Adam, on the current backend."""

    def __init__(self, mode, seed=0, dtype=np.float32):
        sb.seed(seed)
        k = None if mode == "dense" else K
        self.emb = sb.Embedding(VOCAB, EMB, dtype=dtype)
        self.lstm = sb.BiLSTM(EMB, H, k=k, mode=mode, dtype=dtype)
        self.out = sb.Linear(2 * H, TAGS, dtype=dtype)              # dense: 50 tags
        self.loss_fn = sb.SoftmaxCrossEntropy()
        self.params = self.emb.parameters() + self.lstm.parameters() + self.out.parameters()
        self.opt = sb.Adam(self.params)

    def forward(self, ids, tags):
        B = ids.shape[0]
        e = self.emb(ids.reshape(-1)).reshape(B, T, EMB)
        h = self.lstm(e, np.full(B, T))
        return self.loss_fn(self.out(h.reshape(B * T, 2 * H)), tags.reshape(-1))

    def backward(self):
        """Returns the seconds (CPU, wall) of the BiLSTM's backward inside it."""
        B = self.lstm.lengths.shape[0]
        dh = self.out.backward(self.loss_fn.backward()).reshape(B, T, 2 * H)
        c0, w0 = time.process_time(), time.perf_counter()
        de = self.lstm.backward(dh)
        inside = (time.process_time() - c0, time.perf_counter() - w0)
        self.emb.backward(de.reshape(B * T, EMB))
        return inside

    def update(self):
        self.opt.step()


# ---------------------------------------------------------------- PyTorch's tagger
def torch_tagger(ours):
    """The same model in PyTorch with `ours`' weights (gates i, f, g, o in both)."""
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(VOCAB, EMB)
            self.lstm = nn.LSTM(EMB, H, batch_first=True, bidirectional=True)
            self.out = nn.Linear(2 * H, TAGS)

        def forward(self, ids):
            return self.out(self.lstm(self.emb(ids))[0])
    net = Net()
    t = lambda p: torch.from_numpy(np.array(p.data))  # noqa: E731
    with torch.no_grad():
        net.emb.weight.copy_(t(ours.emb.weight))
        for sfx, d in (("", ours.lstm.fwd), ("_reverse", ours.lstm.bwd)):
            getattr(net.lstm, "weight_ih_l0" + sfx).copy_(t(d.weight_ih))
            getattr(net.lstm, "weight_hh_l0" + sfx).copy_(t(d.weight_hh))
            getattr(net.lstm, "bias_ih_l0" + sfx).copy_(t(d.bias))
            getattr(net.lstm, "bias_hh_l0" + sfx).zero_()
        net.out.weight.copy_(t(ours.out.weight))
        net.out.bias.copy_(t(ours.out.bias))
    return net


class TorchStep:
    def __init__(self, ours):
        self.net = torch_tagger(ours)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=1e-3)
        self.loss_fn = nn.CrossEntropyLoss()

    def forward(self, ids, tags):
        self.opt.zero_grad(set_to_none=False)
        logits = self.net(torch.from_numpy(ids.astype(np.int64)))
        self.loss = self.loss_fn(logits.reshape(-1, TAGS), torch.from_numpy(tags.reshape(-1).astype(np.int64)))
        return float(self.loss.detach())

    def backward(self):
        self.loss.backward()
        return None

    def update(self):
        self.opt.step()


# ---------------------------------------------------------------- checks before timing
def grads_of(model, ids, tags):
    loss = model.forward(ids, tags)
    model.backward()
    return loss, [p.dense_grad() for p in model.params]


def close(g, r, rel=1e-3):
    """|g - r| within rel times the largest |r| (float32 sums in another order)."""
    return np.abs(g - r).max() <= rel * np.abs(r).max() + 1e-12


def check(batch):
    """Dense and topk: the cpu backend against the numpy reference; PyTorch's dense
    loss and gradients against ours. Raises on a mismatch."""
    ids, tags = batch
    for mode in ("dense", "topk"):
        res = []
        for backend in ("numpy", "cpu"):
            with sb.using(backend):
                res.append(grads_of(Tagger(mode), ids, tags))
        assert abs(res[0][0] - res[1][0]) < 1e-5, f"{mode}: loss {res[1][0]} != {res[0][0]}"
        for g, r in zip(res[1][1], res[0][1]):
            assert close(g, r), f"{mode}: gradients differ from the reference"
    if torch is None:
        return
    ours = Tagger("dense")
    loss, grads = grads_of(ours, ids, tags)
    peer = TorchStep(ours)
    tl = peer.forward(ids, tags)
    peer.backward()
    assert abs(tl - loss) < 1e-4, f"PyTorch loss {tl} != ours {loss}"
    n = peer.net
    pairs = [(n.emb.weight, 0), (n.lstm.weight_ih_l0, 1), (n.lstm.weight_hh_l0, 2),
             (n.lstm.bias_ih_l0, 3), (n.lstm.weight_hh_l0_reverse, 5), (n.out.weight, 7)]
    for p, i in pairs:
        assert close(p.grad.numpy(), grads[i]), f"PyTorch gradient {i} differs"


# ---------------------------------------------------------------- timing
PHASES = ("forward", "backward", "lstm_backward", "update")


def measure(impls, batches, rounds):
    """impls: {name: object with forward/backward/update}. One step of each per round,
    in turn; returns {name: {phase: (median CPU us, median wall us)}}."""
    cpu = {n: {p: [] for p in PHASES + ("step",)} for n in impls}
    wall = {n: {p: [] for p in PHASES + ("step",)} for n in impls}
    for r in range(rounds + 2):                      # two warm-up rounds, not kept
        ids, tags = batches[r % len(batches)]
        for name, m in impls.items():
            c, w = [time.process_time()], [time.perf_counter()]
            m.forward(ids, tags)
            c.append(time.process_time()), w.append(time.perf_counter())
            inside = m.backward()
            c.append(time.process_time()), w.append(time.perf_counter())
            m.update()
            c.append(time.process_time()), w.append(time.perf_counter())
            if r < 2:
                continue
            for store, t, ins in ((cpu, c, 0), (wall, w, 1)):
                s = store[name]
                s["forward"].append(t[1] - t[0])
                s["backward"].append(t[2] - t[1])
                s["update"].append(t[3] - t[2])
                s["step"].append(t[3] - t[0])
                s["lstm_backward"].append(np.nan if inside is None else inside[ins])
    med = lambda v: float(np.median(v) * 1e6)  # noqa: E731
    return {n: {p: (med(cpu[n][p]), med(wall[n][p])) for p in cpu[n]} for n in impls}


def batches_of(B, n=4, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.integers(0, VOCAB, (B, T)).astype(np.int32), rng.integers(0, TAGS, (B, T)))
            for _ in range(n)]


def load():
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def bench(quick):
    import numba
    numba.set_num_threads(1)
    if torch is not None:
        torch.set_num_threads(1)
    sb.set_backend("cpu")
    check(batches_of(2, 1, seed=9)[0])
    res = {"load_before": load(), "torch": None if torch is None else torch.__version__, "rows": []}
    for B, rounds in ((1, 8 if quick else 60), (32, 2 if quick else 12)):
        impls = {m: Tagger(m) for m in ("dense", "topk", "unified")}
        if torch is not None:
            impls["pytorch"] = TorchStep(impls["dense"])
        out = measure(impls, batches_of(B), rounds)
        for name, ph in out.items():
            res["rows"].append({"B": B, "impl": name, "rounds": rounds,
                                **{f"{p}_us": ph[p][0] for p in ph},
                                **{f"{p}_wall_us": ph[p][1] for p in ph}})
    res["load_after"] = load()
    res["targets"] = targets(res["rows"])
    return res


def targets(rows):
    """The issue's targets against this run (CPU-time medians)."""
    g = {(r["B"], r["impl"]): r for r in rows}
    out = []

    def add(name, want, got):
        out.append({"target": name, "want": want, "got": None if got is None else round(got, 2),
                    "met": None if got is None else bool(got >= want if want > 1 else got <= 1 / want)})
    d1, t1 = g[(1, "dense")], g[(1, "topk")]
    add("LSTM backward: dense / topk, 1 sentence, k = 5", 20.0,
        d1["lstm_backward_us"] / t1["lstm_backward_us"])
    for B, want in ((1, 5.0), (32, 2.0)):
        pt = g.get((B, "pytorch"))
        for mode in ("topk", "unified"):
            m = g[(B, mode)]
            add(f"PyTorch step / {mode} step, B = {B}", want,
                None if pt is None else pt["step_us"] / m["step_us"])
    for B in (1, 32):
        for mode in ("topk", "unified"):
            m = g[(B, mode)]
            out.append({"target": f"{mode} step / our forward, B = {B}", "want": "<= 2",
                        "got": round(m["step_us"] / m["forward_us"], 2),
                        "met": m["step_us"] / m["forward_us"] <= 2})
    return out


def show(res):
    print(f"\n## (f) LSTM tagger step (emb {EMB}, BiLSTM h = {H}, {TAGS} tags, {T} words, k = {K}), "
          f"CPU microseconds, median; 1 thread; torch {res['torch']}; "
          f"load average {res['load_before']} -> {res['load_after']}\n")
    cols = ["forward", "backward", "lstm_backward", "update", "step"]
    print("| B | impl | " + " | ".join(cols) + " | step / forward | step, wall |")
    print("|" + " ---: |" * (len(cols) + 4))
    for r in res["rows"]:
        vals = " | ".join("" if np.isnan(r[f"{c}_us"]) else f"{r[f'{c}_us']:.0f}" for c in cols)
        print(f"| {r['B']} | {r['impl']} | {vals} | {r['step_us'] / r['forward_us']:.2f} | "
              f"{r['step_wall_us']:.0f} |")
    print("\n| target | want | got | met |\n| --- | ---: | ---: | --- |")
    for t in res["targets"]:
        want = t["want"] if isinstance(t["want"], str) else f">= {t['want']}"
        print(f"| {t['target']} | {want} | {t['got']} | {t['met']} |")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="few rounds: a smoke run")
    ap.add_argument("--json", default=None, help="write the results as JSON to this file")
    a = ap.parse_args(argv)
    res = bench(a.quick)
    show(res)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)
    return res


if __name__ == "__main__":
    main()

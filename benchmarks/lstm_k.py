"""Does the LSTM's k count over the whole 4H gate vector or per gate? A small measurement.

    python -m benchmarks.lstm_k [--data DIR] [--train N] [--epochs E] [--seeds S] [--hidden H]

A BiLSTM tagger (word embedding -> BiLSTM -> Linear -> softmax, Adam 1e-3, one
sentence per step as in the paper) on the first N training sentences of UD English
EWT (XPOS), dev accuracy on the first 1,000 dev sentences, for: dense; k over the
whole 4H vector (k = 5, 8, 20); k per gate (k = 2, 5: 8 and 20 units in all). Prints
the mean and spread of the dev accuracy over the seeds. (A small CoNLL-U reading of
its own: the words and XPOS columns; `sparsebp.data` holds the task's reader.)
"""
import argparse
import os
import time

import numpy as np

import sparsebp as sb

DATA = os.environ.get("SPARSEBP_DATA", os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))  # ../shared/data beside the checkout
CONFIGS = [("dense", None, False), ("topk", 5, False), ("topk", 8, False), ("topk", 20, False),
           ("topk", 2, True), ("topk", 5, True)]


def read_conllu(path, limit):
    """[(words, xpos tags)] of the first `limit` sentences; skips `3-4` and `5.1` lines."""
    sents, words, tags = [], [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                if words:
                    sents.append((words, tags))
                    words, tags = [], []
                    if len(sents) == limit:
                        break
            elif not line.startswith("#"):
                cols = line.split("\t")
                if "-" not in cols[0] and "." not in cols[0]:
                    words.append(cols[1].lower())
                    tags.append(cols[4])
    return sents


def encode(sents, vocab, tagset):
    return [(np.array([vocab.get(w, 0) for w in ws], np.int32), np.array([tagset[t] for t in ts]))
            for ws, ts in sents]


def run(cfg, train, dev, n_words, n_tags, seed, hidden, epochs, emb=64):
    mode, k, per_gate = cfg
    sb.seed(seed)
    E = sb.Embedding(n_words, emb)
    L = sb.BiLSTM(emb, hidden, k=k, mode=mode, per_gate=per_gate)
    out = sb.Linear(2 * hidden, n_tags)
    loss_fn = sb.SoftmaxCrossEntropy()
    opt = sb.Adam(E.parameters() + L.parameters() + out.parameters())
    order = np.random.default_rng(seed)
    for _ in range(epochs):
        for i in order.permutation(len(train)):
            ids, y = train[i]
            h = L(E(ids).reshape(1, -1, emb))
            loss_fn(out(h.reshape(len(ids), -1)), y)
            dh = out.backward(loss_fn.backward()).reshape(1, len(ids), -1)
            E.backward(L.backward(dh).reshape(len(ids), emb))
            opt.step()
    right = total = 0
    for ids, y in dev:
        logits = out(L(E(ids).reshape(1, -1, emb)).reshape(len(ids), -1))
        right += int((np.asarray(logits).argmax(1) == y).sum())
        total += len(y)
    return right / total


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.path.join(DATA, "ud-english-ewt"))
    ap.add_argument("--train", type=int, default=4000)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--hidden", type=int, default=200)
    a = ap.parse_args(argv)
    sb.set_backend("cpu")
    tr = read_conllu(os.path.join(a.data, "train.conllu"), a.train)
    dv = read_conllu(os.path.join(a.data, "dev.conllu"), 1000)
    counts = {}
    for ws, _ in tr:
        for w in ws:
            counts[w] = counts.get(w, 0) + 1
    vocab = {w: i + 1 for i, w in enumerate(sorted(w for w, c in counts.items() if c >= 2))}  # 0: unknown
    tagset = {t: i for i, t in enumerate(sorted({t for s in tr + dv for t in s[1]}))}
    train, dev = encode(tr, vocab, tagset), encode(dv, vocab, tagset)
    print(f"{len(train)} training sentences, {len(dev)} dev; {len(vocab) + 1} words, {len(tagset)} tags; "
          f"h = {a.hidden}, {a.epochs} epochs, seeds 0..{a.seeds - 1}, load {os.getloadavg()[0]:.1f}", flush=True)
    print("| k | kept of 4H per step | dev accuracy (mean +- std) | runs |\n| --- | ---: | ---: | --- |")
    for cfg in CONFIGS:
        t0 = time.process_time()
        accs = [run(cfg, train, dev, len(vocab) + 1, len(tagset), s, a.hidden, a.epochs) for s in range(a.seeds)]
        mode, k, per_gate = cfg
        name = "dense" if k is None else f"{k} {'per gate' if per_gate else 'of 4H'}"
        kept = 4 * a.hidden if k is None else (4 * k if per_gate else k)
        print(f"| {name} | {kept} | {100 * np.mean(accs):.2f} +- {100 * np.std(accs):.2f} | "
              f"{', '.join(f'{100 * x:.2f}' for x in accs)} ({time.process_time() - t0:.0f} CPU s) |", flush=True)


if __name__ == "__main__":
    main()

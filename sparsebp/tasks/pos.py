"""The paper's POS-tagging task: a BiLSTM tagger with meProp on its LSTMs.

Data: a directory with train.conllu, dev.conllu and test.conllu (UD English EWT;
without --data, $SPARSEBP_DATA/ud-english-ewt). Tags: XPOS (Penn Treebank tags, the
paper's task) by default, `--tagset upos` for the 17 universal tags. A training
unit is a sentence; the minibatch is `--batch-size` sentences, padded at the end.

Each word is four ids into one embedding table, concatenated (F = 4 vectors of
`--embed` numbers):
- the lower-cased word (seen >= `--min-count` times in training, else unknown: so
  the unknown word's vector is trained on the rare words);
- its last two and last three letters (lower-cased; rare ones unknown);
- its shape: capitalisation (lower, Title, UPPER, no letters, mixed), whether it
  has a digit, a hyphen.
Then a BiLSTM (`--hidden` units each way, meProp per --mode/--k on both LSTMs;
`--layers` of them stacked), dropout on its input and output, and a dense output
layer over the tags; the loss is softmax cross-entropy over the real (unpadded) words.

Metric (`acc`): token accuracy over every word of the split (a tag unseen in
training counts as wrong). `--predict DIR` writes dev.conllu and test.conllu there,
tagged by the model of the best dev epoch (the parser reads them with `--tags-from`).

Defaults (DEFAULTS): h = 64, 32 sentences per minibatch, dropout 0.25, 8 epochs: an
epoch of EWT is about 13 s of one core. k = 16 (of the 4h = 256 gate
pre-activations) by a rule on EWT's dev set: the smallest k within 0.1 point of
dense (README, "POS tagging"); the measured runs used `--lr 0.002`. The paper's
setting: `--hidden 500 --batch-size 1 --k 5`.
"""
import copy
import os
from dataclasses import asdict, dataclass

import numpy as np

from ..backend import K
from ..data import Vocab, read_conllu, write_conllu
from ..layers import Dropout, Embedding, Linear
from ..lstm import BiLSTM
from ..module import Module
from . import best_dev_so_far, extra

NAME = "pos"
HELP = "BiLSTM part-of-speech tagger with meProp on the LSTMs, on CoNLL-U (e.g. UD English EWT)"
DATA_ENV = "SPARSEBP_DATA"
DATA_NAME = "ud-english-ewt"
DATA_HELP = ("a directory with train.conllu, dev.conllu and test.conllu "
             f"(default: ${DATA_ENV}/{DATA_NAME} when {DATA_ENV} is set)")
DEFAULTS = {"hidden": 64, "layers": 1, "batch_size": 32, "epochs": 8, "k": 16, "dropout": 0.25}
ARGUMENTS = [
    ("--tagset", dict(choices=["xpos", "upos"], default="xpos",
                      help="the gold tags to predict: xpos (Penn Treebank tags) or upos")),
    ("--embed", dict(type=int, default=50, help="size of each of the 4 feature vectors per word")),
    ("--min-count", dict(type=int, default=2,
                         help="words and suffixes seen fewer times in training are unknown "
                              "(so the unknown entry's vector is trained)")),
    ("--per-gate", dict(action="store_true",
                        help="meProp keeps k units of each LSTM gate (4k) instead of k of all 4h")),
    ("--eval-batch", dict(type=int, default=256, help="sentences per batch when evaluating")),
    ("--predict", dict(default=None, metavar="DIR",
                       help="write DIR/dev.conllu and DIR/test.conllu with the tags of the best-dev model "
                            "in the --tagset column (for the parser's --tags-from DIR)")),
]
N_FEATURES = 4
EVAL_BATCH = 256


def data_dir(cfg):
    """cfg.data, or $SPARSEBP_DATA/ud-english-ewt when it is empty and the variable set; else ''."""
    if cfg.data:
        return cfg.data
    root = os.environ.get(DATA_ENV)
    return os.path.join(root, DATA_NAME) if root else ""


def validate(cfg):
    errors = []
    top = cfg.hidden if extra(cfg, "per_gate", False) else 4 * cfg.hidden
    if cfg.mode != "dense" and not 1 <= cfg.k <= top:
        errors.append(f"--k must be in [1, {top}] ({'--hidden' if top == cfg.hidden else '4 x --hidden'}; "
                      f"got {cfg.k})")
    for name in ("embed", "min_count", "eval_batch"):
        if extra(cfg, name, 1) < 1:
            errors.append(f"--{name.replace('_', '-')} must be >= 1")
    if not data_dir(cfg):
        errors.append(f"pos needs --data DIR (train.conllu, dev.conllu, test.conllu), or {DATA_ENV} "
                      f"set to a directory holding {DATA_NAME}/")
    return errors


# ---- features: strings -> ids, once at load ----

def shape(form):
    """A word's shape class: capitalisation, digit, hyphen (e.g. 'Xx|d|-')."""
    letters = [c for c in form if c.isalpha()]
    if not letters:
        cap = "-"
    elif all(c.islower() for c in letters):
        cap = "x"
    elif all(c.isupper() for c in letters):
        cap = "X"
    elif letters[0].isupper() and all(c.islower() for c in letters[1:]):
        cap = "Xx"
    else:
        cap = "xX"
    return cap + ("|d" if any(c.isdigit() for c in form) else "") + ("|-" if "-" in form else "")


def features(form):
    """The 4 feature strings of a word: lower-cased word, 2- and 3-letter suffixes, shape."""
    w = form.lower()
    return w, w[-2:], w[-3:], shape(form)


@dataclass
class Split:
    """One split's words laid end to end: ids (P, F) int32 into the feature table,
    tags (P,) int32 (-1: a tag unseen in training, always wrong), starts (S + 1,) int64,
    lengths (S,) int32."""
    ids: np.ndarray
    tags: np.ndarray
    starts: np.ndarray
    lengths: np.ndarray

    def __len__(self):
        return len(self.lengths)

    def batch(self, sent):
        """Sentences sent: (B,) -> (inputs, targets) of `Tagger.forward`: inputs =
        (ids (N, F), mask (B, T) bool, lengths (B,)), targets (N,), N real words
        in sentence-major order, T the longest of the batch."""
        lengths = self.lengths[sent]
        T = int(lengths.max())
        mask = np.arange(T)[None, :] < lengths[:, None]                     # (B, T)
        pos = (self.starts[sent][:, None] + np.arange(T)[None, :])[mask]     # (N,) flat word index
        return (self.ids[pos], mask, lengths), self.tags[pos]


@dataclass
class Corpus:
    """The tagger's data: feature vocabularies, the tag list, the three splits."""
    vocabs: list          # F Vocabs; feature f's ids are offset by offsets[f]
    offsets: np.ndarray   # (F,) int32
    tags: list            # the tag strings, index = class
    tagset: str
    splits: dict          # "train", "dev", "test" -> Split
    eval_batch: int = EVAL_BATCH
    gold: dict = None     # "dev", "test" -> [Sentence] as read (what --predict copies)
    predict: str = None   # --predict DIR
    best_dev: float = -1.0
    dev_is_best: bool = False

    @property
    def n_ids(self):
        return int(self.offsets[-1]) + len(self.vocabs[-1])


def _split(sentences, corpus):
    lengths = np.array([len(s) for s in sentences], np.int32)
    starts = np.zeros(len(sentences) + 1, np.int64)
    starts[1:] = np.cumsum(lengths)
    forms = [f for s in sentences for f in s.form]
    feats = list(zip(*(features(f) for f in forms))) if forms else [()] * N_FEATURES
    ids = np.stack([v.index(col) + off for v, col, off in zip(corpus.vocabs, feats, corpus.offsets)],
                   axis=1).astype(np.int32) if forms else np.zeros((0, N_FEATURES), np.int32)
    index = {t: i for i, t in enumerate(corpus.tags)}
    tags = np.fromiter((index.get(t, -1) for s in sentences for t in getattr(s, corpus.tagset)),
                       np.int32, len(forms))
    return Split(ids, tags, starts, lengths)


def load(cfg):
    """Read the three CoNLL-U files (cfg.data is set to the directory used, so the
    results file names it); vocabularies and tags from the training set (its first
    cfg.limit sentences if set); every split turned into index arrays once."""
    cfg.data = data_dir(cfg)
    paths = {split: os.path.join(cfg.data, f"{split}.conllu") for split in ("train", "dev", "test")}
    for p in paths.values():
        if not os.path.isfile(p):
            raise FileNotFoundError(f"pos: {p} not found (--data needs train.conllu, dev.conllu, test.conllu)")
    sents = {split: [s for s in read_conllu(p) if len(s)] for split, p in paths.items()}
    train = sents["train"][:cfg.limit] if cfg.limit else sents["train"]
    if not train:
        raise ValueError(f"pos: {paths['train']} holds no sentences")
    tagset = extra(cfg, "tagset", "xpos")
    feats = list(zip(*(features(f) for s in train for f in s.form)))
    min_count = extra(cfg, "min_count", 2)
    vocabs = [Vocab(feats[0], min_count), Vocab(feats[1], min_count), Vocab(feats[2], min_count),
              Vocab(feats[3], 1)]
    offsets = np.cumsum([0] + [len(v) for v in vocabs[:-1]]).astype(np.int32)
    tags = list(Vocab(t for s in train for t in getattr(s, tagset)).itos[1:])   # no <unk> class
    corpus = Corpus(vocabs, offsets, tags, tagset, {}, extra(cfg, "eval_batch", EVAL_BATCH),
                    gold={"dev": sents["dev"], "test": sents["test"]}, predict=extra(cfg, "predict", None))
    if corpus.predict:
        os.makedirs(corpus.predict, exist_ok=True)     # an unwritable DIR fails now, not after an epoch
    corpus.splits = {"train": _split(train, corpus), "dev": _split(sents["dev"], corpus),
                     "test": _split(sents["test"], corpus)}
    return corpus


def describe(c):
    s = c.splits
    unk = lambda sp: 100 * float(np.mean(sp.ids[:, 0] == 0)) if len(sp.ids) else 0.0  # noqa: E731
    return (f"{len(s['train'])} train / {len(s['dev'])} dev / {len(s['test'])} test sentences "
            f"({len(s['train'].ids)} / {len(s['dev'].ids)} / {len(s['test'].ids)} words; unknown words "
            f"{unk(s['dev']):.1f}% of dev); {len(c.vocabs[0])} words, {len(c.tags)} {c.tagset} tags")


def n_train(c):
    return len(c.splits["train"])


def batch(c, ids):
    """(inputs, targets) of training sentences ids: (B,); see `Split.batch`."""
    return c.splits["train"].batch(np.asarray(ids))


# ---- the model ----

class Tagger(Module):
    """Feature embeddings -> BiLSTM (`layers` of them, stacked) -> dense output
    layer, scored on the real words.

    forward((ids (N, F) int, mask (B, T) bool, lengths (B,) int)) -> logits (N, C):
    the N real words of B sentences padded to T, sentence-major (mask's order).
    backward(dlogits (N, C)) fills every gradient; returns None.
    The padding is never embedded nor scored: the words are embedded as a flat
    (N, F * embed) block, scattered into (B, T, F * embed) for the BiLSTM, and
    its (B, T, 2H) output gathered back to (N, 2H) for the output layer.
    Dropout (p = `dropout`) on the BiLSTM's input and on the output layer's input.
    """

    def __init__(self, n_ids, n_features, embed, hidden, n_tags, k=None, mode="topk", per_gate=False,
                 dropout=0.0, layers=1, dtype=np.float32):
        self.n_features, self.embed = n_features, embed
        self.embedding = Embedding(n_ids, embed, dtype=dtype)
        self.drop_in, self.drop_out = Dropout(dropout), Dropout(dropout)
        self.lstm = BiLSTM(n_features * embed, hidden, k, mode, per_gate, dtype)
        self.more = [BiLSTM(2 * hidden, hidden, k, mode, per_gate, dtype) for _ in range(layers - 1)]
        self.out = Linear(2 * hidden, n_tags, dtype=dtype)      # dense, as the paper's output layer

    def children(self):
        return [self.embedding, self.drop_in, self.lstm, *self.more, self.drop_out, self.out]

    def parameters(self):
        return [p for m in self.children() for p in m.parameters()]

    def __repr__(self):
        return (f"Tagger({self.n_features} x {self.embedding!r}, {1 + len(self.more)} x {self.lstm!r}, "
                f"{self.out!r})")

    def forward(self, inputs):
        ids, mask, lengths = inputs
        N, F = ids.shape
        e = np.asarray(K().to_host(self.embedding(ids.reshape(-1)))).reshape(N, F * self.embed)
        e = np.asarray(K().to_host(self.drop_in(K().to_device(e))))
        self.mask = mask
        x = np.zeros(mask.shape + (F * self.embed,), e.dtype)                 # (B, T, F * embed)
        x[mask] = e
        y = self.lstm(x, lengths)                                             # (B, T, 2H)
        for lstm in self.more:
            y = lstm(y, lengths)
        h = self.drop_out(K().to_device(np.ascontiguousarray(y[mask])))       # (N, 2H)
        return self.out(h)

    def backward(self, dlogits):
        dh = np.asarray(K().to_host(self.drop_out.backward(self.out.backward(dlogits))))
        mask = self.saved("mask")
        dy = np.zeros(mask.shape + (dh.shape[1],), dh.dtype)
        dy[mask] = dh
        for lstm in reversed(self.more):
            dy = lstm.backward(dy)
        dx = self.lstm.backward(dy)                                           # (B, T, F * embed)
        de = np.asarray(K().to_host(self.drop_in.backward(K().to_device(np.ascontiguousarray(dx[mask])))))
        self.embedding.backward(K().to_device(np.ascontiguousarray(de.reshape(-1, self.embed))))


def build_model(cfg, c):
    return Tagger(c.n_ids, N_FEATURES, extra(cfg, "embed", 50), cfg.hidden, len(c.tags),
                  k=None if cfg.mode == "dense" else cfg.k, mode=cfg.mode,
                  per_gate=extra(cfg, "per_gate", False), dropout=cfg.dropout, layers=cfg.layers)


def predict(model, split, batch_size=EVAL_BATCH):
    """(P,) int predicted tags of every word of split, in eval mode; sentences batched
    by length (less padding), the predictions put back in the split's order."""
    order = np.argsort(split.lengths, kind="stable")
    pred = np.empty(len(split.tags), np.int64)
    model.eval()
    try:
        for s in range(0, len(order), batch_size):
            sent = order[s:s + batch_size]
            inputs, _ = split.batch(sent)
            mask = inputs[1]
            pos = (split.starts[sent][:, None] + np.arange(mask.shape[1])[None, :])[mask]
            pred[pos] = np.asarray(K().to_host(model(inputs))).argmax(1)
    finally:
        model.train()
    return pred


def evaluate(model, c, split):
    """Tag accuracy of the split; with --predict, the tagged split is written at
    each new best dev score (dev when scored, test after it)."""
    sp = c.splits[split]
    pred = predict(model, sp, c.eval_batch)
    acc = float(np.mean(pred == sp.tags)) if len(sp.tags) else 0.0
    if best_dev_so_far(c, split, acc) and c.predict:
        write_conllu(os.path.join(c.predict, f"{split}.conllu"), tagged(c, split, pred))
    return {"acc": acc}


def tagged(c, split, pred):
    """Copies of the split's sentences with the predicted tags (pred: (P,) class
    ids, the words end to end) in the --tagset column."""
    out, starts = [], c.splits[split].starts
    for i, s in enumerate(c.gold[split]):
        p = copy.copy(s)
        setattr(p, c.tagset, [c.tags[t] for t in pred[starts[i]:starts[i + 1]]])
        out.append(p)
    return out


def small_config(cfg):
    """The same kind of model, tiny: every kernel of the run, compiled in a blink."""
    from ..train import Config
    return Config(**{**asdict(cfg), "hidden": max(cfg.k, 2), "extra": {**cfg.extra, "embed": 4}})

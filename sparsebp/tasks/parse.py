"""The paper's parsing task: a greedy arc-standard dependency parser whose
transition classifier is an MLP over Chen & Manning's 48 embedded features,
with meProp on its hidden layers (Sun et al. 2017: h = 500, k = 20).

Data: a directory with train.conllu, dev.conllu and test.conllu (UD English EWT).
Gold POS tags from the treebank (XPOS by default, `--tags upos`); `--tags-from DIR`
parses dev and test from predicted tags instead (DIR/dev.conllu, DIR/test.conllu,
e.g. the POS task's `--predict DIR`), still trained on the gold ones. The training set
is the oracle transitions of its projective sentences (the non-projective ones
are counted and skipped), computed once at load time; a training unit, and the
minibatch, is a transition. dev/test are parsed greedily, all sentences at once.

Metric (`acc`): UAS, with `las` beside it, over the words whose gold UPOS is not
PUNCT; LAS compares the full DEPREL (subtypes included). `score` and
`sparsebp eval-parse PRED GOLD` apply the same rule to CoNLL-U files.
"""
import copy
import os
import time
from dataclasses import asdict, dataclass

import numpy as np

from .. import arcstandard as A
from ..backend import K
from ..data import Vocab, read_conllu, write_conllu
from ..layers import Embedding
from ..module import Module, Sequential
from . import best_dev_so_far, mlp_errors
from .mnist import build_mlp

NAME = "parse"
HELP = "arc-standard dependency parser (Chen & Manning features, MLP with meProp) on CoNLL-U"
DATA_HELP = "a directory with train.conllu, dev.conllu and test.conllu (e.g. UD English EWT)"
# Chosen on EWT's dev set (results/parse/README.md): 100-dimensional embeddings and
# scoring the weights' running average (--average) lift dense from 86.8 to 88.0 dev UAS.
EMBED = 100
DEFAULTS = {"batch_size": 100, "epochs": 8, "layers": 1, "k": 20, "hidden": 500,
            "activation": "tanh", "average": 0.9995}
ARGUMENTS = [
    ("--tags", dict(choices=["xpos", "upos"], default="xpos",
                    help="the gold POS column the features use")),
    ("--embed", dict(type=int, default=EMBED, help="embedding size of each of the 48 features")),
    ("--min-count", dict(type=int, default=2,
                         help="words seen fewer times in training are unknown (so the unknown "
                              "word's vector is trained)")),
    ("--predict", dict(default=None, metavar="FILE",
                       help="write the test set parsed by the best-dev model here (CoNLL-U)")),
    ("--tags-from", dict(default=None, metavar="DIR",
                         help="parse dev and test with the tags of DIR/dev.conllu and DIR/test.conllu "
                              "(predicted ones: `sparsebp train pos --predict DIR`) instead of the gold "
                              "tags; training keeps the gold tags")),
]
PUNCT = "PUNCT"
SPECIALS = ("<null>", "<root>")          # after Vocab's <unk> (id 0): ids NULL and ROOT
NULL, ROOT = 1, 2                         # "no such item" and the artificial root, in each Vocab


def validate(cfg):
    errors = mlp_errors(cfg)
    if cfg.extra.get("embed", EMBED) < 1:
        errors.append("--embed must be >= 1")
    if cfg.extra.get("min_count", 1) < 1:
        errors.append("--min-count must be >= 1")
    if not cfg.data:
        errors.append("parse needs --data DIR (train.conllu, dev.conllu, test.conllu)")
    return errors


@dataclass
class Treebank:
    """The parser's data: vocabularies, the cached oracle features, the gold trees.

    words, tags : Vocab (ids 0 unknown, 1 no item, 2 ROOT); labels : list of L
    deprels; the feature table holds words, then tags (offset len(words)), then
    the "no label" entry and the L labels (offset len(words) + len(tags)).
    train_x : (T, 48) int32 feature ids; train_y : (T,) int32 transitions.
    gold : {"dev": [Sentence], "test": [Sentence]}.
    inputs : the same sentences with the tags the parser reads: the gold ones,
    or with --tags-from the predicted ones; tags_from_acc : their accuracy.
    """
    words: Vocab
    tags: Vocab
    labels: list
    tag_column: str
    train_x: np.ndarray
    train_y: np.ndarray
    gold: dict
    n_train_sentences: int
    non_projective: int
    features_s: float
    predict: str = None        # --predict: the file for the test set at the best-dev epoch
    inputs: dict = None
    tags_from_acc: dict = None
    best_dev: float = -1.0     # the best dev UAS so far, and whether the last dev score was it
    dev_is_best: bool = False

    @property
    def label_offset(self):
        return len(self.words) + len(self.tags)

    @property
    def n_ids(self):
        return self.label_offset + 1 + len(self.labels)

    @property
    def nulls(self):
        return np.array([NULL, len(self.words) + NULL, self.label_offset], np.int32)

    @property
    def label_ids(self):
        return np.arange(self.label_offset + 1, self.n_ids, dtype=np.int32)

    @property
    def root_label(self):
        return self.labels.index("root") if "root" in self.labels else -1


def _word(form):
    return form.lower()


def _ids(tb, sentences):
    """Flat (P,) word and tag feature ids of sentences laid end to end, each
    from its ROOT; (S + 1,) starts."""
    starts = np.zeros(len(sentences) + 1, np.int64)
    starts[1:] = np.cumsum([len(s) + 1 for s in sentences])
    word, tag = np.empty(starts[-1], np.int32), np.empty(starts[-1], np.int32)
    for s, a in zip(sentences, starts):
        word[a] = ROOT
        tag[a] = len(tb.words) + ROOT
        word[a + 1:a + 1 + len(s)] = tb.words.index([_word(f) for f in s.form])
        tag[a + 1:a + 1 + len(s)] = tb.tags.index(getattr(s, tb.tag_column)) + len(tb.words)
    return word, tag, starts


def _oracle_features(tb, sentences):
    """(feats (T, 48), y (T,), projective (S,) bool) of the oracle on the projective sentences."""
    word, tag, starts = _ids(tb, sentences)
    index = {l: i for i, l in enumerate(tb.labels)}
    head, rel = np.full(starts[-1], -1, np.int64), np.full(starts[-1], -1, np.int64)
    for s, a in zip(sentences, starts):
        head[a + 1:a + 1 + len(s)] = s.head
        rel[a + 1:a + 1 + len(s)] = [index[d] for d in s.deprel]
    proj = A.projective(head, starts)
    keep = np.flatnonzero(proj)
    sub = np.concatenate([np.arange(starts[i], starts[i + 1]) for i in keep] + [np.zeros(0, np.int64)])
    n = np.diff(starts)[keep] - 1                          # words per kept sentence
    sub_starts = np.r_[0, np.cumsum(n + 1)]
    rows = np.r_[0, np.cumsum(2 * n)]                      # 2n transitions per sentence
    feats = np.empty((rows[-1], A.N_FEATURES), np.int32)
    y = np.empty(rows[-1], np.int32)
    ok = np.empty(len(keep), np.bool_)
    A.oracle(feats, y, ok, word[sub], tag[sub], head[sub], rel[sub], sub_starts, rows[:-1],
             tb.nulls, len(tb.labels), tb.label_ids)
    if not ok.all():
        raise RuntimeError(f"the oracle failed on {int((~ok).sum())} projective sentences")
    return feats, y, proj


def _check_trees(sentences, path):
    for i, s in enumerate(sentences):
        if (s.head < 0).any():
            raise ValueError(f"{path}: sentence {i + 1} has a word without HEAD; the parser needs trees")
        if (s.head == 0).sum() != 1:
            raise ValueError(f"{path}: sentence {i + 1} has {(s.head == 0).sum()} roots, not one")


def load(cfg):
    """Read the three CoNLL-U files of cfg.data; vocabularies and the oracle's
    features from the training set (its first cfg.limit sentences if set)."""
    paths = {split: os.path.join(cfg.data, f"{split}.conllu") for split in ("train", "dev", "test")}
    for p in paths.values():
        if not os.path.isfile(p):
            raise FileNotFoundError(f"parse: {p} not found (--data needs train.conllu, dev.conllu, test.conllu)")
    sents = {split: read_conllu(p) for split, p in paths.items()}
    for split, p in paths.items():
        _check_trees(sents[split], p)
    train = sents["train"][:cfg.limit] if cfg.limit else sents["train"]
    column = cfg.extra.get("tags", "xpos")
    words = Vocab((_word(f) for s in train for f in s.form), cfg.extra.get("min_count", 2), SPECIALS)
    tags = Vocab((t for s in train for t in getattr(s, column)), 1, SPECIALS)
    labels = sorted({d for s in train for d in s.deprel})
    gold = {"dev": sents["dev"], "test": sents["test"]}
    tb = Treebank(words, tags, labels, column, None, None, gold, len(train), 0, 0.0,
                  predict=cfg.extra.get("predict"), inputs=gold)
    if cfg.extra.get("tags_from"):
        tb.inputs, tb.tags_from_acc = _predicted_tags(cfg.extra["tags_from"], gold, column)
    _oracle_features(tb, train[:1])         # Numba loads its cache: not the work to time
    t0 = time.perf_counter()
    tb.train_x, tb.train_y, proj = _oracle_features(tb, train)
    tb.features_s = time.perf_counter() - t0
    tb.non_projective = int((~proj).sum())
    return tb


def _predicted_tags(directory, gold, column):
    """({"dev", "test"}: copies of the gold sentences with the `column` tags of
    DIR/dev.conllu and DIR/test.conllu, {"dev", "test"}: their tag accuracy).
    The files must hold the gold files' words, sentence by sentence."""
    inputs, acc = {}, {}
    for split, sentences in gold.items():
        path = os.path.join(directory, f"{split}.conllu")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"--tags-from: {path} not found (it needs dev.conllu and test.conllu)")
        other = read_conllu(path)
        if len(other) != len(sentences):
            raise ValueError(f"--tags-from: {path} has {len(other)} sentences, the gold {split} set "
                             f"{len(sentences)}")
        inputs[split], right, words = [], 0, 0
        for i, (g, o) in enumerate(zip(sentences, other)):
            if g.form != o.form:
                raise ValueError(f"--tags-from: sentence {i + 1} of {path} has other words than the gold one")
            p = copy.copy(g)
            setattr(p, column, getattr(o, column))
            right += sum(a == b for a, b in zip(getattr(g, column), getattr(o, column)))
            words += len(g)
            inputs[split].append(p)
        acc[split] = right / max(words, 1)
    return inputs, acc


def describe(tb):
    tags = "" if not tb.tags_from_acc else (
        f" (dev/test parsed from predicted tags: accuracy {100 * tb.tags_from_acc['dev']:.2f}% / "
        f"{100 * tb.tags_from_acc['test']:.2f}%)")
    return (f"{tb.n_train_sentences} train sentences ({tb.non_projective} non-projective skipped), "
            f"{len(tb.train_y)} oracle transitions (features in {tb.features_s:.1f}s) / "
            f"{len(tb.gold['dev'])} dev / {len(tb.gold['test'])} test sentences; "
            f"{len(tb.words)} words, {len(tb.tags)} {tb.tag_column} tags{tags}, {len(tb.labels)} labels")


def n_train(tb):
    return len(tb.train_y)


def batch(tb, ids):
    """(features: (B, 48) int32, transitions: (B,) int32) of training transitions ids: (B,)."""
    return tb.train_x[ids], tb.train_y[ids]


class FeatureEmbedding(Module):
    """ids: (B, F) int -> (B, F * dim): each feature's vector, concatenated.

    One table holds the words, tags and labels (their ids are offset into it),
    so one `Embedding` does the lookup and its row-sparse gradient."""

    def __init__(self, n_ids, n_features, dim):
        self.embedding, self.n_features, self.dim = Embedding(n_ids, dim), n_features, dim

    def forward(self, ids):
        return self.embedding(ids.reshape(-1)).reshape(ids.shape[0], self.n_features * self.dim)

    def backward(self, dy):
        self.embedding.backward(dy.reshape(-1, self.dim))

    def parameters(self):
        return self.embedding.parameters()

    def children(self):
        return [self.embedding]

    def __repr__(self):
        return f"FeatureEmbedding({self.n_features} x {self.embedding!r})"


def build_model(cfg, tb):
    dim = cfg.extra.get("embed", EMBED)
    return Sequential(FeatureEmbedding(tb.n_ids, A.N_FEATURES, dim),
                      build_mlp(A.N_FEATURES * dim, A.n_transitions(len(tb.labels)), cfg))


def padded(tb, sentences):
    """(word, tag, n): (S, N + 1) int32 feature ids of each sentence from its ROOT
    (N the longest sentence, padding "no item"), and (S,) words per sentence."""
    word, tag, starts = _ids(tb, sentences)
    n = np.diff(starts) - 1
    pad_word = np.full((len(sentences), n.max(initial=0) + 1), tb.nulls[0], np.int32)
    pad_tag = np.full_like(pad_word, tb.nulls[1])
    for i, a in enumerate(starts[:-1]):
        pad_word[i, :n[i] + 1] = word[a:a + n[i] + 1]
        pad_tag[i, :n[i] + 1] = tag[a:a + n[i] + 1]
    return pad_word, pad_tag, n


def scorer(model):
    """The decoder's score function: features (m, 48) -> (m, 2L + 1) host logits."""
    return lambda feats: K().to_host(model(feats))


def parse(model, tb, sentences):
    """Copies of sentences with the heads and labels the model predicts (greedy,
    every sentence at once, one model call per step)."""
    word, tag, n = padded(tb, sentences)
    model.eval()
    try:
        head, rel = A.decode(scorer(model), word, tag, n, tb.nulls, tb.label_ids, tb.root_label)
    finally:
        model.train()
    out = []
    for i, s in enumerate(sentences):
        p = copy.copy(s)
        p.head = head[i, 1:n[i] + 1].astype(np.int32)
        p.deprel = [tb.labels[r] for r in rel[i, 1:n[i] + 1]]
        out.append(p)
    return out


def score(pred, gold):
    """{"uas", "las", "words"} of pred against gold (lists of Sentence), over the
    words whose gold UPOS is not PUNCT; LAS compares the full DEPREL."""
    if len(pred) != len(gold):
        raise ValueError(f"{len(pred)} predicted sentences, {len(gold)} gold sentences")
    words = uas = las = 0
    for i, (p, g) in enumerate(zip(pred, gold)):
        if p.form != g.form:
            raise ValueError(f"sentence {i + 1}: the predicted words differ from the gold words")
        for j in range(len(g)):
            if g.upos[j] == PUNCT:
                continue
            words += 1
            if p.head[j] == g.head[j]:
                uas += 1
                las += p.deprel[j] == g.deprel[j]
    return {"uas": uas / max(words, 1), "las": las / max(words, 1), "words": words}


def score_files(pred_path, gold_path):
    """`score` of two CoNLL-U files."""
    return score(read_conllu(pred_path), read_conllu(gold_path))


def evaluate(model, tb, split):
    """UAS ("acc") and LAS of the split parsed by the model, and the parsing time."""
    t0 = time.perf_counter()
    pred = parse(model, tb, tb.inputs[split])
    seconds = time.perf_counter() - t0
    s = score(pred, tb.gold[split])
    if best_dev_so_far(tb, split, s["uas"]) and tb.predict and split == "test":
        write_conllu(tb.predict, pred)     # the test set at the best-dev epoch
    return {"acc": s["uas"], "las": s["las"], "parse_s": seconds}


def small_config(cfg):
    """The same kind of model, tiny: every kernel of the run, compiled in a blink."""
    from ..train import Config
    return Config(**{**asdict(cfg), "hidden": max(cfg.k, 2), "layers": min(cfg.layers, 2)})

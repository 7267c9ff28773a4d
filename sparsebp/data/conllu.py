"""CoNLL-U (Universal Dependencies) reading and writing, and a vocabulary.

A CoNLL-U file holds sentences separated by blank lines; each word is one line of
ten tab-separated columns ID FORM LEMMA UPOS XPOS FEATS HEAD DEPREL DEPS MISC, and
`#` lines are comments. The reader keeps the syntactic words (integer IDs 1..n):

- multi-word token lines (ID `3-4`, a surface token spanning words 3 and 4) are
  skipped: their words follow on their own lines;
- empty nodes (ID `5.1`, enhanced graphs only) are skipped: the basic tree
  (HEAD/DEPREL) never points at them.

Anything else out of place (a wrong column count, a bad ID or HEAD, IDs not
1, 2, ..., a HEAD outside 0..n) is a `ConlluError` naming the file and line.
HEAD may be `_` (a file without trees, e.g. for tagging): it reads as -1.
"""
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

N_COLUMNS = 10


class ConlluError(ValueError):
    """A malformed CoNLL-U line; the message names the file and the line number."""


@dataclass
class Sentence:
    """One sentence's syntactic words (n of them), in order.

    form, lemma, upos, xpos, feats, deprel, misc : lists of n strings (columns 2-6, 8, 10)
    head : (n,) int32, the head's ID of each word (0: the root; -1: no head given)
    comments : the `#` lines before the sentence, without the `#` and one space
    """
    form: list
    upos: list
    xpos: list
    head: np.ndarray
    deprel: list
    lemma: list = None
    feats: list = None
    misc: list = None
    comments: list = field(default_factory=list)

    def __len__(self):
        return len(self.form)


def _fail(path, lineno, msg):
    raise ConlluError(f"{path}, line {lineno}: {msg}")


def _sentence(rows, comments, path):
    """A Sentence from rows: [(lineno, columns)] of its words, IDs checked here."""
    n = len(rows)
    head = np.empty(n, np.int32)
    for i, (lineno, c) in enumerate(rows):
        if int(c[0]) != i + 1:
            _fail(path, lineno, f"word ID {c[0]} out of order (expected {i + 1})")
        if c[6] == "_":
            head[i] = -1
            continue
        if not c[6].isdigit():
            _fail(path, lineno, f"HEAD {c[6]!r} is not a word ID")
        head[i] = int(c[6])
        if head[i] > n:
            _fail(path, lineno, f"HEAD {head[i]} points past the sentence's {n} words")
        if head[i] == i + 1:
            _fail(path, lineno, f"word {i + 1} is its own head")
    col = lambda j: [c[j] for _, c in rows]  # noqa: E731
    return Sentence(form=col(1), upos=col(3), xpos=col(4), head=head, deprel=col(7),
                    lemma=col(2), feats=col(5), misc=col(9), comments=comments)


def _word_kind(idx, path, lineno):
    """'word' for an ID like 7, 'skip' for 3-4 and 5.1; anything else is an error."""
    if idx.isdigit() and int(idx) >= 1:
        return "word"
    a, sep, b = idx.partition("-") if "-" in idx else idx.partition(".")
    if sep and a.isdigit() and b.isdigit():
        return "skip"
    _fail(path, lineno, f"bad ID {idx!r} (expected 1, 2, ... or a range 3-4 or an empty node 5.1)")


def read_conllu(path):
    """The sentences of the CoNLL-U file at path: a list of `Sentence`."""
    sentences, rows, comments = [], [], []
    try:
        f = open(path, encoding="utf-8")
    except OSError as e:
        raise FileNotFoundError(f"cannot read CoNLL-U file {path}: {e.strerror}") from None
    with f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\n").rstrip("\r")
            if not line.strip():
                if rows:
                    sentences.append(_sentence(rows, comments, path))
                elif comments:
                    _fail(path, lineno, "a sentence with comments but no words")
                rows, comments = [], []
                continue
            if line.startswith("#"):
                if rows:
                    _fail(path, lineno, "a comment inside a sentence")
                comments.append(line[1:].strip())
                continue
            c = line.split("\t")
            if len(c) != N_COLUMNS:
                _fail(path, lineno, f"{len(c)} tab-separated columns, CoNLL-U has {N_COLUMNS}")
            if _word_kind(c[0], path, lineno) == "word":
                rows.append((lineno, c))
    if rows:                                       # a last sentence without a blank line after it
        sentences.append(_sentence(rows, comments, path))
    return sentences


def write_conllu(path, sentences):
    """Write sentences as CoNLL-U: one line per word, a blank line after each
    sentence; columns the Sentence lacks (lemma, feats, misc) and DEPS are `_`."""
    with open(path, "w", encoding="utf-8") as f:
        for s in sentences:
            for c in s.comments:
                f.write(f"# {c}\n")
            n = len(s)
            lemma, feats, misc = (s.lemma or ["_"] * n), (s.feats or ["_"] * n), (s.misc or ["_"] * n)
            for i in range(n):
                head = "_" if s.head[i] < 0 else str(int(s.head[i]))
                f.write("\t".join([str(i + 1), s.form[i], lemma[i], s.upos[i], s.xpos[i], feats[i],
                                   head, s.deprel[i], "_", misc[i]]) + "\n")
            f.write("\n")


class Vocab:
    """Strings <-> ids, built from the training set; id 0 is the unknown entry.

    Vocab(tokens, min_count=1, specials=()) : every distinct token seen at least
    min_count times, most frequent first (ties by first appearance), after UNK
    and the `specials` (e.g. a padding or root symbol) in that order.
    """

    UNK = "<unk>"

    def __init__(self, tokens, min_count=1, specials=()):
        counts = Counter(tokens)
        kept = [t for t, c in sorted(counts.items(), key=lambda tc: -tc[1]) if c >= min_count]
        self.itos = [self.UNK] + [s for s in dict.fromkeys(specials) if s != self.UNK]
        first = set(self.itos)
        self.itos += [t for t in kept if t not in first]
        self.stoi = {t: i for i, t in enumerate(self.itos)}

    def __len__(self):
        return len(self.itos)

    def __getitem__(self, token):
        """The id of token; 0 (UNK) if it is not in the vocabulary."""
        return self.stoi.get(token, 0)

    def __contains__(self, token):
        return token in self.stoi

    def index(self, tokens):
        """(n,) int32 ids of a sequence of n tokens, unknown ones 0."""
        get = self.stoi.get
        return np.fromiter((get(t, 0) for t in tokens), np.int32, len(tokens))

"""The arc-standard transition system (Nivre 2004) and Chen & Manning's features.

A parser state is a stack, a buffer and the arcs built so far. Positions are
sentence-local: 0 is the artificial ROOT, 1..n the words. The state starts as
stack [0], buffer [1..n]; with s1 the stack's top and s2 the item below it:

    SHIFT          push the buffer's first word
    LEFT-ARC(l)    s2 <-l- s1: s2 gets head s1 and label l, and leaves the stack
    RIGHT-ARC(l)   s2 -l-> s1: s1 gets head s2 and label l, and leaves the stack

A sentence of n words takes exactly 2n transitions. Transition ids: 0 is SHIFT,
1 + l is LEFT-ARC(l), 1 + L + l is RIGHT-ARC(l), for L labels (2L + 1 in all).

Always one well-formed tree: LEFT-ARC never makes ROOT a dependent; ROOT takes
its one dependent (RIGHT-ARC with s2 = ROOT) only when the buffer is empty and
that word is all that is left, and only with the root label; no other arc uses
the root label. Every word then gets exactly one head, arcs never make a cycle
(a dependent leaves the stack), and exactly one word hangs from ROOT.

Features (Chen & Manning 2014, 48 in all): the word and tag of s1, s2, s3,
b1, b2, b3 and of the 12 children lc1, rc1, lc2, rc2, lc1(lc1), rc1(rc1) of s1
and of s2 (18 words, 18 tags), and the labels of those 12 children. lc1 is the
leftmost child, lc2 the second leftmost (rc: rightmost). Arc-standard attaches
a head's left children nearest first and its right children left to right, so
the two latest of each side are those: no child lists are kept.

Everything here is compiled with Numba (`cache=True`) and runs over many
sentences per call: the training set's oracle features in one call, one decoding
step of every unfinished sentence in one call. Each function also runs as plain
Python under `NUMBA_DISABLE_JIT=1`.
"""
import numpy as np
from numba import njit

N_WORD_FEATURES = N_TAG_FEATURES = 18
N_LABEL_FEATURES = 12
N_FEATURES = N_WORD_FEATURES + N_TAG_FEATURES + N_LABEL_FEATURES   # 48
SHIFT = 0


def n_transitions(n_labels):
    return 2 * n_labels + 1


@njit(cache=True)
def _feature_row(out, stack, sp, b, n, word, tag, lc1, lc2, rc1, rc2, lab, nulls):
    """out: (48,) int32, the features of one state.

    stack: (>= sp,) positions, top at sp - 1; b: the buffer's first word (n + 1
    when empty); word, tag: (n + 1,) feature ids of the positions (0: ROOT);
    lc1, lc2, rc1, rc2: (n + 1,) children positions, -1 for none; lab: (n + 1,)
    feature id of each position's arc label; nulls: (3,) the feature ids of "no
    such item" for words, tags and labels.
    """
    pos = np.full(18, -1, np.int64)
    for i in range(3):
        if sp - 1 - i >= 0:
            pos[i] = stack[sp - 1 - i]
        if b + i <= n:
            pos[3 + i] = b + i
    for j in range(2):                       # the children of s1 (j = 0), then of s2
        s = pos[j]
        base = 6 + 6 * j
        if s >= 0:
            pos[base] = lc1[s]
            pos[base + 1] = rc1[s]
            pos[base + 2] = lc2[s]
            pos[base + 3] = rc2[s]
            if lc1[s] >= 0:
                pos[base + 4] = lc1[lc1[s]]
            if rc1[s] >= 0:
                pos[base + 5] = rc1[rc1[s]]
    for i in range(18):
        p = pos[i]
        out[i] = nulls[0] if p < 0 else word[p]
        out[18 + i] = nulls[1] if p < 0 else tag[p]
        if i >= 6:
            out[30 + i] = nulls[2] if p < 0 else lab[p]


@njit(cache=True)
def _apply(t, stack, sp, b, head, rel, lc1, lc2, rc1, rc2, lab, n_labels, label_ids):
    """Apply transition t to one state; returns the new (sp, b).

    head, rel: (n + 1,) the arcs (head position, label index); lab gets the
    label's feature id label_ids[l] for the features."""
    if t == SHIFT:
        stack[sp] = b
        return sp + 1, b + 1
    s1, s2 = stack[sp - 1], stack[sp - 2]
    if t <= n_labels:                        # LEFT-ARC: s2 <- s1
        l, h, d = t - 1, s1, s2
        lc2[h] = lc1[h]
        lc1[h] = d
    else:                                    # RIGHT-ARC: s2 -> s1
        l, h, d = t - 1 - n_labels, s2, s1
        rc2[h] = rc1[h]
        rc1[h] = d
    head[d] = h
    rel[d] = l
    lab[d] = label_ids[l]
    stack[sp - 2] = h
    return sp - 1, b


@njit(cache=True)
def _oracle_next(stack, sp, b, n, gold_head, gold_rel, missing, n_labels):
    """The static oracle's transition, or -1 when it is stuck (a non-projective
    tree). missing: (n + 1,) gold children not yet attached, per position."""
    if sp >= 2:
        s1, s2 = stack[sp - 1], stack[sp - 2]
        if s2 != 0 and gold_head[s2] == s1:
            return 1 + gold_rel[s2]
        if gold_head[s1] == s2 and missing[s1] == 0 and (s2 != 0 or b > n):
            return 1 + n_labels + gold_rel[s1]
    if b <= n:
        return SHIFT
    return -1


@njit(cache=True)
def oracle(feats, y, ok, word, tag, head, rel, starts, rows, nulls, n_labels, label_ids):
    """The oracle's transitions of many sentences, with the features of each state.

    feats: (T, 48) int32 out; y: (T,) int32 out, the transitions; ok: (S,) bool
    out, False where the oracle got stuck (the sentence's rows are then invalid).
    word, tag: (P,) feature ids; head, rel: (P,) gold head positions (local) and
    label indices, for all sentences laid end to end, each starting with its
    ROOT at starts[i] (starts: (S + 1,), the last entry P); rows: (S,) the first
    output row of each sentence, 2n rows each.
    """
    for i in range(len(starts) - 1):
        a, z = starts[i], starts[i + 1]
        n = z - a - 1
        gh, gr = head[a:z], rel[a:z]
        missing = np.zeros(n + 1, np.int64)
        for d in range(1, n + 1):
            missing[gh[d]] += 1
        stack = np.zeros(n + 1, np.int64)
        ph = np.full(n + 1, -1, np.int64)
        pr = np.full(n + 1, -1, np.int64)
        lc1, lc2 = np.full(n + 1, -1, np.int64), np.full(n + 1, -1, np.int64)
        rc1, rc2 = np.full(n + 1, -1, np.int64), np.full(n + 1, -1, np.int64)
        lab = np.full(n + 1, nulls[2], np.int32)
        sp, b = 1, 1
        ok[i] = True
        for r in range(rows[i], rows[i] + 2 * n):
            t = _oracle_next(stack, sp, b, n, gh, gr, missing, n_labels)
            if t < 0:
                ok[i] = False
                break
            _feature_row(feats[r], stack, sp, b, n, word[a:z], tag[a:z], lc1, lc2, rc1, rc2, lab, nulls)
            y[r] = t
            if t != SHIFT:
                missing[stack[sp - 1] if t <= n_labels else stack[sp - 2]] -= 1
            sp, b = _apply(t, stack, sp, b, ph, pr, lc1, lc2, rc1, rc2, lab, n_labels, label_ids)
        if ok[i] and (sp != 1 or b != n + 1):
            ok[i] = False


@njit(cache=True)
def projective(head, starts):
    """(S,) bool: True where no two arcs of the sentence cross (the arc from
    ROOT included). head: (P,) head positions, sentences as in `oracle`."""
    out = np.ones(len(starts) - 1, np.bool_)
    for i in range(len(starts) - 1):
        a, z = starts[i], starts[i + 1]
        for d in range(1, z - a):
            lo, hi = min(d, head[a + d]), max(d, head[a + d])
            for e in range(1, z - a):
                c, f = min(e, head[a + e]), max(e, head[a + e])
                if (lo < c < hi < f) or (c < lo < f < hi):
                    out[i] = False
    return out


@njit(cache=True)
def _extract(feats, active, stack, sp, b, n, word, tag, lc1, lc2, rc1, rc2, lab, nulls):
    """feats: (m, 48) int32 out, the features of the m states `active` of a batch
    (the batch's arrays are (S, N + 1), one row per sentence)."""
    for j in range(len(active)):
        i = active[j]
        _feature_row(feats[j], stack[i], sp[i], b[i], n[i], word[i], tag[i],
                     lc1[i], lc2[i], rc1[i], rc2[i], lab[i], nulls)


@njit(cache=True)
def _best_legal(scores, s2, sp, buffer_empty, n_labels, root_label):
    """The transition of highest score among the legal ones (see the module's
    docstring); root_label < 0: no label is reserved for ROOT's arc."""
    best, arg = -np.inf, -1
    if not buffer_empty:
        best, arg = scores[SHIFT], SHIFT
    if sp >= 2:
        for l in range(n_labels):
            is_root = l == root_label
            if s2 != 0 and (root_label < 0 or not is_root):
                for t in (1 + l, 1 + n_labels + l):
                    if arg < 0 or scores[t] > best:
                        best, arg = scores[t], t
            elif s2 == 0 and buffer_empty and (root_label < 0 or is_root):
                t = 1 + n_labels + l
                if arg < 0 or scores[t] > best:
                    best, arg = scores[t], t
    return arg


@njit(cache=True)
def _step(scores, active, stack, sp, b, n, head, rel, lc1, lc2, rc1, rc2, lab,
          n_labels, root_label, label_ids):
    """Apply the best legal transition by scores: (m, 2L + 1) to each active state."""
    for j in range(len(active)):
        i = active[j]
        s2 = stack[i, sp[i] - 2] if sp[i] >= 2 else -1
        t = _best_legal(scores[j], s2, sp[i], b[i] > n[i], n_labels, root_label)
        sp[i], b[i] = _apply(t, stack[i], sp[i], b[i], head[i], rel[i], lc1[i], lc2[i],
                             rc1[i], rc2[i], lab[i], n_labels, label_ids)


def decode(score, word, tag, lengths, nulls, label_ids, root_label):
    """Greedy parsing of S sentences at once: one call of `score` per step for
    all the sentences not yet finished.

    score: (m, 48) int32 features -> (m, 2L + 1) scores (a host array);
    word, tag: (S, N + 1) int32 feature ids (column 0: ROOT; N the longest
    sentence); lengths: (S,) words per sentence; nulls: (3,) int32, the "no item"
    ids of words, tags and labels; label_ids: (L,) int32 feature id of each label;
    root_label: the label index reserved for ROOT's one arc (-1: none).

    Returns (head, rel): (S, N + 1) int64, each word's head position (0: ROOT)
    and label index; column 0 and the padding are -1.
    """
    S, width = word.shape
    n = np.asarray(lengths, np.int64)
    n_labels = len(label_ids)
    stack = np.zeros((S, width), np.int64)
    sp, b = np.ones(S, np.int64), np.ones(S, np.int64)
    head, rel, lc1, lc2, rc1, rc2 = (np.full((S, width), -1, np.int64) for _ in range(6))
    lab = np.full((S, width), nulls[2], np.int32)
    # a sentence of n words is done after exactly 2n transitions
    order = np.argsort(-n, kind="stable")
    for step in range(2 * int(n.max(initial=0))):
        active = order[:np.count_nonzero(2 * n > step)]     # the longest first
        feats = np.empty((len(active), N_FEATURES), np.int32)
        _extract(feats, active, stack, sp, b, n, word, tag, lc1, lc2, rc1, rc2, lab, nulls)
        scores = np.ascontiguousarray(score(feats), dtype=np.float32)
        _step(scores, active, stack, sp, b, n, head, rel, lc1, lc2, rc1, rc2, lab,
              n_labels, root_label, label_ids)
    return head, rel

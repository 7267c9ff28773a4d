"""The CoNLL-U reader on a hand-written sample (tests/data/tiny.conllu): multi-word
tokens and empty nodes skipped, every malformed line an error naming file and line."""
import os

import numpy as np
import pytest

from sparsebp.data import ConlluError, Vocab, read_conllu, write_conllu

TINY = os.path.join(os.path.dirname(__file__), "data", "tiny.conllu")
WORD = "1\tThe\tthe\tDET\tDT\t_\t2\tdet\t_\t_"


def test_reads_the_sample():
    s = read_conllu(TINY)
    assert [len(x) for x in s] == [4, 5, 7, 9, 12]
    assert s[0].form == ["The", "cat", "sat", "."]
    assert s[0].upos == ["DET", "NOUN", "VERB", "PUNCT"]
    assert s[0].xpos == ["DT", "NN", "VBD", "."]
    assert s[0].head.tolist() == [2, 3, 0, 3] and s[0].head.dtype == np.int32
    assert s[0].deprel == ["det", "nsubj", "root", "punct"]
    assert s[0].comments == ["newdoc id = tiny", "sent_id = tiny-1", "text = The cat sat."]
    assert s[3].deprel[1] == "nsubj:pass"


def test_multiword_token_skipped():
    s = read_conllu(TINY)[1]                    # 2-3 don't: the words do, n't follow it
    assert s.form == ["I", "do", "n't", "know", "."]
    assert s.head.tolist() == [4, 4, 4, 0, 4]


def test_empty_node_skipped():
    s = read_conllu(TINY)[2]                    # 5.1 likes: an enhanced-graph node only
    assert s.form == ["Sue", "likes", "coffee", "and", "Bill", "tea", "."]
    assert s.head.tolist() == [2, 0, 2, 5, 2, 5, 2]
    assert s.deprel[5] == "orphan"


def test_write_then_read_is_the_same(tmp_path):
    s = read_conllu(TINY)
    out = tmp_path / "out.conllu"
    write_conllu(out, s)
    t = read_conllu(out)
    for a, b in zip(s, t):
        assert (a.form, a.upos, a.xpos, a.deprel, a.comments) == (b.form, b.upos, b.xpos, b.deprel, b.comments)
        assert a.head.tolist() == b.head.tolist()


def test_last_sentence_without_blank_line_and_crlf(tmp_path):
    p = tmp_path / "x.conllu"
    p.write_bytes((WORD.replace("\t2\t", "\t0\t") + "\r\n").encode())
    s = read_conllu(p)
    assert len(s) == 1 and s[0].head.tolist() == [0] and s[0].misc == ["_"]


def test_missing_head_reads_as_minus_one(tmp_path):
    p = tmp_path / "x.conllu"
    p.write_text("1\tHi\t_\tINTJ\tUH\t_\t_\t_\t_\t_\n\n")
    assert read_conllu(p)[0].head.tolist() == [-1]


MALFORMED = {
    "nine columns": (WORD.rsplit("\t", 1)[0] + "\n", 1, "columns"),
    "spaces not tabs": (WORD.replace("\t", " ") + "\n", 1, "columns"),
    "bad id": (WORD.replace("1\t", "x\t", 1) + "\n", 1, "bad ID"),
    "id zero": (WORD.replace("1\t", "0\t", 1) + "\n", 1, "bad ID"),
    "ids out of order": ("1\ta\t_\tX\tX\t_\t0\troot\t_\t_\n3\tb\t_\tX\tX\t_\t1\tdep\t_\t_\n", 2,
                         "out of order"),
    "head not a number": (WORD.replace("\t2\t", "\tx\t") + "\n", 1, "HEAD"),
    "head past the end": ("# c\n1\ta\t_\tX\tX\t_\t0\troot\t_\t_\n2\tb\t_\tX\tX\t_\t7\tdep\t_\t_\n", 3,
                          "past the sentence"),
    "own head": ("1\ta\t_\tX\tX\t_\t1\troot\t_\t_\n", 1, "its own head"),
    "comment inside": ("1\ta\t_\tX\tX\t_\t0\troot\t_\t_\n# c\n", 2, "comment inside"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_line_names_file_and_line(tmp_path, case):
    text, lineno, what = MALFORMED[case]
    p = tmp_path / "bad.conllu"
    p.write_text(text)
    with pytest.raises(ConlluError, match=f"bad.conllu, line {lineno}: .*{what}"):
        read_conllu(p)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.conllu"):
        read_conllu(tmp_path / "nope.conllu")


def test_vocab():
    v = Vocab(["b", "a", "b", "c", "a", "b"], specials=["<root>"])
    assert v.itos == ["<unk>", "<root>", "b", "a", "c"]      # by frequency, ties first seen
    assert v["a"] == 3 and v["zzz"] == 0 and len(v) == 5 and "c" in v
    assert v.index(["c", "q", "b"]).tolist() == [4, 0, 2]
    assert v.index([]).dtype == np.int32
    cut = Vocab(["b", "a", "b", "c", "a", "b"], min_count=2)
    assert cut.itos == ["<unk>", "b", "a"] and cut["c"] == 0


def test_vocab_from_the_sample():
    words = [w for s in read_conllu(TINY) for w in s.form]
    v = Vocab(words)
    assert v["."] == 1                          # the most frequent word of the sample
    assert len(v) == 1 + len(set(words))

"""`sparsebp explain` runs, prints every quantity of the walkthrough, and what it
prints as equal is equal: checked from the printed text and recomputed here."""
import re

import numpy as np
import pytest

from sparsebp import cli, explain
from conftest import assert_close

NUM = re.compile(r"[+-]\d+\.\d{4}")
MODES = ["topk", "unified", "random", "dense"]


def _run(mode, backend="numpy", seed=0):
    lines = []
    arrays, checks = explain.walkthrough(mode, 2, seed, backend, out=lines.append)
    return "\n".join(lines).splitlines(), arrays, checks


@pytest.mark.parametrize("mode", MODES)
def test_printed_sides_are_the_same_numbers(mode):
    lines, _, checks = _run(mode)
    pairs = 0
    for line in lines:
        if "  |  " not in line:
            continue
        left, right = line.split("  |  ")
        got, want = NUM.findall(left), NUM.findall(right)
        if got or want:                          # not a header line
            assert got == want, line
            pairs += 1
    assert pairs >= 2 * explain.B + explain.N_OUT        # y, dx, dW rows, db at least
    assert not any("DIFFERENT" in line or "CHANGED" in line for line in lines)
    assert sum("equal: largest |difference|" in line for line in lines) == 5
    assert lines[-1] == f"{len(checks)} of {len(checks)} comparisons hold."


@pytest.mark.parametrize("mode", MODES)
def test_every_quantity_of_the_walkthrough_is_printed(mode):
    text = "\n".join(_run(mode)[0])
    for label in ["x: the input", "W: the weight", "y = x W^T + b", "dy = dL/dy", "|dy|",
                  "3. select", "masked_dy", "dW = masked_dy^T x", "dx = masked_dy W",
                  "db: the bias gradient from the FULL dy", "the union of rows",
                  "Adam's M", "Adam's V", "bit-identical"]:
        assert label in text, label
    if mode == "unified":
        assert "column sums of |dy|" in text
    if mode in ("topk", "random"):
        assert "example 1 keeps units" in text


@pytest.mark.parametrize("mode", MODES)
def test_printed_values_match_an_independent_recomputation(mode):
    _, a, checks = _run(mode)
    for name, got, want in checks:
        assert np.max(np.abs(got - want), initial=0) <= explain.EQUAL_TOL, name
    x, W, b, dy = a["x"], a["W"], a["b"], a["dy"]
    assert_close(a["y"], x @ W.T + b, 1e-12, 0)
    masked = dy.copy()
    if mode != "dense":
        sel = a["selected"]
        keep = np.zeros(dy.shape, bool)
        if mode == "unified":
            keep[:, sel] = True
            colsum = np.abs(dy).sum(0)
            assert np.array_equal(sel, np.sort(np.argsort(-colsum, kind="stable")[:2]))
        else:
            np.put_along_axis(keep, sel, True, 1)
            if mode == "topk":
                top = np.sort(np.argsort(-np.abs(dy), axis=1, kind="stable")[:, :2], axis=1)
                assert np.array_equal(sel, top)
        masked = np.where(keep, dy, 0.0)
        assert np.array_equal(a["rows"], np.unique(sel))
    assert np.array_equal(a["masked_dy"], masked)
    rows = a["rows"]
    assert_close(a["dW_rows"], (masked.T @ x)[rows], 1e-12, 0)
    assert_close(a["dx"], masked @ W, 1e-12, 0)
    assert_close(a["db"], dy.sum(0)[None], 1e-12, 0)             # the full dy
    others = np.setdiff1d(np.arange(explain.N_OUT), rows)
    assert np.array_equal(a["W_after"][others], a["W_before"][others])
    for name in ("W", "Adam's M", "Adam's V", "Adam's step count T"):
        assert np.array_equal(a[f"changed {name}"], rows), name


def test_the_numba_backend_prints_the_same_walkthrough():
    ref, _, _ = _run("topk")
    cpu, _, checks = _run("topk", backend="cpu")
    assert [line.replace("cpu backend", "numpy backend") for line in cpu] == ref


def test_command_lines(capsys):
    assert cli.main(["explain", "--mode", "unified", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "Linear(8->6, unified, k=2)" in out and "comparisons hold." in out
    assert explain.main(["--k", "7"]) == 2
    assert "--k must be in 1..6" in capsys.readouterr().err

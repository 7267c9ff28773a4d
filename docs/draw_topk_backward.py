"""Draw docs/topk-backward.svg: meProp's top-k backward of one Linear layer, as a picture.

    python docs/draw_topk_backward.py        # rewrites docs/topk-backward.svg

dy (B x n) -> each example keeps its k largest |dy| -> the kept entries grouped by
unit (row) -> those k rows of W feed dx, the same rows of dW are written -> the union
of rows -> the lazy optimizer updates only them. The numbers are a seeded random dy
and the selection is computed by kernels/reference.py, so the picture is the
method's output, not a drawing of it. Plain SVG text: no plotting library needed.
tests/test_learners.py checks that the committed file is what this script writes.
"""
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent / "topk-backward.svg"
B, N, K, M = 3, 8, 2, 6          # examples, units (n_out), kept per example, n_in
CELL = 26
KEPT, ROW, FADE, INK = "#f28e2b", "#f9c38f", "#eeeeee", "#333333"


def _selection():
    from sparsebp import kernels
    dy = np.random.default_rng(8).standard_normal((B, N)).astype(np.float32)
    idx = np.empty((B, K), np.int32)
    kernels.get("numpy").topk_rows(idx, dy, K)
    return dy, idx


def _text(x, y, s, size=13, anchor="middle", weight="normal"):
    return (f'<text x="{x}" y="{y}" font-size="{size}" text-anchor="{anchor}" '
            f'font-weight="{weight}" fill="{INK}">{s}</text>')


def _rect(x, y, w, h, fill, stroke="#999999"):
    return f'<rect x="{x}" y="{y}" width="{w}" height="{h}" fill="{fill}" stroke="{stroke}"/>'


def _arrow(x0, y, x1, label):
    return (f'<line x1="{x0}" y1="{y}" x2="{x1 - 6}" y2="{y}" stroke="{INK}" stroke-width="2"/>'
            f'<polygon points="{x1},{y} {x1 - 8},{y - 5} {x1 - 8},{y + 5}" fill="{INK}"/>'
            + _text((x0 + x1) / 2, y - 8, label, 11))


def _dy_panel(x0, y0, dy, keep):
    """dy with each example's kept entries filled; the magnitudes printed."""
    out = [_text(x0 + N * CELL / 2, y0 - 30, "dy: (B, n) output gradient", 13, weight="bold"),
           _text(x0 + N * CELL / 2, y0 - 12, f"the mask: each example keeps its k = {K} largest |dy|", 11)]
    for b in range(B):
        out.append(_text(x0 - 8, y0 + b * CELL + 17, f"ex {b}", 11, "end"))
        for r in range(N):
            out.append(_rect(x0 + r * CELL, y0 + b * CELL, CELL, CELL, KEPT if keep[b, r] else "white"))
            out.append(_text(x0 + r * CELL + CELL / 2, y0 + b * CELL + 17, f"{abs(dy[b, r]):.1f}", 9))
    for r in range(N):
        out.append(_text(x0 + r * CELL + CELL / 2, y0 + B * CELL + 14, str(r), 10))
    out.append(_text(x0 + N * CELL / 2, y0 + B * CELL + 30, "unit (row of W)", 10))
    return out


def _grouped_panel(x0, y0, keep):
    """For each unit r, the examples that kept it: what dW[r] sums over."""
    out = [_text(x0 + 60, y0 - 30, "kept entries by unit", 13, weight="bold"),
           _text(x0 + 60, y0 - 12, "dW[r] = sum of dy[b, r] x[b]", 11)]
    for r in range(N):
        exs = [b for b in range(B) if keep[b, r]]
        y = y0 + r * 18
        out.append(_text(x0, y + 12, f"unit {r}:", 11, "start"))
        out.append(_text(x0 + 48, y + 12, ", ".join(f"ex {b}" for b in exs) if exs else "-", 11, "start"))
    return out


def _matrix_panel(x0, y0, title, note, rows, fill):
    mid = x0 + M * 12 / 2
    out = [_text(mid, y0 - 30, title, 13, weight="bold"), _text(mid, y0 - 12, note, 11)]
    for r in range(N):
        for c in range(M):
            out.append(_rect(x0 + c * 12, y0 + r * 18, 12, 18, fill if r in rows else FADE, "#cccccc"))
        out.append(_text(x0 + M * 12 + 6, y0 + r * 18 + 13, str(r), 10, "start"))
    return out


def svg():
    dy, idx = _selection()
    keep = np.zeros((B, N), bool)
    np.put_along_axis(keep, idx, True, 1)
    rows = set(np.unique(idx).tolist())
    union = ", ".join(str(r) for r in sorted(rows))
    parts = _dy_panel(50, 60, dy, keep)
    parts += [_arrow(265, 100, 320, "topk_rows")]
    parts += _grouped_panel(330, 60, keep)
    parts += [_arrow(470, 100, 520, "products")]
    parts += _matrix_panel(530, 60, "W", "rows read for dx", rows, ROW)
    parts += _matrix_panel(655, 60, "dW", "rows written", rows, KEPT)
    parts += [_arrow(745, 100, 790, "rows"),
              _text(870, 90, "union of rows", 13, weight="bold"), _text(870, 110, f"{{{union}}}", 12),
              _text(870, 140, "lazy optimizer", 13, weight="bold"),
              _text(870, 160, "updates these rows of W", 11), _text(870, 175, "and of its state;", 11),
              _text(870, 190, "the others stay", 11), _text(870, 205, "bit-identical", 11),
              _text(480, 235, "db = dy summed over the batch: the full dy, not the kept entries", 11)]
    body = "\n".join(parts)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="960" height="250" viewBox="0 0 960 250" '
            f'font-family="sans-serif">\n<rect width="960" height="250" fill="white"/>\n{body}\n</svg>\n')


if __name__ == "__main__":
    import sys
    sys.path.insert(0, str(OUT.parents[1]))     # the repository root: sparsebp without installing
    OUT.write_text(svg())
    print(f"wrote {OUT}")

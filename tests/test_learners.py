"""The learner's path stays true: README links resolve, the call chain and the pdb
recipe point at real code, the kernel tables list every kernel, the picture is
what its script draws, and the compile-time notices say what happened."""
import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = [README, ROOT / "docs" / "PAPER-NOTES.md", ROOT / "benchmarks" / "README.md",
        ROOT / "data" / "mnist" / "README.md"]


def _prose(text):
    """Markdown without its fenced code blocks (links there are not links)."""
    return re.sub(r"```.*?```", "", text, flags=re.S)


def _slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    s = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return s.replace(" ", "-")


def _anchors(md):
    return {_slug(h) for h in re.findall(r"^#+ (.*)$", _prose(md.read_text()), re.M)}


def test_every_markdown_link_resolves():
    checked = 0
    for md in DOCS:
        for target in re.findall(r"\]\(([^)\s]+)\)", _prose(md.read_text())):
            if re.match(r"[a-z]+:", target):             # http(s), mailto: not checked offline
                continue
            path, _, frag = target.partition("#")
            dest = (md.parent / path).resolve() if path else md
            assert dest.exists(), f"{md.relative_to(ROOT)}: link to missing {target}"
            if frag:
                assert frag in _anchors(dest), f"{md.relative_to(ROOT)}: no heading for #{frag} in {path}"
            checked += 1
    assert checked >= 15


def test_readme_cites_no_file_outside_the_repository():
    assert "PAPER.md)" not in README.read_text() and "(PAPER.md" not in README.read_text()


def _functions(path):
    """{qualified name: (first line, last line)} of every def and class in a file."""
    out = {}

    def visit(node, prefix):
        for n in ast.iter_child_nodes(node):
            if isinstance(n, (ast.FunctionDef, ast.ClassDef)):
                out[prefix + n.name] = (n.lineno, n.end_lineno)
                visit(n, prefix + n.name + ".")
    visit(ast.parse(path.read_text()), "")
    return out


CHAIN = [("sparsebp/layers.py", "Linear.backward"), ("sparsebp/meprop.py", "meprop_backward"),
         ("sparsebp/meprop.py", "select"), ("kernels/reference.py", "topk_rows"),
         ("kernels/reference.py", "_topk_one"), ("kernels/cpu.py", "_select_rows"),
         ("kernels/cpu.py", "_select"), ("kernels/reference.py", "topk_backward"),
         ("kernels/cpu.py", "_by_row"), ("kernels/cpu.py", "_dx_rows"), ("kernels/cpu.py", "_dW_rows"),
         ("kernels/cpu.py", "_combo"), ("kernels/reference.py", "bias_grad"),
         ("kernels/reference.py", "union_rows"), ("sparsebp/module.py", "Parameter"),
         ("sparsebp/optim.py", "Optimizer.step"), ("sparsebp/optim.py", "Adam._update"),
         ("kernels/reference.py", "adam_rows"), ("sparsebp/module.py", "Parameter.dense_grad")]


def test_the_readme_call_chain_names_real_functions():
    text = README.read_text()
    for path, name in CHAIN:
        assert name.split(".")[-1] in text, name
        assert name in _functions(ROOT / path), f"{path} has no {name}"


def _breakpoints():
    """(file, line, function, the code on that line) from the README's pdb recipe."""
    text = README.read_text()
    found = [(f, int(n), fn, code.strip()) for f, n, fn, code in
             re.findall(r"b (kernels/\S+\.py):(\d+) +# (\w+): (.+)", text)]
    found += [(f, int(n), fn, code) for f, n, code, fn in
              re.findall(r"`b (kernels/\S+\.py):(\d+)` at `(.+?)` in `(\w+)`", text)]
    return found


def test_pdb_breakpoint_lines_in_the_readme_are_valid():
    bps = _breakpoints()
    assert len(bps) >= 3
    for path, line, fn, code in bps:
        lines = (ROOT / path).read_text().splitlines()
        first, last = _functions(ROOT / path)[fn]
        now = [i + 1 for i in range(first, last) if lines[i].strip() == code]
        assert first < line <= last and lines[line - 1].strip() == code, \
            f"README: b {path}:{line} no longer stops at {code!r} in {fn}; it is now line {now}"


def test_the_pdb_recipe_stops_inside_the_kernels():
    """The README's recipe, as written: NUMBA_DISABLE_JIT=1 and `b kernels/cpu.py:LINE`."""
    cpu = [(line, code) for path, line, _, code in _breakpoints() if path == "kernels/cpu.py"]
    cmds = [f"b kernels/cpu.py:{line}" for line, _ in cpu]
    for i in range(len(cpu)):                 # stop, look, clear that breakpoint, go on
        cmds += ["c", "p locals().keys()", f"cl {i + 1}"]
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1"}
    out = subprocess.run([sys.executable, "-m", "pdb", "-m", "sparsebp", "explain", "--backend", "cpu"],
                         input="\n".join(cmds) + "\n", env=env, cwd=ROOT, capture_output=True,
                         text=True, timeout=300).stdout
    for _, code in cpu:
        assert f"-> {code}" in out, f"pdb never stopped at {code!r}:\n{out[-3000:]}"


def _docstring_table(path):
    doc = ast.get_docstring(ast.parse(path.read_text()))
    return {n for row in doc.splitlines() if row.startswith("| `") for n in
            re.findall(r"`(\w+)`", row.split("|")[1])}


def test_kernel_tables_list_every_kernel():
    from sparsebp import kernels
    ref = kernels.get("numpy")
    public = {n for n, f in vars(ref).items() if callable(f) and not n.startswith("_")} - {"np"}
    for mod in ("cpu.py", "cuda.py"):
        missing = public - _docstring_table(ROOT / "kernels" / mod)
        assert not missing, f"kernels/{mod}'s table lacks {sorted(missing)}"
    assert {"topk_rows", "topk_unified", "topk_backward", "unified_backward"} <= \
        _docstring_table(ROOT / "kernels" / "cpu_simple.py")


def test_the_picture_is_what_its_script_draws():
    sys.path.insert(0, str(ROOT / "docs"))
    try:
        import draw_topk_backward
    finally:
        sys.path.remove(str(ROOT / "docs"))
    assert (ROOT / "docs" / "topk-backward.svg").read_text() == draw_topk_backward.svg(), \
        "run python docs/draw_topk_backward.py"


def test_kernels_note_says_what_the_warm_up_did():
    from sparsebp.warmup import kernels_note
    assert kernels_note("cpu", 9.5).startswith("kernels ready in 9.5s")
    assert "nothing to compile" in kernels_note("numpy", 0.01)
    code = "from sparsebp.warmup import kernels_note; print(kernels_note('cpu', 0.0))"
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True,
                         text=True, timeout=120).stdout
    assert out.startswith("NUMBA_DISABLE_JIT=1: the Numba kernels run as plain Python")


@pytest.mark.big                    # on cuda: a minute of the simulator for no more coverage
def test_warm_up_leaves_the_seeded_generator_alone(backend):
    import sparsebp as sb
    sb.seed(7)
    want = sb.rng().random(3)
    sb.seed(7)
    assert sb.warm_up() >= 0.0
    assert np.array_equal(sb.rng().random(3), want)

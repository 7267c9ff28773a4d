"""The README's Python snippets run as written."""
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks, "the README has no python snippet"
    for code in blocks:
        exec(compile(code, str(README), "exec"), {})
    assert "rows of W updated" in capsys.readouterr().out


def test_readme_quickstart_matches_ci():
    text = README.read_text()
    ci = (README.parent / ".ci" / "run").read_text()
    quick = re.search(r"## Quickstart\n\n```\n(.*?)```", text, re.S).group(1).strip().splitlines()
    assert len(quick) == 2, "the quickstart is exactly two commands"
    assert quick[1] in ci, ".ci/run must run the README's test command"


def test_readme_documents_every_environment_variable_the_package_reads():
    # sparsebp/ only: the CUDA kernels' tuning variables (kernels/cuda_*.py) are
    # documented with the GPU benchmarks
    import sparsebp
    pkg = Path(sparsebp.__file__).resolve().parent
    sources = [p.read_text() for p in pkg.rglob("*.py")]
    names = {n for text in sources for n in re.findall(r"environ(?:\.get)?[\(\[]\s*[\"'](SPARSEBP_\w+)", text)}
    names |= {n for text in sources for n in re.findall(r"^ENV = \"(SPARSEBP_\w+)\"", text, re.M)}
    assert "SPARSEBP_MNIST" in names
    text = README.read_text()
    for name in names:
        assert name in text, f"{name} is read by the package but not in the README"


def test_readme_says_what_a_seed_reproduces():
    text = README.read_text()
    assert "Seeded runs are reproducible on the same machine with the same thread counts" in text
